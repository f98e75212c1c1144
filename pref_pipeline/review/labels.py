"""``human_labels`` rows from what a person chose between two shown responses, however it came back (a sheet,
Label Studio), and the reviewers' agreement with each other."""

from __future__ import annotations

import secrets
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from pref_pipeline import schema, store

REVIEW_SOURCE = "review"  # the CSV sheet
LABEL_STUDIO_SOURCE = "label_studio"
SHOWN = ("a", "b", "tie")


class ReviewError(ValueError):
    """Labels that cannot be imported; the message names the rows. Nothing was stored."""


def blind(items: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """The items with ``response_a_id`` / ``response_b_id`` and their texts in a random order (seeded)."""
    x_first = np.random.default_rng(seed).random(len(items)) < 0.5
    return items.assign(
        response_a_id=np.where(x_first, items["candidate_x_id"], items["candidate_y_id"]),
        response_b_id=np.where(x_first, items["candidate_y_id"], items["candidate_x_id"]),
        response_a=np.where(x_first, items["text_x"], items["text_y"]),
        response_b=np.where(x_first, items["text_y"], items["text_x"]),
    )


def new_export_id(now: datetime | None = None) -> str:
    """``rev-<UTC time>-<random>``: names one export, on its sheet and its key."""
    return f"rev-{(now or datetime.now(timezone.utc)):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def number(value) -> float | None:
    """A float, or None for a blank / missing value."""
    try:
        return None if value is None or pd.isna(value) or value == "" else float(value)
    except (TypeError, ValueError):
        return None


def describe(winner: str | None, item: dict) -> str:
    """``human_preference``: chosen / rejected relative to the stored pair, else x / y; tie for no winner."""
    if winner is None:
        return "tie"
    chosen = item.get("chosen_candidate_id")
    if isinstance(chosen, str) and chosen:
        return "chosen" if winner == chosen else "rejected"
    return "x" if winner == item["candidate_x_id"] else "y"


def winner_of(shown: str, response_a_id: str, response_b_id: str) -> str | None:
    """The candidate a person meant by A / B (None: a tie)."""
    return {"a": response_a_id, "b": response_b_id}.get(shown)


def label_row(source: str, item: dict, winner: str | None, labeller: str | None, labelled_at: datetime, *,
              notes: str | None = None, **extra) -> dict:
    """One ``human_labels`` row (contract: label_id of source, comparison and labeller; the winner's candidate id,
    NULL for a tie). ``item`` has the comparison's ids (``selection.ITEM_COLUMNS``)."""
    comparison_id = item["comparison_id"]
    return {
        "label_id": store.label_id(source, comparison_id, labeller), "source": source,
        "comparison_id": comparison_id, "pair_id": item.get("pair_id"), "prompt_id": item.get("prompt_id"),
        "category": item.get("category"), "human_preference": describe(winner, item), "human_winner_id": winner,
        "labeller": labeller, "notes": notes or None, "labelled_at": labelled_at, **extra,
    }


def labels_frame(rows: list[dict]) -> pd.DataFrame:
    return schema.conform(store.HUMAN_LABELS_TABLE, pd.DataFrame(rows, columns=schema.names(store.HUMAN_LABELS_TABLE)))


def reviewer_agreement(labels: pd.DataFrame, source: str = REVIEW_SOURCE,
                       comparisons: pd.DataFrame | None = None) -> list[dict]:
    """Cohen's kappa (statsmodels) between every two labellers of ``source`` on the comparisons both labelled: the
    audit's inter-annotator figure (``audit.agreement.labeller_agreement``), for what ``review import`` prints."""
    from pref_pipeline.audit.agreement import labeller_agreement

    return labeller_agreement(labels[labels["source"] == source], comparisons)
