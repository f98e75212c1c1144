"""Table storage: dagster-duckdb's pandas IO manager, taught to store empty tables.

The stock handler skips empty DataFrames, so a step that keeps zero rows (every verdict
inconsistent, say) leaves no table and the next step fails with "table does not exist" instead of
the gate saying "0 pairs". Here an empty frame becomes an empty table with its columns.
"""

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from dagster import OutputContext
from dagster._core.definitions.metadata import TableMetadataSet
from dagster._core.storage.db_io_manager import DbTypeHandler, TableSlice
from dagster_duckdb import DuckDBIOManager
from dagster_duckdb_pandas import DuckDBPandasTypeHandler


def retype_null_columns(connection, schema: str, table: str, obj: pd.DataFrame) -> None:
    """Give the table's NULL-typed columns the type of this frame's values.

    A batch whose column is all null (no failed call, no winner, no pair at all) creates the table with
    DuckDB's NULL type for it, which then refuses every later batch's values ("Unimplemented type for
    cast (VARCHAR -> NULL)").
    """
    columns = connection.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
        [schema, table]).fetchall()
    null_columns = [name for name, kind in columns if kind.strip('"') == "NULL"]
    if not null_columns or obj.empty:
        return
    connection.register("pref_incoming_frame", obj)
    try:
        incoming = {r[0]: r[1] for r in connection.execute("DESCRIBE SELECT * FROM pref_incoming_frame").fetchall()}
    finally:
        connection.unregister("pref_incoming_frame")
    for name in null_columns:
        kind = incoming.get(name)
        if kind and kind.strip('"') != "NULL":
            connection.execute(f'ALTER TABLE {schema}.{table} ALTER COLUMN "{name}" TYPE {kind}')


class EmptyAwarePandasTypeHandler(DuckDBPandasTypeHandler):
    def handle_output(self, context: OutputContext, table_slice: TableSlice, obj: pd.DataFrame, connection):
        retype_null_columns(connection, table_slice.schema, table_slice.table, obj)
        if not obj.empty:
            super().handle_output(context, table_slice, obj, connection)
            return
        # Create the table with the frame's columns if it is missing; the IO manager has already
        # deleted this slice's old rows, so an existing table now holds none of them.
        connection.execute(f"create table if not exists {table_slice.schema}.{table_slice.table} as select * from obj")
        count = TableMetadataSet(partition_row_count=0) if context.has_partition_key else TableMetadataSet(row_count=0)
        context.add_output_metadata(dict(count))


class PipelineIOManager(DuckDBIOManager):
    """Stores every asset's DataFrame as a table in the pipeline's DuckDB database."""

    def create_io_manager(self, context):
        Path(self.database).parent.mkdir(parents=True, exist_ok=True)  # a fresh home: the file's folder first
        return super().create_io_manager(context)

    @staticmethod
    def type_handlers() -> Sequence[DbTypeHandler]:
        return [EmptyAwarePandasTypeHandler()]

    @staticmethod
    def default_load_type() -> type:
        return pd.DataFrame
