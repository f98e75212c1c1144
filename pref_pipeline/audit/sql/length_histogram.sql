-- Words in chosen minus words in rejected of the judge-labelled pairs; differences beyond ± $clip are counted in
-- the outermost bins.
SELECT greatest(least(chosen_words - rejected_words, $clip), -$clip) AS diff, count(*) AS n
FROM kept_pairs WHERE judge_labelled GROUP BY 1 ORDER BY 1
