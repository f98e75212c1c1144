-- Per strategy: comparisons planned, pairs made (a winner, by the judges or by construction),
-- pairs kept in the dataset (after the filters and the gate), their length bias, and, where the judges were
-- asked about a comparison whose winner is known by construction, how often they agreed.
WITH made AS (
    SELECT coalesce(strategy, '(unknown)') AS strategy,
           count(*) AS comparisons,
           count(*) FILTER (WHERE winner_id IS NOT NULL) AS made,
           count(*) FILTER (WHERE label_source = 'construction') AS by_construction,
           count(*) FILTER (WHERE expected_id IS NOT NULL AND judge_status IS NOT NULL) AS judged_with_expected,
           count(*) FILTER (WHERE label_source = 'construction+judge') AS judges_agree,
           count(*) FILTER (WHERE status = 'judge_disagrees_with_construction') AS judges_disagree
    FROM comparisons
    GROUP BY 1
),
kept AS (
    SELECT coalesce(p.generation_method, '(unknown)') AS strategy,
           count(*) AS kept,
           count(*) FILTER (WHERE p.chosen_words <> p.rejected_words) AS n_compared,
           count(*) FILTER (WHERE p.chosen_words > p.rejected_words) AS n_longer
    FROM pairs p SEMI JOIN kept_pairs k ON k.pair_id = p.pair_id
    GROUP BY 1
)
SELECT coalesce(m.strategy, k.strategy) AS strategy,
       coalesce(m.comparisons, 0), coalesce(m.made, 0), coalesce(m.by_construction, 0), coalesce(k.kept, 0),
       coalesce(k.n_compared, 0), coalesce(k.n_longer, 0), coalesce(m.judged_with_expected, 0),
       coalesce(m.judges_agree, 0), coalesce(m.judges_disagree, 0)
FROM made m FULL JOIN kept k ON k.strategy = m.strategy
ORDER BY 1
