-- Contingency tables for Cohen's kappa: every two judge versions on the same (comparison, order),
-- counted by the label each gave (x, y or tie).
WITH v AS (SELECT judge_fingerprint AS fp, comparison_id, "order", preferred FROM parsed)
SELECT a.fp AS fingerprint_a, b.fp AS fingerprint_b, a.preferred AS label_a, b.preferred AS label_b, count(*) AS n
FROM v a JOIN v b ON a.comparison_id = b.comparison_id AND a."order" = b."order" AND a.fp < b.fp
GROUP BY ALL ORDER BY fingerprint_a, fingerprint_b, label_a, label_b
