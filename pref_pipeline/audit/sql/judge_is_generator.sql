-- Judges that are the very same model (provider:model) as a generator of candidates in the data.
SELECT DISTINCT judge_model FROM judgments
WHERE judge_model IN (SELECT generator_model FROM candidates)
ORDER BY judge_model
