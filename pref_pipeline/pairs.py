"""From verdicts to (prompt, chosen, rejected) pairs, with the metadata that proves how each was made.

A comparison becomes a pair only when every judge preferred the same candidate in both orders.
Every comparison, kept or not, is listed in ``comparisons`` with its status, so nothing is lost.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from pref_pipeline.judging.pairwise import combine_orders

GENERATION_METHOD = "llm_as_judge"

COMPARISON_COLUMNS = [
    "comparison_id", "prompt_id", "candidate_x_id", "candidate_y_id", "status", "winner_id", "judge_models",
    "judge_fingerprints",
]
PAIR_COLUMNS = [
    "pair_id", "prompt_id", "prompt", "chosen", "rejected", "generation_method", "judge_model_id", "criteria",
    "category", "confidence", "verdict_ab", "verdict_ba", "reasoning", "judge_fingerprint", "chosen_candidate_id",
    "rejected_candidate_id", "chosen_model", "rejected_model", "chosen_generator", "rejected_generator",
    "chosen_sampling", "rejected_sampling", "chosen_strategy", "rejected_strategy", "judged_at", "generated_at",
]


# Columns that are not text; the others are strings.
NON_TEXT_DTYPES = {"confidence": "float64", "judged_at": "datetime64[ns, UTC]", "generated_at": "datetime64[ns, UTC]"}


def typed_if_empty(frame: pd.DataFrame) -> pd.DataFrame:
    """An empty frame with typed columns (text as pandas strings). An all-null object column would be stored
    as DuckDB's NULL type, and that table would then refuse every later batch's rows."""
    if len(frame):
        return frame
    return frame.astype({c: NON_TEXT_DTYPES.get(c, "string") for c in frame.columns if frame[c].dtype == object})


@dataclass(frozen=True)
class PairsResult:
    pairs: pd.DataFrame  # PAIR_COLUMNS, the kept pairs
    comparisons: pd.DataFrame  # COMPARISON_COLUMNS, every comparison with its status


def _judge_status(rows: pd.DataFrame) -> tuple[str, str | None]:
    """Status and winner of one judge on one comparison (its two order rows)."""
    if rows["error"].notna().any() or len(rows) != 2:
        return "error", None
    by_order = {r.order: (r.preferred if r.parse_status != "unparseable" else None) for r in rows.itertuples()}
    return combine_orders(by_order.get("xy"), by_order.get("yx"))


def _comparison_status(group: pd.DataFrame) -> tuple[str, str | None]:
    """All judges must be consistent and agree; the first problem found names the status."""
    winners = set()
    for _, rows in group.groupby("judge_fingerprint", sort=True):
        status, winner = _judge_status(rows)
        if status != "consistent":
            return status, None
        winners.add(winner)
    return ("consistent", winners.pop()) if len(winners) == 1 else ("judges_disagree", None)


def build_preference_pairs(prompts: pd.DataFrame, candidates: pd.DataFrame, judgments: pd.DataFrame) -> PairsResult:
    comparison_rows, pair_rows = [], []
    prompt_by_id = prompts.set_index("prompt_id")
    candidate_by_id = candidates.set_index("candidate_id")
    for comparison_id, group in judgments.groupby("comparison_id", sort=False):
        first = group.iloc[0]
        status, winner = _comparison_status(group)
        x_id, y_id = first["candidate_x_id"], first["candidate_y_id"]
        winner_id = {"x": x_id, "y": y_id}.get(winner) if winner else None
        judges = sorted(set(group["judge_model"]))
        fingerprints = sorted(set(group["judge_fingerprint"]))
        comparison_rows.append({
            "comparison_id": comparison_id, "prompt_id": first["prompt_id"], "candidate_x_id": x_id,
            "candidate_y_id": y_id, "status": status, "winner_id": winner_id,
            "judge_models": "+".join(judges), "judge_fingerprints": "+".join(fingerprints),
        })
        if winner_id is None:
            continue
        loser_id = y_id if winner_id == x_id else x_id
        chosen, rejected = candidate_by_id.loc[winner_id], candidate_by_id.loc[loser_id]
        prompt = prompt_by_id.loc[first["prompt_id"]]
        orders = group.sort_values(["judge_fingerprint", "order"])
        confidences = orders["confidence"].dropna()
        pair_rows.append({
            "pair_id": "pair-" + comparison_id.removeprefix("cmp-"),
            "prompt_id": first["prompt_id"],
            "prompt": prompt["prompt"],
            "chosen": chosen["text"],
            "rejected": rejected["text"],
            "generation_method": GENERATION_METHOD,
            "judge_model_id": "+".join(j.split(":", 1)[1] for j in judges),
            "criteria": "+".join(sorted(set(group["criteria"]))),
            "category": prompt["category"],
            "confidence": float(confidences.mean()) if len(confidences) else None,
            "verdict_ab": "|".join(orders.loc[orders["order"] == "xy", "preference"].astype(str)),
            "verdict_ba": "|".join(orders.loc[orders["order"] == "yx", "preference"].astype(str)),
            "reasoning": next((r for r in orders["reasoning"] if isinstance(r, str) and r), ""),
            "judge_fingerprint": "+".join(fingerprints),
            "chosen_candidate_id": winner_id,
            "rejected_candidate_id": loser_id,
            "chosen_model": chosen["generator_model"],
            "rejected_model": rejected["generator_model"],
            "chosen_generator": chosen["generator_label"],
            "rejected_generator": rejected["generator_label"],
            "chosen_sampling": chosen["sampling"],
            "rejected_sampling": rejected["sampling"],
            "chosen_strategy": chosen["strategy"],
            "rejected_strategy": rejected["strategy"],
            "judged_at": group["judged_at"].max(),
            "generated_at": max(chosen["created_at"], rejected["created_at"]),
        })
    return PairsResult(typed_if_empty(pd.DataFrame(pair_rows, columns=PAIR_COLUMNS)),
                       typed_if_empty(pd.DataFrame(comparison_rows, columns=COMPARISON_COLUMNS)))
