"""Table storage: dagster-duckdb's pandas IO manager, taught to store empty tables.

The stock handler skips empty DataFrames, so a step that keeps zero rows (every verdict
inconsistent, say) leaves no table and the next step fails with "table does not exist" instead of
the gate saying "0 pairs". Here an empty frame becomes an empty table with its columns.
"""

from collections.abc import Sequence
from pathlib import Path

import duckdb
import pandas as pd
from dagster import OutputContext
from dagster._core.definitions.metadata import TableMetadataSet
from dagster._core.storage.db_io_manager import DbTypeHandler, TableSlice
from dagster_duckdb import DuckDBIOManager
from dagster_duckdb_pandas import DuckDBPandasTypeHandler
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_exponential

from pref_pipeline.paths import SCHEMA


class EmptyAwarePandasTypeHandler(DuckDBPandasTypeHandler):
    def handle_output(self, context: OutputContext, table_slice: TableSlice, obj: pd.DataFrame, connection):
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

    @staticmethod
    def type_handlers() -> Sequence[DbTypeHandler]:
        return [EmptyAwarePandasTypeHandler()]

    @staticmethod
    def default_load_type() -> type:
        return pd.DataFrame


@retry(retry=retry_if_exception_type(duckdb.IOException), wait=wait_exponential(multiplier=0.2, max=5),
       stop=stop_after_delay(120), reraise=True)
def read_tables(database: Path, names: list[str], schema: str = SCHEMA) -> dict[str, pd.DataFrame]:
    """Whole tables (every batch), read in one short connection; waits while another process writes."""
    with duckdb.connect(str(database), read_only=True) as con:
        return {name: con.execute(f"select * from {schema}.{name}").fetchdf() for name in names}
