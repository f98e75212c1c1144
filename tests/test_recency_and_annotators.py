"""Recency and drift for every label, worked out by hand in the test:

- a pair no judge dated (a construction pair) is weighted by when it was generated, and publishing counts its
  age from the newest dated pair of any batch;
- the annotator drift table: human labels per labeller and week of ``labelled_at``, and their agreement with
  the pairs.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
from statsmodels.stats.proportion import proportion_confint

from pref_pipeline import schema, store, table_files
from pref_pipeline.audit import compute_audit, render_markdown
from pref_pipeline.config import parse_config
from pref_pipeline.export import with_recency_weight
from pref_pipeline.pairing import publish_batch
from pref_pipeline.pairs import COMPARISON_COLUMNS
from pref_pipeline.paths import Home
from tests.helpers import empty_comparisons, empty_judgments, judgment, judgments_frame


def assert_ci(actual, k: int, n: int) -> None:
    low, high = proportion_confint(k, n, alpha=0.05, method="wilson")
    assert actual[0] == pytest.approx(low, abs=1e-4) and actual[1] == pytest.approx(high, abs=1e-4)


# --------------------------------------------------------------------------- recency for every pair

T = pd.Timestamp("2024-06-30 12:00", tz="UTC")


def test_a_pair_no_judge_dated_is_weighted_by_when_it_was_generated():
    """Half-life 10 days. A judged pair dated by its verdict (the newest time: 1.0), construction pairs (no
    ``judged_at``) by their generation: 10 days older 0.5, 20 days older 0.25; a judged pair's verdict wins over its
    generation time; a pair with neither time weighs 1.0 as before."""
    pairs = pd.DataFrame({
        "pair_id": ["judged", "built-10", "built-20", "judged-old", "undated"],
        "judged_at": [T, None, None, T - pd.Timedelta(days=30), None],
        "generated_at": [T - pd.Timedelta(days=40), T - pd.Timedelta(days=10), T - pd.Timedelta(days=20),
                         T - pd.Timedelta(days=31), None]})
    weighted = with_recency_weight(pairs, 10)
    assert list(weighted["recency_weight"]) == [1.0, 0.5, 0.25, 0.125, 1.0]
    # Counted from a later reference (a newer batch), every pair is 10 days older.
    assert list(with_recency_weight(pairs, 10, reference=T + pd.Timedelta(days=10))["recency_weight"]) == [
        0.5, 0.25, 0.125, 0.0625, 1.0]
    # Only construction pairs: the newest generation is the reference.
    assert list(with_recency_weight(pairs.iloc[1:3], 10)["recency_weight"]) == [1.0, 0.5]


def constructed_pair(pair_id: str, generated_at: pd.Timestamp, batch: str) -> dict:
    return {"pair_id": pair_id, "prompt_id": "p1", "prompt": "q", "chosen": "a good answer", "rejected": "worse",
            "generation_method": "gold_corruption", "judge_model_id": "none", "criteria": "construction",
            "label_source": "construction", "judged_at": None, "generated_at": generated_at,
            "chosen_candidate_id": f"{pair_id}-a", "rejected_candidate_id": f"{pair_id}-b", "batch_id": batch}


def test_publishing_counts_construction_pairs_from_the_newest_dated_pair_of_any_batch(home):
    """Batch ``new`` stored a construction pair generated at T; batch ``old``'s construction pair, generated 30 days
    earlier, is published with half-life 30: 0.5 (before, a pair without a verdict weighed 1.0)."""
    paths = Home.from_env().ensure()
    table_files.append(paths, "preference_pairs", "new", schema.from_rows("preference_pairs", [
        constructed_pair("pair-new", T, "new")]))
    config = parse_config({"generators": [{"model": "openai:gen"}], "judges": [{"model": "openai:judge"}],
                           "export": {"recency_half_life_days": 30}})
    old = schema.from_rows("preference_pairs", [constructed_pair("pair-old", T - pd.Timedelta(days=30), "old")])
    published = publish_batch(old, pd.DataFrame(columns=["stage", "item_id", "detail"]), config, paths, "old")
    assert published.recency_reference == T
    assert list(published.pairs["recency_weight"]) == [0.5]
    # A verdict recorded later still counts, as before: 10 days after T makes the pair 40 days old.
    store.append_judgment_history(paths, judgments_frame([judgment("cmp-9", "xy", "A") | {
        "judged_at": T + pd.Timedelta(days=10)}]))
    published = publish_batch(old, pd.DataFrame(columns=["stage", "item_id", "detail"]), config, paths, "old")
    assert published.pairs["recency_weight"].iloc[0] == pytest.approx(0.5 ** (40 / 30), abs=1e-6)


# --------------------------------------------------------------------------- annotator drift

def day(d: int) -> datetime:
    return datetime(2024, 5, d, 12, 0, tzinfo=timezone.utc)


def test_annotator_drift_table_per_labeller_and_week():
    """Pairs: cmp-1 chose c1, cmp-2 chose c3, cmp-3 made none, cmp-4 chose c7. Labels:
    alice, Tue 7 May (week of Mon 6 May): c1 (agrees), c4 (disagrees), c5 on cmp-3 (decisive, no pair to agree with);
    alice, Tue 14 May (week of 13 May): c1 (agrees), c3 (agrees), a tie on cmp-4;
    bob, Wed 8 May (week of 6 May): c2 on cmp-1 (disagrees);
    a known-answer set (no labeller), Tue 21 May (week of 20 May): c7 on cmp-4 (agrees)."""
    comparisons = pd.DataFrame([
        {"comparison_id": "cmp-1", "status": "consistent", "winner_id": "c1"},
        {"comparison_id": "cmp-2", "status": "construction", "winner_id": "c3"},
        {"comparison_id": "cmp-3", "status": "inconsistent", "winner_id": None},
        {"comparison_id": "cmp-4", "status": "consistent", "winner_id": "c7"}], columns=COMPARISON_COLUMNS)
    labels = [("alice", "cmp-1", "c1", 7), ("alice", "cmp-2", "c4", 7), ("alice", "cmp-3", "c5", 7),
              ("alice", "cmp-1", "c1", 14), ("alice", "cmp-2", "c3", 14), ("alice", "cmp-4", None, 14),
              ("bob", "cmp-1", "c2", 8), (None, "cmp-4", "c7", 21)]
    human = pd.DataFrame([{
        "label_id": f"h{i}", "source": "review" if who else "llmbar", "comparison_id": cmp, "labeller": who,
        "human_preference": "tie" if winner is None else "x", "human_winner_id": winner,
        "labelled_at": day(d)} for i, (who, cmp, winner, d) in enumerate(labels)])
    figures = compute_audit(pd.DataFrame(columns=["chosen", "rejected"]), empty_judgments(), comparisons,
                            human_labels=human)
    table = figures["drift"]["annotators"]
    assert [(a["labeller"], a["week"], a["n_labels"], a["n_decisive"], a["n_with_pair"], a["n_agree"],
             a["agreement_rate"]) for a in table] == [
        ("(llmbar)", "2024-05-20", 1, 1, 1, 1, 1.0),
        ("alice", "2024-05-06", 3, 3, 2, 1, 0.5),
        ("alice", "2024-05-13", 3, 2, 2, 2, 1.0),
        ("bob", "2024-05-06", 1, 1, 1, 0, 0.0)]
    assert_ci(table[1]["agreement_ci95"], 1, 2)
    markdown = render_markdown(figures)
    assert "| alice | 2024-05-06 | 3 | 3 | 2 | 50.0%" in markdown
    # No labels: the table says how to get some.
    empty = render_markdown(compute_audit(pd.DataFrame(columns=["chosen", "rejected"]), empty_judgments(),
                                          empty_comparisons()))
    assert "_No human labels yet: `pref-pipeline review export` writes a sheet to label" in empty
    assert compute_audit(pd.DataFrame(columns=["chosen", "rejected"]), empty_judgments(),
                         empty_comparisons())["drift"]["annotators"] == []


def test_annotator_weeks_follow_labelled_at_across_a_month():
    """One labeller over four weeks, one label a week, agreeing in the first two and not after: four rows, the
    agreement falling from 100% to 0% (what drift looks like in the table)."""
    comparisons = pd.DataFrame([{"comparison_id": f"cmp-{w}", "status": "consistent", "winner_id": f"win-{w}"}
                                for w in range(4)], columns=COMPARISON_COLUMNS)
    human = pd.DataFrame([{
        "label_id": f"h{w}", "source": "review", "comparison_id": f"cmp-{w}", "labeller": "carol",
        "human_preference": "x", "human_winner_id": f"win-{w}" if w < 2 else "other",
        "labelled_at": day(7) + timedelta(weeks=w)} for w in range(4)])
    table = compute_audit(pd.DataFrame(columns=["chosen", "rejected"]), empty_judgments(), comparisons,
                          human_labels=human)["drift"]["annotators"]
    assert [(a["week"], a["agreement_rate"]) for a in table] == [
        ("2024-05-06", 1.0), ("2024-05-13", 1.0), ("2024-05-20", 0.0), ("2024-05-27", 0.0)]
