-- Each prompt batch in the tables: its stored pairs and, when its pairs gate blocked it, the rows its gate set
-- aside and why: the detail of a row standing for the whole batch (reason $batch_rejected, else the batch's
-- only gate row), which leads with the cause (pref_pipeline.diagnosis) before the failed expectations; and its
-- comparisons waiting for people (status $awaiting_label).
WITH seen AS (
    SELECT batch_id FROM comparisons UNION SELECT batch_id FROM pairs UNION SELECT batch_id FROM quarantine
), stored AS (
    SELECT batch_id, count(*) AS n FROM pairs GROUP BY batch_id
), waiting AS (
    SELECT batch_id, count(*) AS n FROM comparisons WHERE status = $awaiting_label GROUP BY batch_id
), gate AS (
    SELECT batch_id, count(*) AS n, coalesce(min(detail) FILTER (WHERE reason = $batch_rejected), min(detail)) AS why
    FROM quarantine WHERE stage = $gate_stage GROUP BY batch_id
)
SELECT s.batch_id, coalesce(p.n, 0) AS pairs, coalesce(g.n, 0) AS set_aside, g.why, coalesce(w.n, 0) AS awaiting
FROM seen s
LEFT JOIN stored p ON p.batch_id IS NOT DISTINCT FROM s.batch_id
LEFT JOIN gate g ON g.batch_id IS NOT DISTINCT FROM s.batch_id
LEFT JOIN waiting w ON w.batch_id IS NOT DISTINCT FROM s.batch_id
ORDER BY s.batch_id NULLS FIRST
