-- human_labels over its appended Parquet files ({source}, with their `filename`, named append-<time>-<uuid>).
-- One row per label_id (source, item, labeller): the latest import wins.
SELECT * EXCLUDE (filename) FROM {source}
QUALIFY row_number() OVER (PARTITION BY label_id ORDER BY filename DESC) = 1
