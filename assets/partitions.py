"""How the pipeline is partitioned: one dynamic partition per prompt batch (a file, or the built-in set).

One dynamic dimension: a static x dynamic multi-partition of stored assets fails in Dagster 1.13
(dagster-io/dagster#32631). Each batch's rows are a file of their own (``assets/storage.py``), and every row
also names its batch in ``batch_id`` (``pref_pipeline.schema.BATCH_COLUMN``), which readers of the tables use.
"""

import dagster as dg

PROMPT_BATCHES = dg.DynamicPartitionsDefinition(name="prompt_batches")
