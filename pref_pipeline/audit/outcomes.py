"""Outcomes: how many pairs are kept, what became of every comparison, and what was quarantined and why."""

from __future__ import annotations

from typing import Any

import duckdb

from pref_pipeline.audit.queries import sql
from pref_pipeline.audit.report import table
from pref_pipeline.audit.section import AuditContext
from pref_pipeline.quarantine import AWAITING_LABEL, EXPORT_STAGE, PAIR_STAGES, PAIRS_GATE_STAGE

NAME = "outcomes"


def compute(con: duckdb.DuckDBPyConnection, context: AuditContext) -> dict[str, Any]:
    (n_kept,) = con.execute(sql("pairs_kept")).fetchall()[0]
    statuses = {k: int(v) for k, v in con.execute(sql("comparison_status")).fetchall()}
    quarantine_rows = con.execute(sql("quarantine")).fetchall()
    (batch_rows,) = con.execute(sql("quarantine_batch_rows"), {"gate_stage": PAIRS_GATE_STAGE}).fetchall()[0]
    return {
        "pairs": {
            "kept": int(n_kept),
            "quarantined": sum(int(n) for stage, _, n in quarantine_rows if stage in PAIR_STAGES),
            "quarantined_batch_rows": int(batch_rows),  # of ``quarantined``: rows standing for a blocked batch
            "left_out_by_export": sum(int(n) for stage, _, n in quarantine_rows if stage == EXPORT_STAGE),
            "comparisons": int(sum(statuses.values())),
            "by_status": statuses,
            "awaiting_label": statuses.get(AWAITING_LABEL, 0),  # comparisons that wait for people (human_ranked)
        },
        "quarantine": {
            "total": int(sum(int(n) for _, _, n in quarantine_rows)),
            "by_reason": [{"stage": s, "reason": r, "n": int(n)} for s, r, n in quarantine_rows],
        },
    }


def render(figures: dict[str, Any], images: dict[str, str]) -> str:
    pairs = figures["pairs"]
    quarantine = figures.get("quarantine") or {"total": 0, "by_reason": []}
    statuses = table(["status", "comparisons"], [[status, n] for status, n in pairs["by_status"].items()],
                     why_empty="No comparison judged yet.")
    reasons = table(["stage", "reason", "rows"], [[q["stage"], q["reason"], q["n"]] for q in quarantine["by_reason"]],
                    why_empty="The quarantine table is empty: nothing was set aside.")
    return f"""## Comparisons by outcome
{statuses}

## Quarantine
{quarantine['total']} rows in the `quarantine` table, each with its stage and reason:

{reasons}
"""
