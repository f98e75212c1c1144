-- Per strategy: the comparisons that gave no pair, by their status (the quarantine reason).
SELECT coalesce(strategy, '(unknown)') AS strategy, status, count(*) AS n
FROM comparisons
WHERE winner_id IS NULL
GROUP BY 1, 2
ORDER BY 1, n DESC, 2
