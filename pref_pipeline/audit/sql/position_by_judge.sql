-- The same per judge version (fingerprint).
WITH decisive AS (
    SELECT judge_fingerprint, any_value(judge_model) AS judge_model,
           count(*) FILTER (WHERE preference IN ('A', 'B')) AS n_decisive,
           count(*) FILTER (WHERE preference = 'A') AS n_first_wins,
           count(*) FILTER (WHERE preference = 'tie') AS n_ties
    FROM parsed GROUP BY judge_fingerprint
), consistency AS (
    SELECT judge_fingerprint, count(*) AS n_both_orders, count(*) FILTER (WHERE first = second) AS n_consistent
    FROM both_orders GROUP BY judge_fingerprint
)
SELECT d.judge_fingerprint, d.judge_model, d.n_decisive, d.n_first_wins, d.n_ties,
       coalesce(c.n_both_orders, 0) AS n_both_orders, coalesce(c.n_consistent, 0) AS n_consistent
FROM decisive d LEFT JOIN consistency c USING (judge_fingerprint)
ORDER BY d.judge_model, d.judge_fingerprint
