-- Words in chosen minus words in rejected; differences beyond ± $clip are counted in the outermost bins.
SELECT greatest(least(chosen_words - rejected_words, $clip), -$clip) AS diff, count(*) AS n
FROM kept_pairs GROUP BY 1 ORDER BY 1
