-- Overall length bias of the kept pairs: how often the longer response (in words) was chosen.
SELECT count(*) FILTER (WHERE chosen_words <> rejected_words) AS n_compared,
       count(*) FILTER (WHERE chosen_words > rejected_words) AS n_longer_chosen,
       count(*) FILTER (WHERE chosen_words = rejected_words) AS n_equal_length,
       avg(chosen_words) AS mean_chosen_words,
       avg(rejected_words) AS mean_rejected_words,
       count(*) AS n_pairs
FROM kept_pairs
