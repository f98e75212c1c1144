"""Batches: which prompt batches the figures cover, and which ones their pairs gate blocked, and why.

A blocked batch's pairs stay stored (as evidence) but are left out of the figures and the export; its gate's
quarantine rows carry the cause (``pairing.make_pairs`` gives it to ``quarantine.gate_quarantine``), and its
own audit under ``reports/batches/<batch>/`` has the details. This section comes first: its warnings head the
list.
"""

from __future__ import annotations

from typing import Any

import duckdb

from pref_pipeline.audit.queries import sql
from pref_pipeline.audit.report import table
from pref_pipeline.audit.section import AuditContext
from pref_pipeline.quarantine import AWAITING_LABEL, BATCH_REJECTED, PAIRS_GATE_STAGE

NAME = "batches"
BLOCKED, PASSED = "blocked", "passed"


def compute(con: duckdb.DuckDBPyConnection, context: AuditContext) -> dict[str, Any]:
    rows = con.execute(sql("batches"), {"gate_stage": PAIRS_GATE_STAGE, "batch_rejected": BATCH_REJECTED,
                                        "awaiting_label": AWAITING_LABEL}).fetchall()
    by_batch = [{"batch": batch, "status": BLOCKED if set_aside else PASSED, "pairs": int(pairs),
                 "awaiting_label": int(awaiting), **({"set_aside": int(set_aside), "why": why} if set_aside else {})}
                for batch, pairs, set_aside, why, awaiting in rows]
    return {"batches": {"total": len(by_batch), "blocked": sum(b["status"] == BLOCKED for b in by_batch),
                        "by_batch": by_batch}}


def _name(batch: str | None) -> str:
    return f"batch {batch!r}" if batch is not None else "the batch"


def flags(figures: dict[str, Any]) -> list[str]:
    blocked = [b for b in figures["batches"]["by_batch"] if b["status"] == BLOCKED]
    return [f"{_name(b['batch'])} not published" + (f" (its {b['pairs']} pair(s) are left out of the figures and the "
                                                    f"export)" if b["pairs"] else "") + f": {b['why']}"
            for b in blocked]


def render(figures: dict[str, Any], images: dict[str, str]) -> str:
    batches = figures.get("batches") or {"by_batch": []}
    named = [b for b in batches["by_batch"] if b["batch"] is not None]
    if not named and not any(b["status"] == BLOCKED for b in batches["by_batch"]):
        return ""  # one unnamed batch that was not blocked: nothing to tell apart
    rows = [[b["batch"] if b["batch"] is not None else "(this batch)", b["status"], b["pairs"],
             b.get("awaiting_label", 0), b.get("why") or ""] for b in batches["by_batch"]]
    shown = table(["batch", "pairs gate", "pairs stored", "awaiting labels", "why it was blocked"], rows,
                  why_empty="No batch stored yet.")
    return f"""## Batches
{batches.get('blocked', 0)} of {len(rows)} batch(es) blocked by the pairs gate: their pairs are stored but left out of the
figures and the export. Each batch's own audit is under `reports/batches/<batch>/`.

{shown}
"""
