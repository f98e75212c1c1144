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

from pref_pipeline.paths import SCHEMA

HISTORY_TABLE = "judgment_history"
QUARANTINE_TABLE = "quarantine"
HUMAN_LABELS_TABLE = "human_labels"

HISTORY_COLUMNS = {
    "judgment_id": "VARCHAR", "judge_fingerprint": "VARCHAR", "comparison_id": "VARCHAR", "prompt_id": "VARCHAR",
    "category": "VARCHAR", "candidate_x_id": "VARCHAR", "candidate_y_id": "VARCHAR", "order": "VARCHAR",
    "judge_model": "VARCHAR", "criteria": "VARCHAR", "preference": "VARCHAR", "preferred": "VARCHAR",
    "confidence": "DOUBLE", "reasoning": "VARCHAR", "raw_output": "VARCHAR", "parse_status": "VARCHAR",
    "error": "VARCHAR", "judged_at": "TIMESTAMPTZ", "recorded_at": "TIMESTAMPTZ", "run_id": "VARCHAR",
    "batch_id": "VARCHAR", "judge_slot": "INTEGER", "recency_weight": "DOUBLE",
}
HUMAN_LABEL_COLUMNS = {
    "label_id": "VARCHAR", "source": "VARCHAR", "comparison_id": "VARCHAR", "pair_id": "VARCHAR",
    "prompt_id": "VARCHAR", "category": "VARCHAR", "human_preference": "VARCHAR", "human_winner_id": "VARCHAR",
    "labeller": "VARCHAR", "notes": "VARCHAR", "labelled_at": "TIMESTAMPTZ",
}

_locked = retry(retry=retry_if_exception_type(duckdb.IOException), wait=wait_exponential(multiplier=0.1, max=3),
                stop=stop_after_delay(120), reraise=True)


def _ddl(table: str, columns: dict[str, str], key: list[str]) -> str:
    body = ", ".join(f'"{name}" {kind}' for name, kind in columns.items())
    return (f"CREATE TABLE IF NOT EXISTS {SCHEMA}.{table} ({body}, "
            "PRIMARY KEY (" + ", ".join(f'"{k}"' for k in key) + "))")


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
    for column in HISTORY_COLUMNS:
        if column not in frame.columns:
            frame[column] = None
    return frame[list(HISTORY_COLUMNS)]


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
        con.execute(_ddl(HISTORY_TABLE, HISTORY_COLUMNS, ["judgment_id", "judge_fingerprint"]))
        before = con.execute(f"SELECT count(*) FROM {SCHEMA}.{HISTORY_TABLE}").fetchall()[0][0]
        if len(rows):
            con.register("new_rows", rows)
            columns = ", ".join(f'"{c}"' for c in HISTORY_COLUMNS)
            casts = ", ".join(f'CAST("{c}" AS {kind})' for c, kind in HISTORY_COLUMNS.items())
            con.execute(f"INSERT OR IGNORE INTO {SCHEMA}.{HISTORY_TABLE} ({columns}) "
                        f"SELECT {casts} FROM (SELECT DISTINCT ON (judgment_id, judge_fingerprint) * FROM new_rows)")
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
    it is created from these rows' columns.
    """
    if rows.empty:
        return 0
    with connect(database) as con:
        con.register("new_rows", rows)
        if not table_exists(con, QUARANTINE_TABLE):
            con.execute(f"CREATE TABLE {SCHEMA}.{QUARANTINE_TABLE} AS SELECT * FROM new_rows LIMIT 0")
        described = con.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
            "ORDER BY ordinal_position", [SCHEMA, QUARANTINE_TABLE]).fetchall()
        existing = [name for name, _ in described]
        # A table first stored from an empty frame may have all-null columns of DuckDB's NULL type, which
        # refuse any value: make them text (what every quarantine column but the timestamp is).
        for name, kind in described:
            if kind.strip('"') == "NULL":
                con.execute(f'ALTER TABLE {SCHEMA}.{QUARANTINE_TABLE} ALTER COLUMN "{name}" TYPE VARCHAR')
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
    frame = labels.copy()
    for column in HUMAN_LABEL_COLUMNS:
        if column not in frame.columns:
            frame[column] = None
    frame = frame[list(HUMAN_LABEL_COLUMNS)]
    with connect(database) as con:
        con.execute(_ddl(HUMAN_LABELS_TABLE, HUMAN_LABEL_COLUMNS, ["label_id"]))
        if len(frame):
            con.register("new_rows", frame)
            columns = ", ".join(f'"{c}"' for c in HUMAN_LABEL_COLUMNS)
            casts = ", ".join(f'CAST("{c}" AS {kind})' for c, kind in HUMAN_LABEL_COLUMNS.items())
            con.execute(f"INSERT OR REPLACE INTO {SCHEMA}.{HUMAN_LABELS_TABLE} ({columns}) SELECT {casts} FROM new_rows")
            con.unregister("new_rows")
    return len(frame)
