"""The pipeline's tables as Parquet files, one folder per table and batch, read together through DuckDB.

Layout, under the home (a folder or an object-store URL, see ``paths.Home``)::

    tables/<table>/batch=<key>/part.parquet            what a step stored for the batch (replaced whole)
    tables/<table>/batch=<key>/append-<ns>-<uuid>.parquet   rows appended (history, labels, quarantine rows)

Every write is a new file or an atomic replacement (a temporary file renamed over the old one; on an object
store a single put), so any number of processes write at once without a lock and a reader never sees half a
file. Readers get one DuckDB connection (``connect``) with a view per table in schema ``pref``, over
``read_parquet(<table>/*/*.parquet, union_by_name=true)`` (without hive partition columns: every row carries its
``batch_id``); the appended tables are deduplicated by their key
in SQL (``sql/table_<name>.sql``). An object-store home is read through its fsspec filesystem, registered
on the connection (DuckDB's own httpfs extension is not needed).
"""

from __future__ import annotations

import threading
import time
import uuid
from importlib import resources
from pathlib import Path
from urllib.parse import quote

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from upath import UPath

from pref_pipeline import schema
from pref_pipeline.atomic import replace_atomically
from pref_pipeline.paths import SCHEMA, Home, OldLayoutError

PART_FILE = "part.parquet"
UNPARTITIONED = "all"  # the batch folder of a table kept across batches (human_labels)
DEDUPLICATED = ("judgment_history", "quarantine", "human_labels")  # tables with sql/table_<name>.sql


def check_layout(home: Home) -> None:
    """Raise ``OldLayoutError`` for a home written before the Parquet tables, rather than reading nothing."""
    if home.old_database.exists() and not home.tables.exists():
        raise OldLayoutError(
            f"{home.location} holds tables in the old single-file layout ({home.old_database.name}), which this "
            f"version no longer reads: tables are now Parquet files under {home.tables}. Run the pipeline with a new "
            f"PREF_PIPELINE_HOME (or move {home.old_database.name} out of this one and run again to rebuild the "
            "tables from the response cache, without paying for the calls again).")


def batch_folder(batch: str | None) -> str:
    return "batch=" + quote(batch if batch is not None else UNPARTITIONED, safe="")


def part_path(home: Home, table: str, batch: str | None) -> UPath:
    """Where a step's rows for one batch are stored."""
    return home.tables / table / batch_folder(batch) / PART_FILE


def _is_local(path: UPath) -> bool:
    return path.protocol in ("", "file", "local")


def _arrow(frame: pd.DataFrame) -> pa.Table:
    try:
        return pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        # An undeclared table's object column mixing kinds (a raw row that is a number here, text there): as text.
        mixed = {c: frame[c].map(lambda v: v if v is None or (isinstance(v, float) and pd.isna(v)) else str(v))
                 for c in frame.columns if frame[c].dtype == object}
        return pa.Table.from_pandas(frame.assign(**mixed), preserve_index=False)


def write_file(path: UPath, frame: pd.DataFrame) -> UPath:
    """``frame`` as a Parquet file at ``path``, whole or not at all (an empty frame keeps its columns)."""
    table = _arrow(frame)
    if _is_local(path):
        local = Path(path.path)
        local.parent.mkdir(parents=True, exist_ok=True)
        replace_atomically(local, lambda tmp: pq.write_table(table, tmp))
        return path
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    path.write_bytes(sink.getvalue().to_pybytes())  # one put: an object appears whole or not at all
    return path


def write_part(home: Home, table: str, batch: str | None, frame: pd.DataFrame) -> UPath:
    """Store a step's rows for one batch, replacing what it stored before."""
    check_layout(home)
    return write_file(part_path(home, table, batch), frame)


def append(home: Home, table: str, batch: str | None, frame: pd.DataFrame) -> UPath:
    """Add rows as a new file of their own (never rewriting another), so appends from many processes never meet."""
    check_layout(home)
    name = f"append-{time.time_ns():019d}-{uuid.uuid4().hex}.parquet"
    return write_file(home.tables / table / batch_folder(batch) / name, frame)


