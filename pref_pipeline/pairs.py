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
import numpy as np
import pandas as pd

from pref_pipeline import schema
from pref_pipeline.judging.panel import Panel, run_panel

GENERATION_METHOD = "llm_as_judge"

COMPARISON_COLUMNS = schema.names("comparisons")
PAIR_COLUMNS = schema.names("preference_pairs")

# The columns the query reads from each input.
_INPUTS = {
    "judgments": ["comparison_id", "prompt_id", "candidate_x_id", "candidate_y_id", "order", "judge_model",
                  "judge_fingerprint", "judge_type", "criteria", "preference", "preferred", "confidence",
                  "label_probability", "reasoning", "parse_status", "error", "judged_at"],
    "candidates": ["candidate_id", "text", "strategy", "generator_model", "generator_label", "sampling", "created_at"],
    "prompts": ["prompt_id", "prompt", "category"],
}


@dataclass(frozen=True)
class PairsResult:
    pairs: pd.DataFrame  # PAIR_COLUMNS, the kept pairs
    comparisons: pd.DataFrame  # COMPARISON_COLUMNS, every comparison with its status


@cache
def _query() -> str:
    return resources.files("pref_pipeline").joinpath("sql/pairs.sql").read_text(encoding="utf-8")


# Columns added later (issue 11): a frame without them (an older table) reads them as null.
_LATER = {"judgments": {"judge_type", "label_probability"}}


def _typed_input(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """The columns the query reads, in their declared dtypes (so DuckDB never guesses a column's type)."""
    later = [c for c in _LATER.get(name, ()) if c not in frame.columns]
    if later:
        frame = frame.assign(**{c: None for c in later})
    missing = [c for c in _INPUTS[name] if c not in frame.columns]
    if missing:
        raise KeyError(f"{name} lacks column(s) {', '.join(missing)}")
    return schema.conform(name, frame[_INPUTS[name]], add_missing=False)


def typed_judgments(judgments: pd.DataFrame) -> pd.DataFrame:
    """The judgments columns the panel and pairs queries read, typed, with ``_row`` (input order)."""
    return _typed_input("judgments", judgments).assign(_row=np.arange(len(judgments), dtype="int64"))


def build_preference_pairs(prompts: pd.DataFrame, candidates: pd.DataFrame, judgments: pd.DataFrame,
                           planned: list | None = None, panel: Panel | None = None) -> PairsResult:
    """Pairs from the verdicts, decided by ``panel`` (default: unanimous; ``judging/panel.py``); with the
    strategies' plan (``generation.plan_comparisons(..., prompts)``), also the pairs right by construction and
    the plan's no-pair reasons (``construction.apply_plan``)."""
    judged = typed_judgments(judgments)
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("judgments", judged)
        run_panel(con, panel or Panel())
        con.register("candidates", _typed_input("candidates", candidates))
        con.register("prompts", _typed_input("prompts", prompts))
        con.execute(_query())
        comparisons = con.execute("SELECT * EXCLUDE (first_row) FROM comparisons_out ORDER BY first_row").fetchdf()
        pairs = con.execute("SELECT * EXCLUDE (first_row) FROM pairs_out ORDER BY first_row").fetchdf()
    finally:
        con.close()
    pairs["generation_method"] = GENERATION_METHOD
    if planned is not None:
        from pref_pipeline.construction import apply_plan

        pairs, comparisons = apply_plan(pairs, comparisons, planned, prompts, candidates)
    return PairsResult(schema.conform("preference_pairs", pairs)[PAIR_COLUMNS],
                       schema.conform("comparisons", comparisons)[COMPARISON_COLUMNS])
