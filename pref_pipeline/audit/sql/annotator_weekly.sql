-- Human labels per labeller and week of labelled_at (a label without a labeller is named by its source, in
-- parentheses): labels, decisive ones (a winner named, not a tie), those whose comparison made a pair (a winner by
-- the judges or by construction), and how many of those chose the pair's chosen response.
SELECT coalesce(h.labeller, '(' || coalesce(h.source, 'unknown source') || ')') AS labeller,
       date_trunc('week', h.labelled_at) AS week,
       count(*) AS n_labels,
       count(*) FILTER (WHERE h.human_winner_id IS NOT NULL) AS n_decisive,
       count(*) FILTER (WHERE h.human_winner_id IS NOT NULL AND c.winner_id IS NOT NULL) AS n_with_pair,
       count(*) FILTER (WHERE h.human_winner_id IS NOT NULL AND h.human_winner_id = c.winner_id) AS n_agree
FROM human_labels h LEFT JOIN comparisons c ON c.comparison_id = h.comparison_id
GROUP BY ALL ORDER BY labeller, week NULLS LAST
