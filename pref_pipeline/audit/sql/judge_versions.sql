-- Every judge version in judgment_history: when it judged, how much, its position figures, its slot
-- (the judge of the configuration's judge list it is a version of; the judge model where unknown).
WITH v AS (SELECT * FROM judgment_history),
consistency AS (
    SELECT judge_fingerprint, count(*) AS n_both, count(*) FILTER (WHERE first = second) AS n_same FROM (
        SELECT judge_fingerprint, comparison_id,
               max(preferred) FILTER (WHERE "order" = 'xy') AS first, max(preferred) FILTER (WHERE "order" = 'yx') AS second
        FROM v WHERE preferred IS NOT NULL AND error IS NULL GROUP BY ALL
        HAVING count(*) FILTER (WHERE "order" = 'xy') = 1 AND count(*) FILTER (WHERE "order" = 'yx') = 1)
    GROUP BY judge_fingerprint
)
SELECT v.judge_fingerprint, any_value(v.judge_model) AS judge_model, min(v.judged_at) AS first_seen,
       max(v.judged_at) AS last_seen, count(*) AS n,
       count(*) FILTER (WHERE v.preference IN ('A', 'B')) AS n_decisive,
       count(*) FILTER (WHERE v.preference = 'A') AS n_first_wins,
       any_value(c.n_both) AS n_both, any_value(c.n_same) AS n_same, avg(v.recency_weight) AS mean_recency_weight,
       coalesce(CAST(any_value(v.judge_slot) AS VARCHAR), any_value(v.judge_model)) AS slot
FROM v LEFT JOIN consistency c USING (judge_fingerprint)
GROUP BY v.judge_fingerprint ORDER BY first_seen, v.judge_fingerprint
