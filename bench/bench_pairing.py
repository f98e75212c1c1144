"""Benchmark: pairing, filtering and the pairs gate per prompt, at 500, 2,000 and 8,000 prompts.

    .venv/bin/python bench/bench_pairing.py [--prompts 500 2000 8000] [--no-baseline]

Builds synthetic prompts, candidates and judgments (2 candidates per prompt, 1 judge, both orders;
about 70 % consistent verdicts, the rest inconsistent, tie or unparseable), then times what the
``preference_pairs`` step and its check run after the LLM calls: ``build_preference_pairs``,
``filter_pairs`` (default filters, MinHash near-duplicate prompts included) and the pairs gate
(``gates.validate_pairs`` with both dataset-level bounds on). GX is imported and warmed up once
before timing (imports are a per-process cost, not a per-prompt one).

Side by side in the same run: the row-by-row pairing this project used before (``_comparison_status``
/ ``_judge_status`` with ``.loc`` and ``itertuples`` per comparison), kept below as the baseline; its
results are checked equal to the set-based ones. Target: under 1 ms per prompt, linear.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pref_pipeline import gates  # noqa: E402
from pref_pipeline.config import FiltersSpec, GatesSpec  # noqa: E402
from pref_pipeline.filters import filter_pairs  # noqa: E402
from pref_pipeline.judging.pairwise import combine_orders  # noqa: E402
from pref_pipeline.pairs import COMPARISON_COLUMNS, GENERATION_METHOD, PAIR_COLUMNS, build_preference_pairs  # noqa: E402
from pref_pipeline.schema import names  # noqa: E402

T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)
VOCABULARY = [f"w{i}" for i in range(3000)]
CATEGORIES = ["coding", "factual", "advice", "creative"]
GATE_SPEC = GatesSpec(min_position_consistency=0.5, max_length_bias=0.5)  # both bounds computed and checked


# --------------------------------------------------------------------------- synthetic tables

def _text(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choices(VOCABULARY, k=rng.randint(low, high)))


def _preferred(order: str, label: str | None) -> str | None:
    if label in ("A", "B"):
        return ("x" if label == "A" else "y") if order == "xy" else ("y" if label == "A" else "x")
    return label


def synthetic_tables(n_prompts: int, *, candidates_per_prompt: int = 2, judges: int = 1, seed: int = 0,
                     messy: bool = False) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(prompts, candidates, judgments) shaped like the pipeline's own.

    Verdicts are ~70 % consistent, else inconsistent, tie or unparseable. ``messy`` adds what a
    real run can also hold: failed calls, a missing order, judges that disagree.
    """
    rng = random.Random(seed)
    prompts, candidates, judgments = [], [], []
    judge_models = [f"openai:judge-{j}" for j in range(judges)]
    for p in range(n_prompts):
        prompt_id = f"p-{p:06d}"
        prompts.append({"prompt_id": prompt_id, "prompt": _text(rng, 8, 20), "category": rng.choice(CATEGORIES),
                        "reference": None, "source": "bench"})
        ids = []
        for c in range(candidates_per_prompt):
            candidate_id = f"c-{p:06d}-{c}"
            ids.append(candidate_id)
            candidates.append({
                "candidate_id": candidate_id, "prompt_id": prompt_id, "candidate_index": c,
                "text": _text(rng, 10, 80), "strategy": "sampling", "generator_model": f"openai:gen-{c % 2}",
                "generator_label": f"gen-{c % 2}", "sampling": f'{{"seed": {c}}}', "system_prompt": None,
                "served_model": f"gen-{c % 2}", "input_tokens": 20, "output_tokens": 50, "finish_reason": "stop",
                "latency_s": 0.1, "error": None, "created_at": T0 + timedelta(seconds=p)})
        for i in range(len(ids)):
            for k in range(i + 1, len(ids)):
                comparison_id = f"cmp-{p:06d}-{i}{k}"
                for j, judge in enumerate(judge_models):
                    roll = rng.random()
                    winner = rng.choice("xy")
                    if messy and j > 0 and rng.random() < 0.3:
                        winner = "y" if winner == "x" else "x"  # this judge disagrees
                    if roll < 0.7:  # consistent: the same candidate in both orders
                        labels = {"xy": "A" if winner == "x" else "B", "yx": "B" if winner == "x" else "A"}
                    elif roll < 0.85:  # position bias: always A
                        labels = {"xy": "A", "yx": "A"}
                    elif roll < 0.93:
                        labels = {"xy": "tie", "yx": "tie"}
                    else:
                        labels = {"xy": "A", "yx": None}
                    for order in ("xy", "yx"):
                        if messy and rng.random() < 0.03:
                            continue  # an order never judged
                        error = "ProviderError: 500" if messy and rng.random() < 0.03 else None
                        label = None if error else labels[order]
                        status = None if error else ("unparseable" if label is None else "ok")
                        judgments.append({
                            "judgment_id": f"j-{comparison_id}-{j}-{order}", "comparison_id": comparison_id,
                            "prompt_id": prompt_id, "candidate_x_id": ids[i], "candidate_y_id": ids[k],
                            "order": order, "judge_model": judge, "judge_fingerprint": f"fp-{j}",
                            "criteria": "helpfulness", "preference": label, "preferred": _preferred(order, label),
                            "confidence": None if label is None else round(rng.uniform(0.5, 1.0), 2),
                            "reasoning": None if label is None else _text(rng, 3, 12),
                            "parse_status": status, "parse_error": None, "attempts": 1, "raw_output": "{}",
                            "failed_outputs": "[]", "served_model": judge.split(":")[1], "input_tokens": 100,
                            "output_tokens": 30, "latency_s": 0.2, "error": error,
                            "judged_at": T0 + timedelta(hours=1, seconds=p, milliseconds=j)})
    return (pd.DataFrame(prompts, columns=names("prompts")), pd.DataFrame(candidates, columns=names("candidates")),
            pd.DataFrame(judgments, columns=names("judgments")))


