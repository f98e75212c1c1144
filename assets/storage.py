"""Table storage: Dagster's ``UPathIOManager`` writing each asset's frame as Parquet, one file per batch.

``<home>/tables/<table>/batch=<key>/part.parquet`` (``pref_pipeline.table_files``): a local folder or an
object store (fsspec through UPath), written whole or not at all, so runs of different batches never wait
for one another.

Every frame written to a declared table is first given its declared column types (``schema.conform``),
so an all-null column is stored as what it is and never as Parquet's null type. An empty frame is still
a file with the declared columns: the next step reads 0 rows, not "missing".
"""

from typing import Any

import dagster as dg
import pandas as pd
from dagster import InputContext, OutputContext
from upath import UPath

from pref_pipeline import table_files
from pref_pipeline.paths import Home


class ParquetTables(dg.UPathIOManager):
    """Stores every asset's DataFrame as ``tables/<asset>/batch=<key>/part.parquet`` under the home."""

    extension = ".parquet"

    def __init__(self, home: Home):
        self.home = home
        super().__init__(base_path=home.tables)

    def get_path_for_partition(self, context: InputContext | OutputContext, path: UPath, partition: str) -> UPath:
        return path / table_files.batch_folder(partition) / "part"

    def get_asset_relative_path(self, context: InputContext | OutputContext) -> UPath:
        if context.has_asset_partitions:
            return UPath(self._table(context))  # + batch=<key>/part (get_path_for_partition)
        return UPath(self._table(context), table_files.batch_folder(None), "part")  # unpartitioned: one folder

    @staticmethod
    def _table(context: InputContext | OutputContext) -> str:
        return context.asset_key.path[-1]

    def dump_to_path(self, context: OutputContext, obj: pd.DataFrame, path: UPath) -> None:
        table_files.check_layout(self.home)
        frame = table_files.declared_frame(self._table(context), obj)
        table_files.write_file(path, frame)
        # Dagster's table row counts (what TableMetadataSet names; it is not exported by dagster 1.13).
        key = "dagster/partition_row_count" if context.has_partition_key else "dagster/row_count"
        context.add_output_metadata({key: len(frame)})

    def load_from_path(self, context: InputContext, path: UPath) -> pd.DataFrame:
        return table_files.read_file(path)

    def get_metadata(self, context: OutputContext, obj: Any) -> dict:
        return {}

