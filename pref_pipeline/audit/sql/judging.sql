-- The judge calls: every verdict, the unparseable and failed ones, retries, and the judge models seen.
SELECT count(*) AS n_judgments,
       count(*) FILTER (WHERE parse_status = 'unparseable') AS n_unparseable,
       count(*) FILTER (WHERE error IS NOT NULL) AS n_errors,
       coalesce(sum(attempts - 1) FILTER (WHERE attempts > 1), 0) AS n_parse_retries,
       list(DISTINCT judge_model ORDER BY judge_model) FILTER (WHERE judge_model IS NOT NULL) AS judge_models
FROM judgments
