-- Flip rate between consecutive versions of a judge: a judge is a slot of the configuration's judge list
-- (judge_slot; the judge model where it is unknown), each of its fingerprints a version, ordered by
-- first verdict. The same (comparison, order) judged by a version and the one before it either keeps or
-- flips its verdict.
WITH versions AS (
    SELECT judge_fingerprint AS fp, coalesce(CAST(any_value(judge_slot) AS VARCHAR), any_value(judge_model)) AS slot,
           min(judged_at) AS t
    FROM judgment_history GROUP BY judge_fingerprint
),
steps AS (SELECT fp, slot, lag(fp) OVER (PARTITION BY slot ORDER BY t, fp) AS previous FROM versions),
v AS (
    SELECT judge_fingerprint AS fp, comparison_id, "order", preferred, coalesce(category, '(unknown)') AS category
    FROM judgment_history WHERE preferred IS NOT NULL AND error IS NULL
)
SELECT s.previous AS old_fp, s.fp AS new_fp, s.slot, n.category, count(*) AS n,
       sum((o.preferred <> n.preferred)::INTEGER) AS n_flipped
FROM steps s
JOIN v o ON o.fp = s.previous
JOIN v n ON n.fp = s.fp AND n.comparison_id = o.comparison_id AND n."order" = o."order"
WHERE s.previous IS NOT NULL
GROUP BY ALL ORDER BY old_fp, new_fp, n.category
