"""Tables the pipeline keeps itself, beside the ones the Dagster IO manager writes.

``judgment_history`` (append-only: every verdict any judge version ever gave), ``human_labels``
(from review sheets and known-answer sets) and rows appended to ``quarantine`` outside a batch's run
(``append_quarantine``: no pipeline step calls it today; the steps' quarantine rows go through the IO
manager). Each write is a new Parquet file of its own (``table_files.append``), so writers never wait for
one another; readers see each table deduplicated by its key (``sql/table_<name>.sql``).
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone

import pandas as pd

from pref_pipeline import schema, table_files
from pref_pipeline.paths import SCHEMA, Home

HISTORY_TABLE = "judgment_history"
QUARANTINE_TABLE = "quarantine"
HUMAN_LABELS_TABLE = "human_labels"

# Column name -> DuckDB type, from the declarations in schema.py (the audit reads these two).
HISTORY_COLUMNS = schema.duckdb_types(HISTORY_TABLE)
HUMAN_LABEL_COLUMNS = schema.duckdb_types(HUMAN_LABELS_TABLE)


def read_table(home: Home, table: str) -> pd.DataFrame | None:
    """A whole table (every batch), or None when nothing of it is stored yet."""
    return table_files.read_table(home, table)


# --------------------------------------------------------------------------- judgment history

def history_rows(judgments: pd.DataFrame, prompts: pd.DataFrame | None = None, run_id: str | None = None,
                 now: datetime | None = None, slots: dict[str, int] | None = None,
                 half_life_days: float = 30.0) -> pd.DataFrame:
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
    frame["recency_weight"] = 1.0  # the stored value; readers see it computed over the whole history
    frame["recency_half_life_days"] = float(half_life_days)
    return schema.conform(HISTORY_TABLE, frame)[list(HISTORY_COLUMNS)]


def append_judgment_history(home: Home, judgments: pd.DataFrame, prompts: pd.DataFrame | None = None,
                            run_id: str | None = None, half_life_days: float = 30.0,
                            now: datetime | None = None, slots: dict[str, int] | None = None) -> tuple[int, int]:
    """Append verdicts not yet recorded (key: judgment_id + judge_fingerprint); (appended, total rows).

    ``recency_weight`` = 0.5 ** (days before the newest verdict in the history / half-life) is computed when
    the history is read (``sql/table_judgment_history.sql``), with the half-life of the newest append, so a
    consumer can weight recent verdicts more. Two processes appending the same verdict at once both write
    it; the reader keeps the first recording.
    """
    rows = history_rows(judgments, prompts, run_id, now, slots, half_life_days)
    rows = rows.drop_duplicates(["judgment_id", "judge_fingerprint"])
    con = table_files.connect(home, only=(HISTORY_TABLE,))
    try:
        if table_files.table_exists(con, HISTORY_TABLE):
            con.register("new_rows", rows[["judgment_id", "judge_fingerprint"]])
            seen = con.execute(f"SELECT n.judgment_id, n.judge_fingerprint FROM new_rows n JOIN {SCHEMA}.{HISTORY_TABLE} h "
                               "USING (judgment_id, judge_fingerprint)").fetchall()
            before = con.execute(f"SELECT count(*) FROM {SCHEMA}.{HISTORY_TABLE}").fetchall()[0][0]
        else:
            seen, before = [], 0
    finally:
        con.close()
    if seen:
        known = set(seen)
        rows = rows[[(j, f) not in known for j, f in zip(rows["judgment_id"], rows["judge_fingerprint"])]]
    if len(rows):
        for batch, part in _by_batch(rows):
            table_files.append(home, HISTORY_TABLE, batch, part)
    return len(rows), int(before + len(rows))


def _by_batch(rows: pd.DataFrame) -> list[tuple[str | None, pd.DataFrame]]:
    """Rows split by their ``batch_id`` (None: rows with none), each to be stored in its batch's folder."""
    if schema.BATCH_COLUMN not in rows.columns:
        return [(None, rows)]
    groups = rows.groupby(rows[schema.BATCH_COLUMN].astype("object"), dropna=False, sort=False)
    return [(None if pd.isna(key) else key, part) for key, part in groups]


def newest_verdict(home: Home) -> pd.Timestamp | None:
    """The newest ``judged_at`` in ``judgment_history`` (every batch, every judge version), or None."""
    con = table_files.connect(home, only=(HISTORY_TABLE,))
    try:
        if not table_files.table_exists(con, HISTORY_TABLE):
            return None
        value = con.execute(f"SELECT max(judged_at) FROM {SCHEMA}.{HISTORY_TABLE}").fetchall()[0][0]
    finally:
        con.close()
    return None if value is None else pd.Timestamp(value)


# --------------------------------------------------------------------------- quarantine rows written outside the IO manager

def append_quarantine(home: Home, rows: pd.DataFrame) -> int:
    """Add quarantine rows (from a failed gate or the export) to the ``quarantine`` table, by column name.

    Each call writes its own file in the rows' batch folder; a row with the ``quarantine_id`` of one already
    stored replaces it when read (the latest wins), so re-running a failed gate does not duplicate them.
    """
    if rows.empty:
        return 0
    rows = schema.conform(QUARANTINE_TABLE, rows, add_missing=True)
    for batch, part in _by_batch(rows):
        table_files.append(home, QUARANTINE_TABLE, batch, part)
    return len(rows)


# --------------------------------------------------------------------------- human labels

def label_id(source: str, item: str, labeller: str | None) -> str:
    return "h-" + hashlib.sha256(f"{source}|{item}|{labeller or ''}".encode()).hexdigest()[:16]


def upsert_human_labels(home: Home, labels: pd.DataFrame) -> int:
    """Store labels (HUMAN_LABEL_COLUMNS); a label with the same id (source, item, labeller) replaces the older
    one when read."""
    frame = schema.conform(HUMAN_LABELS_TABLE, labels)[list(HUMAN_LABEL_COLUMNS)]
    if len(frame):
        table_files.append(home, HUMAN_LABELS_TABLE, None, frame)
    return len(frame)
