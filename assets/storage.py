"""Table storage: dagster-duckdb's pandas IO manager, typed by ``pref_pipeline.schema`` and taught to store
empty tables.

Every frame written to a declared table is first given its declared column types (``schema.conform``),
so an all-null column is stored as what it is (VARCHAR, DOUBLE, ...) and never as DuckDB's NULL type,
which would refuse every later batch's values. The stock handler skips empty DataFrames, so a step that
keeps zero rows (every verdict inconsistent, say) would leave no table and the next step would fail with
"table does not exist" instead of the gate saying "0 pairs": here an empty frame becomes an empty table.
"""

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from dagster import OutputContext
from dagster._core.definitions.metadata import TableMetadataSet
from dagster._core.storage.db_io_manager import DbTypeHandler, TableSlice
from dagster_duckdb import DuckDBIOManager
from dagster_duckdb_pandas import DuckDBPandasTypeHandler

from pref_pipeline import schema


class TypedPandasTypeHandler(DuckDBPandasTypeHandler):
    def handle_output(self, context: OutputContext, table_slice: TableSlice, obj: pd.DataFrame, connection):
        if table_slice.table in schema.TABLES:
            obj = schema.conform(table_slice.table, obj, add_missing=False)
        if not obj.empty:
            super().handle_output(context, table_slice, obj, connection)
            return
        # Create the table with the frame's (typed) columns if it is missing; the IO manager has already
        # deleted this slice's old rows, so an existing table now holds none of them.
        connection.register("pref_empty_frame", obj)
        try:
            connection.execute(f"create table if not exists {table_slice.schema}.{table_slice.table} as "
                               "select * from pref_empty_frame")
        finally:
            connection.unregister("pref_empty_frame")
        count = TableMetadataSet(partition_row_count=0) if context.has_partition_key else TableMetadataSet(row_count=0)
        context.add_output_metadata(dict(count))


class PipelineIOManager(DuckDBIOManager):
    """Stores every asset's DataFrame as a table in the pipeline's DuckDB database."""

    def create_io_manager(self, context):
        Path(self.database).parent.mkdir(parents=True, exist_ok=True)  # a fresh home: the file's folder first
        return super().create_io_manager(context)

    @staticmethod
    def type_handlers() -> Sequence[DbTypeHandler]:
        return [TypedPandasTypeHandler()]

    @staticmethod
    def default_load_type() -> type:
        return pd.DataFrame
