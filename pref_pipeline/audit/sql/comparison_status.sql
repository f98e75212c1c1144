-- Comparisons by outcome (consistent, inconsistent, tie, error, ...).
SELECT status, count(*) AS n FROM comparisons GROUP BY status ORDER BY n DESC, status
