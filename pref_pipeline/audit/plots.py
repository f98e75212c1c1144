"""The audit's plots (matplotlib, Agg backend): PNG files under reports/, and data URIs for the Dagster UI.

Plots are drawn from the small aggregates in the audit dict, never from raw rows, so they cost the
same for ten pairs or a million.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

from pref_pipeline.atomic import replace_atomically, write_text_atomically

PLOT_DPI = 80
# What drawing imports (lazily: a roll-up whose figures did not change imports no matplotlib).
PLOT_MODULES = ("matplotlib.figure", "matplotlib.backends.backend_agg")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    replace_atomically(path, lambda tmp: fig.savefig(tmp, dpi=PLOT_DPI, format="png"))
    _pyplot().close(fig)
    return path


def length_difference_plot(audit: dict[str, Any], path: Path) -> Path | None:
    histogram = audit["length_bias"].get("histogram") or []
    if not histogram:
        return None
    plt = _pyplot()
    diffs = [d for d, _ in histogram]
    counts = [n for _, n in histogram]
    low, high = min(diffs), max(diffs)
    bins = max(10, min(60, high - low + 1))
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.hist(diffs, weights=counts, bins=bins, color="#4c72b0")
    ax.axvline(0, color="black", linewidth=1)
    share = audit["length_bias"].get("pct_longer_chosen")
    ax.set_title("Words in chosen minus words in rejected, judge-labelled pairs"
                 + (f" (longer chosen in {share:.0%})" if share is not None else ""), fontsize=10)
    ax.set_xlabel("word difference (right of 0: the longer response was chosen)")
    ax.set_ylabel("pairs")
    return _save(fig, path)


def length_by_category_plot(audit: dict[str, Any], path: Path) -> Path | None:
    groups = [g for g in audit["length_bias"].get("by_category") or [] if g["share"] is not None]
    if not groups:
        return None
    plt = _pyplot()
    band = audit["length_bias"].get("band", 0.15)
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(groups) + 1.2))
    names = [f"{g['group']} (n={g['n']})" for g in groups]
    shares = [g["share"] for g in groups]
    lows = [g["share"] - g["ci95"][0] for g in groups]
    highs = [g["ci95"][1] - g["share"] for g in groups]
    ax.axvspan(0.5 - band, 0.5 + band, color="#dddddd", label=f"50% ± {band:.0%}")
    ax.errorbar(shares, range(len(groups)), xerr=[lows, highs], fmt="o", color="#c44e52", capsize=3)
    ax.set_yticks(range(len(groups)), names)
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of judge-labelled pairs where the longer response was chosen (95% CI)")
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def position_plot(audit: dict[str, Any], path: Path) -> Path | None:
    judges = audit["position_bias"].get("by_judge") or []
    if not judges:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 0.6 * len(judges) + 1.4))
    names = [f"{j['judge_model']} [{j['judge_fingerprint'][:8]}]" for j in judges]
    positions = range(len(judges))
    consistency = [j["consistency_rate"] or 0 for j in judges]
    first = [j["first_position_win_rate"] or 0 for j in judges]
    ax.barh([p + 0.2 for p in positions], consistency, height=0.4, label="same verdict in both orders",
            color="#55a868")
    ax.barh([p - 0.2 for p in positions], first, height=0.4, label="first-shown response wins", color="#dd8452")
    ax.axvline(0.5, color="black", linewidth=1, linestyle="--")
    ax.set_yticks(list(positions), names)
    ax.set_xlim(0, 1)
    ax.set_xlabel("share (dashed: 50%)")
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def drift_plot(audit: dict[str, Any], path: Path) -> Path | None:
    versions = (audit.get("drift") or {}).get("versions") or []
    if not versions:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.2))
    labels = [f"{v['judge_model']}\n{v['judge_fingerprint'][:8]}\n{(v['first_seen'] or '')[:10]}" for v in versions]
    x = list(range(len(versions)))
    # Markers only: neighbouring versions may belong to different judges.
    ax.plot(x, [v["consistency_rate"] for v in versions], marker="o", linestyle="none",
            label="same verdict in both orders")
    ax.plot(x, [v["first_position_win_rate"] for v in versions], marker="s", linestyle="none",
            label="first-shown response wins")
    flips = {t["to"]: t["flip_rate"] for t in (audit.get("drift") or {}).get("transitions") or []}
    rates = [flips.get(v["judge_fingerprint"]) for v in versions]
    if any(r is not None for r in rates):
        ax.plot(x, rates, marker="^", linestyle="none", label="verdicts flipped vs the previous version")
    ax.set_xticks(x, labels, fontsize=7)
    ax.set_ylim(0, 1)
    ax.set_title("Judge versions, oldest first", fontsize=10)
    ax.legend(fontsize=8)
    return _save(fig, path)


PLOTS = {
    "length_difference": length_difference_plot,
    "length_by_category": length_by_category_plot,
    "position": position_plot,
    "drift": drift_plot,
}
# The audit sections each plot is drawn from (all it reads): its content hash says whether it must be redrawn.
PLOT_INPUTS = {"length_difference": "length_bias", "length_by_category": "length_bias", "position": "position_bias",
               "drift": "drift"}
DRAWN = ".plots.json"  # beside the PNGs: the input hash each was drawn from


def plot_input_hash(audit: dict[str, Any], name: str) -> str:
    """What plot ``name`` is drawn from, hashed (with the resolution: a new DPI redraws it)."""
    inputs = json.dumps([name, PLOT_DPI, audit.get(PLOT_INPUTS[name])], sort_keys=True, default=str)
    return hashlib.sha256(inputs.encode()).hexdigest()


def make_plots(audit: dict[str, Any], folder: Path) -> dict[str, Path]:
    """Every plot there is data for, as ``folder/<name>.png``. A plot whose inputs hash as when it was last drawn
    is kept as it is: a roll-up whose figures did not change does not import matplotlib nor draw (~0.5 s)."""
    folder.mkdir(parents=True, exist_ok=True)
    record = folder / DRAWN
    try:
        drawn = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        drawn = {}
    made, now = {}, {}
    for name, draw in PLOTS.items():
        path, digest = folder / f"{name}.png", plot_input_hash(audit, name)
        if drawn.get(name) == digest and path.exists():
            made[name], now[name] = path, digest
            continue
        if draw(audit, path) is not None:
            made[name], now[name] = path, digest
    if now != drawn:
        write_text_atomically(record, json.dumps(now, indent=1) + "\n")
    return made


def data_uri(path: Path) -> str:
    """A PNG as a ``data:`` URI: Dagster's Markdown metadata renders it (its sanitizer allows data: images)."""
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