# --------------------------------------------------------------------------- the baseline: row by row

def _baseline_judge_status(rows: pd.DataFrame) -> tuple[str, str | None]:
    if rows["error"].notna().any() or len(rows) != 2:
        return "error", None
    by_order = {r.order: (r.preferred if r.parse_status != "unparseable" else None) for r in rows.itertuples()}
    return combine_orders(by_order.get("xy"), by_order.get("yx"))


def _baseline_comparison_status(group: pd.DataFrame) -> tuple[str, str | None]:
    winners = set()
    for _, rows in group.groupby("judge_fingerprint", sort=True):
        status, winner = _baseline_judge_status(rows)
        if status != "consistent":
            return status, None
        winners.add(winner)
    return ("consistent", winners.pop()) if len(winners) == 1 else ("judges_disagree", None)


def baseline_build_preference_pairs(prompts: pd.DataFrame, candidates: pd.DataFrame,
                                    judgments: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The row-by-row pairing of the previous version (pairs.py before the set-based query): (pairs, comparisons)."""
    comparison_rows, pair_rows = [], []
    prompt_by_id = prompts.set_index("prompt_id")
    candidate_by_id = candidates.set_index("candidate_id")
    for comparison_id, group in judgments.groupby("comparison_id", sort=False):
        first = group.iloc[0]
        status, winner = _baseline_comparison_status(group)
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
            "prompt_id": first["prompt_id"], "prompt": prompt["prompt"],
            "chosen": chosen["text"], "rejected": rejected["text"],
            "generation_method": GENERATION_METHOD,
            "judge_model_id": "+".join(j.split(":", 1)[1] for j in judges),
            "criteria": "+".join(sorted(set(group["criteria"]))),
            "category": prompt["category"],
            "confidence": float(confidences.mean()) if len(confidences) else None,
            "verdict_ab": "|".join(orders.loc[orders["order"] == "xy", "preference"].astype(str)),
            "verdict_ba": "|".join(orders.loc[orders["order"] == "yx", "preference"].astype(str)),
            "reasoning": next((r for r in orders["reasoning"] if isinstance(r, str) and r), ""),
            "judge_fingerprint": "+".join(fingerprints),
            "chosen_candidate_id": winner_id, "rejected_candidate_id": loser_id,
            "chosen_model": chosen["generator_model"], "rejected_model": rejected["generator_model"],
            "chosen_generator": chosen["generator_label"], "rejected_generator": rejected["generator_label"],
            "chosen_sampling": chosen["sampling"], "rejected_sampling": rejected["sampling"],
            "chosen_strategy": chosen["strategy"], "rejected_strategy": rejected["strategy"],
            "judged_at": group["judged_at"].max(),
            "generated_at": max(chosen["created_at"], rejected["created_at"]),
            "judgment": next((r for r, p in zip(orders["reasoning"], orders["preferred"])
                              if isinstance(r, str) and r and p == winner), ""),
        })
    return pd.DataFrame(pair_rows, columns=PAIR_COLUMNS), pd.DataFrame(comparison_rows, columns=COMPARISON_COLUMNS)


def comparable(frame: pd.DataFrame) -> pd.DataFrame:
    """Values only (dtypes and kinds of missing value aside): timestamps in UTC, numbers as floats, the rest
    as objects with None for missing."""
    out = {}
    for column in frame.columns:
        series = frame[column].reset_index(drop=True)
        if column.endswith("_at"):
            out[column] = pd.to_datetime(series, utc=True)
        elif column == "confidence":
            out[column] = pd.to_numeric(series).astype("float64")
        else:
            out[column] = series.astype(object).where(series.notna(), None)
    return pd.DataFrame(out, columns=frame.columns)


# The panel's record that the row-by-row reference never had.
PANEL_RECORD = ("aggregation", "votes", "vote", "agreement", "confidence")


def assert_same_pairing(prompts: pd.DataFrame, candidates: pd.DataFrame, judgments: pd.DataFrame) -> None:
    new = build_preference_pairs(prompts, candidates, judgments)
    old_pairs, old_comparisons = baseline_build_preference_pairs(prompts, candidates, judgments)
    shared = [c for c in old_comparisons.columns if c not in PANEL_RECORD]
    pd.testing.assert_frame_equal(comparable(new.comparisons[shared]), comparable(old_comparisons[shared]))
    pd.testing.assert_frame_equal(comparable(new.pairs), comparable(old_pairs), check_exact=False)


# --------------------------------------------------------------------------- timing

def _timed(fn, *args, **kwargs):
    started = time.perf_counter()
    value = fn(*args, **kwargs)
    return value, time.perf_counter() - started


def run(n_prompts: int, baseline: bool) -> dict:
    prompts, candidates, judgments = synthetic_tables(n_prompts, seed=n_prompts)
    result, pairing_s = _timed(build_preference_pairs, prompts, candidates, judgments)
    filtered, filter_s = _timed(filter_pairs, result.pairs, result.comparisons, prompts, candidates, FiltersSpec())
    gate, gate_s = _timed(gates.validate_pairs, filtered.pairs, GATE_SPEC, judgments)
    if not gate.success:
        raise SystemExit(f"the gate failed on the synthetic data: {gate.summary()}")
    row = {"prompts": n_prompts, "judgments": len(judgments), "pairs": len(filtered.pairs),
           "quarantined": len(filtered.quarantine), "pairing_s": pairing_s, "filter_s": filter_s, "gate_s": gate_s,
           "total_s": pairing_s + filter_s + gate_s}
    row["ms_per_prompt"] = 1000 * row["total_s"] / n_prompts
    if baseline:
        (old_pairs, _), old_s = _timed(baseline_build_preference_pairs, prompts, candidates, judgments)
        assert_same_pairing(prompts, candidates, judgments)
        row.update(old_pairing_s=old_s, ratio=pairing_s / old_s)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, nargs="+", default=[500, 2000, 8000])
    parser.add_argument("--no-baseline", action="store_true", help="skip the row-by-row pairing (slow at 8,000)")
    args = parser.parse_args()

    import great_expectations  # noqa: F401  (a per-process cost, measured apart)

    # Once per process, not per prompt: the GX context, datasketch's LSH band search, DuckDB's first query.
    started = time.perf_counter()
    run(20, baseline=False)
    warm_up_s = time.perf_counter() - started

    import duckdb
    import great_expectations as gx

    print(f"machine: {os.cpu_count()} CPUs (load average {os.getloadavg()[0]:.1f}), Python "
          f"{platform.python_version()}, pandas {pd.__version__}, duckdb {duckdb.__version__}, "
          f"great_expectations {gx.__version__}; {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC")
    print(f"warm-up (GX context, LSH bands, first query; 20 prompts): {warm_up_s:.2f} s, not counted below\n")
    header = (f"{'prompts':>7}  {'judgments':>9}  {'pairs':>6}  {'pairing s':>9}  {'filters s':>9}  {'gate s':>6}  "
              f"{'total s':>7}  {'ms/prompt':>9}  {'old pairing s':>13}  {'new/old':>7}")
    print(header)
    print("-" * len(header))
    rows = []
    for n in args.prompts:
        row = run(n, baseline=not args.no_baseline)
        rows.append(row)
        old = f"{row['old_pairing_s']:13.2f}  {row['ratio']:7.3f}" if "ratio" in row else f"{'-':>13}  {'-':>7}"
        print(f"{row['prompts']:>7}  {row['judgments']:>9}  {row['pairs']:>6}  {row['pairing_s']:9.3f}  "
              f"{row['filter_s']:9.3f}  {row['gate_s']:6.3f}  {row['total_s']:7.3f}  {row['ms_per_prompt']:9.3f}  {old}",
              flush=True)
    if len(rows) > 1:  # the cost of one more prompt, without what every batch pays once
        first, last = rows[0], rows[-1]
        slope = 1000 * (last["total_s"] - first["total_s"]) / (last["prompts"] - first["prompts"])
        print(f"\nmarginal cost from {first['prompts']} to {last['prompts']} prompts: {slope:.3f} ms per prompt")


if __name__ == "__main__":
    main()
