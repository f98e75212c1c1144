-- The judge's length bias per group (judge-labelled pairs); {group} is one of the grouping expressions of
-- pref_pipeline.audit.length.GROUPS.
SELECT {group} AS grp,
       count(*) FILTER (WHERE chosen_words <> rejected_words) AS n_compared,
       count(*) FILTER (WHERE chosen_words > rejected_words) AS n_longer_chosen
FROM kept_pairs WHERE judge_labelled GROUP BY ALL ORDER BY n_compared DESC, grp
