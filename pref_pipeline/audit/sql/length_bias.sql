-- Overall length bias of the kept pairs: how often the longer response (in words) was chosen. The judge's figures
-- (n_compared ... mean_rejected_words) are over judge-labelled pairs of unequal length; the seed's figure
-- (n_longer_chosen_all over n_pairs) over every kept pair, a tie of length counting as not longer.
SELECT count(*) FILTER (WHERE judge_labelled AND chosen_words <> rejected_words) AS n_compared,
       count(*) FILTER (WHERE judge_labelled AND chosen_words > rejected_words) AS n_longer_chosen,
       count(*) FILTER (WHERE judge_labelled AND chosen_words = rejected_words) AS n_equal_length,
       avg(chosen_words) FILTER (WHERE judge_labelled) AS mean_chosen_words,
       avg(rejected_words) FILTER (WHERE judge_labelled) AS mean_rejected_words,
       count(*) FILTER (WHERE judge_labelled) AS n_judge_labelled,
       count(*) AS n_pairs,
       count(*) FILTER (WHERE chosen_words > rejected_words) AS n_longer_chosen_all
FROM kept_pairs
