"""From verdicts to (prompt, chosen, rejected) pairs, with the metadata that proves how each was made.

A comparison becomes a pair when the judges' panel decides for one candidate (``judging/panel.py``:
unanimous by default, or a majority / weighted vote where a judge inconsistent across orders
abstains). Every comparison, kept or not, is listed in ``comparisons`` with its status, the members'
verdicts, the vote and the agreement, so nothing is lost.

Set-based: two DuckDB queries (``sql/panel.sql``, then ``sql/pairs.sql``) over the three tables, not a
look-up per comparison.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

import duckdb
import pandas as pd

from pref_pipeline import schema
from pref_pipeline.construction import apply_plan
from pref_pipeline.human_pairs import apply_human_labels
from pref_pipeline.judging.panel import Panel, run_panel
from pref_pipeline.sql_inputs import typed_input, typed_judgments

GENERATION_METHOD = "llm_as_judge"

COMPARISON_COLUMNS = schema.names("comparisons")
PAIR_COLUMNS = schema.names("preference_pairs")


@dataclass(frozen=True)
class PairsResult:
    pairs: pd.DataFrame  # PAIR_COLUMNS, the kept pairs
    comparisons: pd.DataFrame  # COMPARISON_COLUMNS, every comparison with its status


@cache
def _query() -> str:
    return resources.files("pref_pipeline").joinpath("sql/pairs.sql").read_text(encoding="utf-8")


def build_preference_pairs(prompts: pd.DataFrame, candidates: pd.DataFrame, judgments: pd.DataFrame,
                           planned: list | None = None, panel: Panel | None = None,
                           human_labels: pd.DataFrame | None = None) -> PairsResult:
    """Pairs from the verdicts, decided by ``panel`` (default: unanimous; ``judging/panel.py``); with the
    strategies' plan (``generation.plan_comparisons(..., prompts)``), also the pairs right by construction and
    the plan's no-pair reasons (``construction.apply_plan``), then what people labelled (``human_labels``:
    ``human_pairs.apply_human_labels``)."""
    judged = typed_judgments(judgments)
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("judgments", judged)
        run_panel(con, panel or Panel())
        con.register("candidates", typed_input("candidates", candidates))
        con.register("prompts", typed_input("prompts", prompts))
        con.execute(_query())
        comparisons = con.execute("SELECT * EXCLUDE (first_row) FROM comparisons_out ORDER BY first_row").fetchdf()
        pairs = con.execute("SELECT * EXCLUDE (first_row) FROM pairs_out ORDER BY first_row").fetchdf()
    finally:
        con.close()
    pairs["generation_method"] = GENERATION_METHOD
    if planned is not None:
        pairs, comparisons = apply_plan(pairs, comparisons, planned, prompts, candidates)
        pairs, comparisons = apply_human_labels(pairs, comparisons, human_labels, planned, prompts, candidates)
    if "messages" in prompts.columns:  # a conversation's turns go with each of its pairs (the export's prompt)
        pairs["messages"] = pairs["prompt_id"].map(dict(zip(prompts["prompt_id"], prompts["messages"])))
    return PairsResult(schema.conform("preference_pairs", pairs)[PAIR_COLUMNS],
                       schema.conform("comparisons", comparisons)[COMPARISON_COLUMNS])
