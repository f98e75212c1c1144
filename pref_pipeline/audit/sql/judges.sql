-- Every judge version with a parsed verdict, and its model.
SELECT judge_fingerprint, any_value(judge_model) AS judge_model FROM parsed
GROUP BY judge_fingerprint ORDER BY judge_fingerprint
