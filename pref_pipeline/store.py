"""Tables the pipeline keeps itself, beside the ones the Dagster IO manager writes.

``judgment_history`` (append-only: every verdict any judge version ever gave), ``human_labels``
(from review sheets and known-answer sets) and rows appended to ``quarantine`` by gates and the
export. Each write is one short-lived DuckDB connection to the pipeline's database (schema
``pref``), retried while another process holds the file (DuckDB allows one writer at a time).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pandas as pd
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_exponential

from pref_pipeline import schema
from pref_pipeline.paths import SCHEMA

HISTORY_TABLE = "judgment_history"
QUARANTINE_TABLE = "quarantine"
HUMAN_LABELS_TABLE = "human_labels"

# Column name -> DuckDB type, from the declarations in schema.py (the audit reads these two).
HISTORY_COLUMNS = schema.duckdb_types(HISTORY_TABLE)
HUMAN_LABEL_COLUMNS = schema.duckdb_types(HUMAN_LABELS_TABLE)

_locked = retry(retry=retry_if_exception_type(duckdb.IOException), wait=wait_exponential(multiplier=0.1, max=3),
                stop=stop_after_delay(120), reraise=True)


@contextlib.contextmanager
def connect(database: Path | str, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short connection; the caller's function is retried (see ``_locked``) while the file is locked."""
    con = duckdb.connect(str(database), read_only=read_only)
    try:
        if not read_only:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        yield con
    finally:
        con.close()


def table_exists(con: duckdb.DuckDBPyConnection, table: str, schema: str = SCHEMA) -> bool:
    return bool(con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
                            [schema, table]).fetchall()[0][0])


@_locked
def read_table(database: Path | str, table: str) -> pd.DataFrame | None:
    """A whole table, or None when it (or the database) does not exist yet."""
    if not Path(database).exists():
        return None
    with connect(database, read_only=True) as con:
        if not table_exists(con, table):
            return None
        return con.execute(f"SELECT * FROM {SCHEMA}.{table}").fetchdf()


# --------------------------------------------------------------------------- judgment history

def history_rows(judgments: pd.DataFrame, prompts: pd.DataFrame | None = None, run_id: str | None = None,
                 now: datetime | None = None, slots: dict[str, int] | None = None) -> pd.DataFrame:
    """The judgments as history rows (category from the prompts; timestamps kept).

    ``slots`` maps a judge fingerprint to its position in the configuration's judge list: the audit
    compares each new version of a judge with the previous version in the same slot.
    """
    now = now or datetime.now(timezone.utc)
    frame = judgments.copy()
    categories = dict(zip(prompts["prompt_id"], prompts["category"])) if prompts is not None and len(prompts) else {}
    frame["category"] = frame["prompt_id"].map(categories) if len(frame) else None
    frame["judge_slot"] = frame["judge_fingerprint"].map(slots or {}) if len(frame) else None
    frame["recorded_at"] = pd.Timestamp(now)
    frame["run_id"] = run_id
    frame["recency_weight"] = 1.0
    return schema.conform(HISTORY_TABLE, frame)[list(HISTORY_COLUMNS)]