_readers = threading.local()


def _reader() -> duckdb.DuckDBPyConnection:
    """This thread's in-memory DuckDB connection for ``read_file``: opening one costs ~13 ms, and a step reads
    several files (a run, dozens)."""
    con = getattr(_readers, "con", None)
    if con is None:
        con = _readers.con = duckdb.connect()
    return con


def read_file(path: UPath) -> pd.DataFrame:
    """One Parquet file as a frame, with the dtypes DuckDB gives (what the readers always had)."""
    with path.fs.open(path.path, "rb") as handle:
        table = pq.read_table(handle)
    return _reader().from_arrow(table).df()


def stored_tables(home: Home) -> list[str]:
    """Tables with at least one Parquet file."""
    root = home.tables
    root.fs.invalidate_cache()  # an object store's listings are cached per process: see other processes' files
    if not root.exists():
        return []
    fs = root.fs
    found = fs.glob(f"{root.path.rstrip('/')}/*/*/*.parquet")
    return sorted({p.rstrip("/").split("/")[-3] for p in found})


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _view_sql(name: str) -> str:
    return resources.files("pref_pipeline").joinpath(f"sql/table_{name}.sql").read_text(encoding="utf-8")


def _with_declared_columns(con: duckdb.DuckDBPyConnection, table: str, source: str) -> str:
    """``source`` with every declared column of the table, those no file has as typed NULLs (files written before a
    column was declared), so the table's SQL can name them."""
    present = {row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
    missing = [f'CAST(NULL AS {kind}) AS "{name}"' for name, kind in schema.duckdb_types(table).items()
               if name not in present]
    return f"(SELECT *, {', '.join(missing)} FROM {source})" if missing else source


def connect(home: Home, memory_limit: str | None = None,
            only: tuple[str, ...] | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with a view ``pref.<table>`` over each stored table's Parquet files
    (``only``: just these tables, so a caller that reads one does not describe every other).

    Tables with no file yet have no view (``table_exists`` says so). The caller closes the connection.
    """
    check_layout(home)
    con = duckdb.connect()
    try:
        if memory_limit:
            con.execute(f"SET memory_limit = '{memory_limit}'")
        if home.url:
            con.register_filesystem(home.tables.fs)
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        for table in stored_tables(home):
            if only is not None and table not in only:
                continue
            pattern = _quoted(str(home.tables / table) + "/*/*.parquet")
            source = f"read_parquet({pattern}, union_by_name = true, filename = true, hive_partitioning = false)"
            if table in DEDUPLICATED:
                body = _view_sql(table).replace("{source}", _with_declared_columns(con, table, source))
            else:
                body = f"SELECT * EXCLUDE (filename) FROM {source}"
            con.execute(f"CREATE VIEW {SCHEMA}.{table} AS {body}")
    except BaseException:
        con.close()
        raise
    return con


def table_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
                            [SCHEMA, table]).fetchall()[0][0])


def read_table(home: Home, table: str) -> pd.DataFrame | None:
    """A whole table (every batch), or None when nothing of it is stored yet."""
    con = connect(home, only=(table,))
    try:
        if not table_exists(con, table):
            return None
        return con.execute(f"SELECT * FROM {SCHEMA}.{table}").fetchdf()
    finally:
        con.close()


def read_tables(home: Home) -> dict[str, pd.DataFrame]:
    """Every stored table, read whole."""
    con = connect(home)
    try:
        return {table: con.execute(f"SELECT * FROM {SCHEMA}.{table}").fetchdf() for table in stored_tables(home)}
    finally:
        con.close()


def declared_frame(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    """A frame of a declared table with its declared column types (an all-null column stays typed)."""
    return schema.conform(table, frame, add_missing=False) if table in schema.TABLES else frame


__all__ = ["OldLayoutError", "append", "check_layout", "connect", "part_path", "read_file", "read_table",
           "read_tables", "stored_tables", "table_exists", "write_file", "write_part"]
