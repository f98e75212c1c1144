"""How much of the exported dataset is human-annotated: the pairs ``export.human_sets`` mix in (``human_sets``).

Not measured from the stored tables (the sets are added to the dataset only): the roll-up audit is given it
(``AuditContext.human_share``, worked out from the configuration and the published batches, as the dataset
will be built after it) and records it as ``audit.json`` ``export.human_share``. A batch's own audit has none.
The dataset card shows the same text (``describe``).
"""

from __future__ import annotations

from typing import Any

import duckdb

from pref_pipeline.audit.report import pct, table
from pref_pipeline.audit.section import AuditContext

NAME = "human_share"


def compute(con: duckdb.DuckDBPyConnection, context: AuditContext) -> dict[str, Any]:
    return {} if context.human_share is None else {"export": {"human_share": context.human_share}}


def describe(share: dict[str, Any] | None) -> str:
    """The Markdown section on the human-annotated pairs: how many, of which sets, under which licence."""
    if not share or not share.get("sets"):
        return "## Human-annotated pairs\n\nNone: every pair is synthetic (no `export.human_sets`).\n"
    rows = [[s["name"], f"`{s['file']}`", s["license"], pct(s["share_asked"]), s["pairs_asked"], s["available"],
             s["pairs"], pct(s["share"])] for s in share["sets"]]
    short = [f"- {s['name']} has fewer pairs ({s['available']}) than its share asks ({s['pairs_asked']}): all of "
             f"them are in, {pct(s['share'])} of the dataset instead of {pct(s['share_asked'])}."
             for s in share["sets"] if s["short"]]
    return "\n".join([
        "## Human-annotated pairs",
        "",
        f"{share['pairs']} of the {share['total_pairs']} pairs ({pct(share['share'])}) are human-annotated, mixed in "
        f"beside {share['synthetic_pairs']} synthetic ones to anchor them (`label_source: human_set`; their set in "
        "`source` and their licence in `license`, which applies to those rows). The audit's figures are of the "
        "synthetic pairs only.",
        "",
        table(["set", "file", "license", "share asked", "pairs asked", "available", "pairs", "share"], rows,
              why_empty=""),
        "",
        *(short + [""] if short else []),
    ])


def render(figures: dict[str, Any], images: dict[str, str]) -> str:
    share = (figures.get("export") or {}).get("human_share")
    return "" if share is None else describe(share)


def flags(figures: dict[str, Any]) -> list[str]:
    share = (figures.get("export") or {}).get("human_share") or {}
    return [f"export.human_sets: {s['name']} has {s['available']} pairs, fewer than the {s['pairs_asked']} its "
            f"share {s['share_asked']:g} asks; all are mixed in ({pct(s['share'])} of the dataset)"
            for s in share.get("sets") or [] if s["short"]]
