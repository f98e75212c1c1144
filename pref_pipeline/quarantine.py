"""Quarantine rows: what every stage that drops something (filters, gates, the export) writes.

Nothing is dropped without a trace: a dropped row becomes one ``quarantine`` row with its ``stage``,
``reason``, a readable ``detail``, the ids it concerns and the original row as JSON (``record``).
The ``quarantine_id`` is a hash of stage, reason and item, so re-running a stage replaces its rows
instead of repeating them. Rows are built column-wise (no per-row Python over the frame but the
JSON records and the id hashes).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import pandas as pd

from pref_pipeline import schema

if TYPE_CHECKING:
    from pref_pipeline.gates import GateResult

TABLE = "quarantine"
QUARANTINE_COLUMNS = schema.names(TABLE)

# The stages (``stage`` column): where a row was stopped. Every module that writes or reads quarantine rows
# names them from here.
PROMPTS_STAGE = "prompts"  # prompt-file rows set aside under on_bad_rows: skip
CANDIDATES_STAGE = "candidates"  # generation calls that failed after their retries
PAIRS_STAGE = "pairs"  # comparisons that gave no pair (tie, inconsistent, unparseable, ...)
FILTERS_STAGE = "filters"  # pairs a filter dropped
EXPORT_STAGE = "export"  # kept pairs the export leaves out of the published files (length rebalancing)
GATE_STAGE_PREFIX = "gate:"  # + the table whose gate rejected the rows: gate:<table>
# A comparison that waits for people (no judge asked, e.g. human_ranked): not an error, never quarantined.
AWAITING_LABEL = "awaiting_label"


def gate_stage(table: str) -> str:
    """The stage of the rows the gate on ``table`` rejected: ``gate:<table>``."""
    return f"{GATE_STAGE_PREFIX}{table}"


PAIRS_GATE_STAGE = gate_stage("preference_pairs")  # the pairs of a batch the pairs gate blocked: not published
# Stages whose rows stand for a comparison that did not end up as a published pair.
PAIR_STAGES = (PAIRS_STAGE, FILTERS_STAGE, PAIRS_GATE_STAGE, EXPORT_STAGE)

# Reasons (``reason`` column) that more than one module writes or reads. The others are a comparison's
# status, a filter's name, a failed expectation or a prompt row's fault, each named where it is decided.
BATCH_REJECTED = "batch_rejected"  # a pair of a batch the pairs gate blocked (not itself named by the gate)
GENERATION_ERROR = "generation_error"
LENGTH_REBALANCE = "length_rebalance"
# The two texts a quarantine row shows for a row of each stage.
RESPONSE_COLUMNS = {"prompts": ("prompt", "prompt"), "candidates": ("text", "text"),
                    "judgments": ("raw_output", "reasoning"), "preference_pairs": ("chosen", "rejected")}


def quarantine_id(stage: str, reason: str, item_id: object) -> str:
    """Stable id of a quarantine row (a missing item counts as ``None``)."""
    return "q-" + hashlib.sha256(f"{stage}|{reason}|{item_id}".encode()).hexdigest()[:16]


def _plain(value: object) -> object:
    """None for every kind of missing value (None, NaN, NaT, <NA>), the value otherwise."""
    try:
        return None if pd.isna(value) else value
    except (TypeError, ValueError):  # lists, arrays: not a missing value
        return value


def records(frame: pd.DataFrame) -> list[str]:
    """Each row as one line of JSON (timestamps ISO-8601)."""
    if frame.empty:
        return []
    # Split on the record separator only: str.splitlines would also split inside texts holding U+2028 etc.
    return frame.to_json(orient="records", lines=True, date_format="iso", force_ascii=False,
                         default_handler=str).rstrip("\n").split("\n")


def _finish(frame: pd.DataFrame, now: datetime | None) -> pd.DataFrame:
    """Ids and timestamps where missing, typed columns, ``batch_id`` last when present."""
    now = now or datetime.now(timezone.utc)
    if len(frame):
        frame["quarantine_id"] = frame["quarantine_id"].astype(object) if "quarantine_id" in frame.columns else None
        missing = frame["quarantine_id"].isna()
        if missing.any():
            frame.loc[missing, "quarantine_id"] = [
                quarantine_id(s, r, _plain(i)) for s, r, i in
                zip(frame.loc[missing, "stage"], frame.loc[missing, "reason"], frame.loc[missing, "item_id"])]
        if "quarantined_at" not in frame.columns:
            frame["quarantined_at"] = pd.NaT
        frame["quarantined_at"] = pd.to_datetime(frame["quarantined_at"], utc=True).fillna(pd.to_datetime(now, utc=True))
    typed = schema.conform(TABLE, frame)
    ordered = QUARANTINE_COLUMNS + ([schema.BATCH_COLUMN] if schema.BATCH_COLUMN in typed.columns else [])
    return typed[ordered].reset_index(drop=True)


def quarantine_frame(rows: list[dict], now: datetime | None = None) -> pd.DataFrame:
    """Hand-made quarantine rows (dicts) as a typed frame; ``batch_id`` is kept last when the rows carry one."""
    columns = QUARANTINE_COLUMNS + ([schema.BATCH_COLUMN] if any(schema.BATCH_COLUMN in r for r in rows) else [])
    frame = pd.DataFrame([{k: _plain(v) for k, v in row.items()} for row in rows], columns=columns)
    return _finish(frame, now)


def empty_quarantine() -> pd.DataFrame:
    return schema.empty(TABLE)


def quarantine_rows(frame: pd.DataFrame, *, stage: str, reasons: Sequence[str], details: Sequence[str],
                    id_column: str, prompt_texts: dict | None = None, text_columns: tuple[str, str] | None = None,
                    now: datetime | None = None) -> pd.DataFrame:
    """One quarantine row per row of ``frame`` (same order as ``reasons``/``details``), as a typed frame.

    ``prompt`` is the row's own prompt text, else the text of its ``prompt_id`` in ``prompt_texts``;
    ``response_1``/``response_2`` are the row's ``text_columns``; ``batch_id`` is kept when the frame has one.
    """
    if frame.empty:
        return empty_quarantine()
    n = len(frame)

    def column(name: str | None) -> pd.Series:
        if name is not None and name in frame.columns:
            return frame[name].astype(object).reset_index(drop=True)
        return pd.Series([None] * n, dtype=object)

    prompt_ids = column("prompt_id")
    own_prompt = column("prompt")
    fallback = prompt_ids.map(prompt_texts or {})
    out = pd.DataFrame({
        "stage": stage, "reason": list(reasons), "detail": list(details),
        "prompt_id": prompt_ids, "comparison_id": column("comparison_id"), "pair_id": column("pair_id"),
        "item_id": column(id_column),
        "prompt": own_prompt.where(own_prompt.map(lambda v: isinstance(v, str)), fallback),
        "response_1": column(text_columns[0] if text_columns else None),
        "response_2": column(text_columns[1] if text_columns else None),
        "record": records(frame),
    })
    if schema.BATCH_COLUMN in frame.columns:
        out[schema.BATCH_COLUMN] = column(schema.BATCH_COLUMN)
    return _finish(out, now)


def concat(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Quarantine frames as one (typed; ``batch_id`` last when any carries one)."""
    frames = [f for f in frames if len(f)]
    if not frames:
        return empty_quarantine()
    return _finish(pd.concat(frames, ignore_index=True), None)


