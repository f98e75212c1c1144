"""The audit's headline figures as one flat mapping of numbers, for asset metadata (plotted over time in the UI).

Keys are stable across runs so that each one plots as a line: the ``audit.json`` contract figures
under their dotted names, and per judge (named by its model, which stays the same when a new version
of the judge gets a new fingerprint) its consistency in both orders, its first-shown win rate and the
flip rate of its latest change.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

Number = float | int | bool | None


def _judge_labels(entries: list[dict[str, Any]]) -> list[str]:
    """The judge model, with the fingerprint's start where one model has several fingerprints."""
    counts = Counter(e["judge_model"] for e in entries)
    return [e["judge_model"] if counts[e["judge_model"]] == 1 else f"{e['judge_model']} [{e['judge_fingerprint'][:8]}]"
            for e in entries]


def headline_figures(figures: dict[str, Any]) -> dict[str, Number]:
    out: dict[str, Number] = {
        "length_bias.pct_longer_chosen": figures["length_bias"]["pct_longer_chosen"],
        "length_bias.flagged": figures["length_bias"]["flagged"],
        "length_bias.pct_longer_chosen_all_pairs": figures["length_bias"].get("pct_longer_chosen_all_pairs"),
        "position_bias.consistency_rate": figures["position_bias"]["consistency_rate"],
        "position_bias.first_position_win_rate": figures["position_bias"]["first_position_win_rate"],
        "pairs.kept": figures["pairs"]["kept"],
        "pairs.quarantined": figures["pairs"]["quarantined"],
        "pairs.awaiting_label": figures["pairs"].get("awaiting_label", 0),
        "agreement.human.agreement_rate": (figures.get("agreement") or {}).get("human", {}).get("agreement_rate"),
        "flags": len(figures.get("flags") or []),
    }
    judges = figures["position_bias"].get("by_judge") or []
    for label, judge in zip(_judge_labels(judges), judges):
        out[f"position_bias.consistency_rate.{label}"] = judge["consistency_rate"]
        out[f"position_bias.first_position_win_rate.{label}"] = judge["first_position_win_rate"]
    out.update(latest_flip_rates(figures.get("drift") or {}))
    return out


def latest_flip_rates(drift: dict[str, Any]) -> dict[str, Number]:
    """Per judge (slot), the flip rate of its latest change, filed under the judge it changed to: the version
    used last, against the one used before it (by last verdict, so a judge switched back, A -> B -> A, files
    the change under A, the judge now in use; the flip rate of two versions does not depend on the order)."""
    by_slot: dict[Any, list[dict[str, Any]]] = {}
    for version in drift.get("versions") or []:
        by_slot.setdefault(version.get("slot") or version["judge_model"], []).append(version)
    out: dict[str, Number] = {}
    for versions in by_slot.values():
        if len(versions) < 2:
            continue
        previous, current = sorted(versions, key=lambda v: v["last_seen"] or "")[-2:]
        pair = {previous["judge_fingerprint"], current["judge_fingerprint"]}
        change = next((t for t in drift.get("transitions") or [] if {t["from"], t["to"]} == pair), None)
        if change is not None:
            out[f"drift.latest_flip_rate.{current['judge_model']}"] = change["flip_rate"]
    return out
