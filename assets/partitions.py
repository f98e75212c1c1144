"""How the pipeline is partitioned: one dynamic partition per prompt batch (a file, or the built-in set).

A static x dynamic multi-partition through the DuckDB IO manager fails in Dagster 1.13
(dagster-io/dagster#32631), so there is one dynamic dimension. Every table carries a ``batch_id``
column that the IO manager uses to read and replace one partition's rows.
"""

import dagster as dg

PROMPT_BATCHES = dg.DynamicPartitionsDefinition(name="prompt_batches")
BATCH_COLUMN = "batch_id"
PARTITION_METADATA = {"partition_expr": BATCH_COLUMN}
