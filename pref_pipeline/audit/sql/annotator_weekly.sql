-- Human labels per labeller and week of labelled_at (a label without a labeller is named by its source, in
-- parentheses): labels, decisive ones (a winner named, not a tie), those whose comparison the machine made a pair
-- of (the judges or the construction, before people: the labelled view), and how many of those chose the
-- machine's chosen response.
SELECT labeller,
       date_trunc('week', labelled_at) AS week,
       count(*) AS n_labels,
       count(*) FILTER (WHERE human_winner_id IS NOT NULL) AS n_decisive,
       count(*) FILTER (WHERE human_winner_id IS NOT NULL AND machine_winner_id IS NOT NULL) AS n_with_pair,
       count(*) FILTER (WHERE human_winner_id IS NOT NULL AND human_winner_id = machine_winner_id) AS n_agree
FROM labelled
GROUP BY ALL ORDER BY labeller, week NULLS LAST
