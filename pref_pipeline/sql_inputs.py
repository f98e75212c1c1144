"""The inputs of the pairs and panel queries (``sql/pairs.sql``, ``sql/panel.sql``), typed.

Both queries read the same few columns of ``judgments``, ``candidates`` and ``prompts``; each frame is cut
to them and given its declared dtypes (``schema.conform``), so DuckDB never guesses a column's type.
``pairs.py`` and ``judging/panel.py`` both import this module, and it imports neither.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pref_pipeline import schema

# The columns the queries read from each input.
COLUMNS = {
    "judgments": ["comparison_id", "prompt_id", "candidate_x_id", "candidate_y_id", "order", "judge_model",
                  "judge_fingerprint", "judge_type", "criteria", "preference", "preferred", "confidence",
                  "label_probability", "reasoning", "parse_status", "error", "judged_at"],
    "candidates": ["candidate_id", "text", "strategy", "generator_model", "generator_label", "sampling", "created_at",
                   "parent_id", "notes"],
    "prompts": ["prompt_id", "prompt", "category"],
}
# Columns added to a table after it was first stored: a frame without them (read from an older table) gets
# them as nulls.
LATER = {"judgments": {"judge_type", "label_probability"}, "candidates": {"parent_id", "notes"}}


def typed_input(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """The columns the queries read from ``frame`` (table ``name``), in their declared dtypes."""
    later = [c for c in LATER.get(name, ()) if c not in frame.columns]
    if later:
        frame = frame.assign(**{c: None for c in later})
    missing = [c for c in COLUMNS[name] if c not in frame.columns]
    if missing:
        raise KeyError(f"{name} lacks column(s) {', '.join(missing)}")
    return schema.conform(name, frame[COLUMNS[name]], add_missing=False)


def typed_judgments(judgments: pd.DataFrame) -> pd.DataFrame:
    """The judgments columns the panel and pairs queries read, typed, with ``_row`` (input order)."""
    return typed_input("judgments", judgments).assign(_row=np.arange(len(judgments), dtype="int64"))