def gate_quarantine(stage: str, frame: pd.DataFrame, result: GateResult, cause: str | None = None) -> pd.DataFrame:
    """Quarantine rows for a failed gate.

    Rows a row-level expectation named are quarantined with that expectation as the reason. When the
    ``preference_pairs`` gate fails, no pair of the batch is exported, so every other pair is
    quarantined too (reason ``BATCH_REJECTED``). A gate that failed only on table-level expectations
    leaves one row naming the batch. ``cause`` (why the batch was blocked, in the user's terms:
    ``diagnosis.pairs_gate_cause``) leads the detail of the rows that stand for the whole batch, so
    the audit over every batch can say why each blocked batch was blocked.
    """
    if result.success:
        return empty_quarantine()
    id_column = schema.table(stage).id_column
    named = result.failing_ids()
    table_level = result.table_level_summary()
    if len(frame) and id_column in frame.columns:
        ids = frame[id_column].astype(str)
        rejected = frame[ids.isin(named.keys()) | (stage == "preference_pairs")]
        rejected_ids = rejected[id_column].astype(str)
        batch_note = f"; batch: {cause or table_level}" if cause or table_level else ""
        rejected_note = result.summary() + (f" ({table_level})" if table_level else "")
        if cause:
            rejected_note = f"{cause} ({rejected_note})"
        reasons = [named[i][0] if i in named else BATCH_REJECTED for i in rejected_ids]
        details = ["; ".join(named[i]) + batch_note if i in named else rejected_note for i in rejected_ids]
        text_columns = RESPONSE_COLUMNS[stage] if set(RESPONSE_COLUMNS[stage]) <= set(frame.columns) else None
        rows = quarantine_rows(rejected, stage=gate_stage(stage), reasons=reasons, details=details,
                               id_column=id_column, text_columns=text_columns)
        if len(rows):
            return rows
    batch = str(frame[schema.BATCH_COLUMN].iloc[0]) if schema.BATCH_COLUMN in frame.columns and len(frame) else None
    failure = result.failures[0]
    note = table_level or result.summary()
    row = {"stage": gate_stage(stage), "reason": failure["label"], "detail": f"{cause} ({note})" if cause else note,
           "item_id": batch or stage,
           "record": json.dumps({"failures": result.failures, "figures": result.figures}, default=str)}
    if batch is not None:
        row[schema.BATCH_COLUMN] = batch
    return quarantine_frame([row])


def rejected_prompt_rows(rejected: pd.DataFrame) -> pd.DataFrame:
    """Quarantine rows (stage ``PROMPTS_STAGE``) for the prompt-file rows set aside under ``on_bad_rows: skip``
    (``sources.LoadedPrompts.rejected``: file, line, reason, detail, the raw row)."""
    rows = [{"stage": PROMPTS_STAGE, "reason": r.reason, "detail": f"{r.source}:{r.line}: {r.detail}",
             "item_id": f"{r.source}:{r.line}", "record": r.raw}
            for r in rejected.itertuples(index=False)]
    return quarantine_frame(rows)


def reason_counts(quarantine: pd.DataFrame) -> dict[str, int]:
    """``{"stage:reason": n}``, most frequent first, for metadata and reports."""
    if quarantine.empty:
        return {}
    counts = (quarantine["stage"].astype(str) + ":" + quarantine["reason"].astype(str)).value_counts()
    return {k: int(v) for k, v in counts.items()}


def record_of(quarantine_row: pd.Series) -> dict:
    """The original row a quarantine entry keeps, as a dict."""
    return json.loads(quarantine_row["record"])
