-- quarantine over its Parquet files ({source}: each batch's part written by the pipeline and the rows appended
-- by gates and the export, with their `filename`). One row per quarantine_id: the latest wins.
SELECT * EXCLUDE (filename) FROM {source}
QUALIFY row_number() OVER (PARTITION BY quarantine_id ORDER BY quarantined_at DESC NULLS LAST, filename DESC) = 1
