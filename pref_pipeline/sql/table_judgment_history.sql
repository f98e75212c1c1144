-- judgment_history over its appended Parquet files ({source}: every file, with its `filename`).
-- Each verdict once (judgment_id + judge_fingerprint): the first recording wins. recency_weight is computed
-- here, not stored: 0.5 ** (days before the newest verdict / half-life), with the half-life of the newest
-- recording (what the last append was given), as the old store refreshed it at every append.
WITH recorded AS (
    SELECT * EXCLUDE (filename) FROM {source}
    QUALIFY row_number() OVER (PARTITION BY judgment_id, judge_fingerprint ORDER BY recorded_at, filename) = 1
)
SELECT * REPLACE (
    pow(0.5, greatest(epoch(max(judged_at) OVER ()) - epoch(judged_at), 0) / 86400.0
        / coalesce(arg_max(recency_half_life_days, recorded_at) OVER (), 30.0)) AS recency_weight)
FROM recorded
