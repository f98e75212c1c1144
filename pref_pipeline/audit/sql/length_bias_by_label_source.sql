-- Length bias per label source (judge, construction, construction+judge, ...): pairs, pairs of unequal length and
-- pairs whose longer response was chosen.
SELECT coalesce(label_source, '(unrecorded)') AS label_source, bool_and(judge_labelled) AS judge_labelled,
       count(*) AS n_pairs,
       count(*) FILTER (WHERE chosen_words <> rejected_words) AS n_compared,
       count(*) FILTER (WHERE chosen_words > rejected_words) AS n_longer_chosen
FROM kept_pairs GROUP BY 1 ORDER BY n_pairs DESC, 1