@_locked
def append_judgment_history(database: Path | str, judgments: pd.DataFrame, prompts: pd.DataFrame | None = None,
                            run_id: str | None = None, half_life_days: float = 30.0,
                            now: datetime | None = None, slots: dict[str, int] | None = None) -> tuple[int, int]:
    """Append verdicts not yet recorded (key: judgment_id + judge_fingerprint); (appended, total rows).

    ``recency_weight`` = 0.5 ** (days before the newest verdict in the history / half-life), refreshed
    for every row at each append, so a consumer can weight recent verdicts more.
    """
    rows = history_rows(judgments, prompts, run_id, now, slots)
    with connect(database) as con:
        con.execute(schema.ddl(HISTORY_TABLE, SCHEMA))
        before = con.execute(f"SELECT count(*) FROM {SCHEMA}.{HISTORY_TABLE}").fetchall()[0][0]
        if len(rows):
            con.register("new_rows", rows)
            columns = ", ".join(f'"{c}"' for c in HISTORY_COLUMNS)
            unique = "(SELECT DISTINCT ON (judgment_id, judge_fingerprint) * FROM new_rows)"
            con.execute(f"INSERT OR IGNORE INTO {SCHEMA}.{HISTORY_TABLE} ({columns}) "
                        + schema.select_cast(HISTORY_TABLE, unique))
            con.unregister("new_rows")
        con.execute(f"""
            UPDATE {SCHEMA}.{HISTORY_TABLE} SET recency_weight = pow(0.5,
                greatest(epoch((SELECT max(judged_at) FROM {SCHEMA}.{HISTORY_TABLE})) - epoch(judged_at), 0)
                / 86400.0 / ?)""", [float(half_life_days)])
        after = con.execute(f"SELECT count(*) FROM {SCHEMA}.{HISTORY_TABLE}").fetchall()[0][0]
    return int(after - before), int(after)


@_locked
def newest_verdict(database: Path | str) -> pd.Timestamp | None:
    """The newest ``judged_at`` in ``judgment_history`` (every batch, every judge version), or None."""
    if not Path(database).exists():
        return None
    with connect(database, read_only=True) as con:
        if not table_exists(con, HISTORY_TABLE):
            return None
        value = con.execute(f"SELECT max(judged_at) FROM {SCHEMA}.{HISTORY_TABLE}").fetchall()[0][0]
    return None if value is None else pd.Timestamp(value)


# --------------------------------------------------------------------------- quarantine rows written outside the IO manager

@_locked
def append_quarantine(database: Path | str, rows: pd.DataFrame) -> int:
    """Add quarantine rows (from a failed gate or the export) to the ``quarantine`` table, by column name.

    Rows already present (same ``quarantine_id``) are replaced, so re-running a failed gate does not
    duplicate them. The table is the one the ``quarantine`` asset writes; when it does not exist yet
    it is created from the declaration in ``schema.py``.
    """
    if rows.empty:
        return 0
    rows = schema.conform(QUARANTINE_TABLE, rows, add_missing=False)
    with connect(database) as con:
        con.register("new_rows", rows)
        con.execute(schema.ddl(QUARANTINE_TABLE, SCHEMA))
        existing = [r[0] for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
            "ORDER BY ordinal_position", [SCHEMA, QUARANTINE_TABLE]).fetchall()]
        shared = [c for c in existing if c in rows.columns]
        columns = ", ".join(f'"{c}"' for c in shared)
        con.execute(f"DELETE FROM {SCHEMA}.{QUARANTINE_TABLE} WHERE quarantine_id IN (SELECT quarantine_id FROM new_rows)")
        con.execute(f"INSERT INTO {SCHEMA}.{QUARANTINE_TABLE} ({columns}) SELECT {columns} FROM new_rows")
        con.unregister("new_rows")
    return len(rows)


# --------------------------------------------------------------------------- human labels

def label_id(source: str, item: str, labeller: str | None) -> str:
    return "h-" + hashlib.sha256(f"{source}|{item}|{labeller or ''}".encode()).hexdigest()[:16]


@_locked
def upsert_human_labels(database: Path | str, labels: pd.DataFrame) -> int:
    """Store labels (HUMAN_LABEL_COLUMNS); a label with the same id (source, item, labeller) is replaced."""
    frame = schema.conform(HUMAN_LABELS_TABLE, labels)[list(HUMAN_LABEL_COLUMNS)]
    with connect(database) as con:
        con.execute(schema.ddl(HUMAN_LABELS_TABLE, SCHEMA))
        if len(frame):
            con.register("new_rows", frame)
            columns = ", ".join(f'"{c}"' for c in HUMAN_LABEL_COLUMNS)
            con.execute(f"INSERT OR REPLACE INTO {SCHEMA}.{HUMAN_LABELS_TABLE} ({columns}) "
                        + schema.select_cast(HUMAN_LABELS_TABLE, "new_rows"))
            con.unregister("new_rows")
    return len(frame)
