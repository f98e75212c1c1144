-- Quarantined rows by stage and reason.
SELECT stage, reason, count(*) AS n FROM quarantine GROUP BY ALL ORDER BY n DESC, stage, reason
