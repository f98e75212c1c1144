"""Filters (every dropped row in quarantine with its reason), the GX gates failing on purpose, rebalancing."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from pref_pipeline.config import FiltersSpec, GatesSpec
from pref_pipeline.filters import duplicate_prompts, filter_pairs, rebalance_length, response_problem
from pref_pipeline.gates import validate_candidates, validate_judgments, validate_pairs, validate_prompts
from pref_pipeline.metrics import longer_chosen, order_consistency, response_similarity
from pref_pipeline.pairs import build_preference_pairs
from pref_pipeline.quarantine import QUARANTINE_COLUMNS, gate_quarantine, record_of
from tests.helpers import JUDGE, JUDGE_2, candidates_frame, judgment, judgments_frame, prompts_frame

OFF = FiltersSpec(max_response_similarity=None, min_response_words=None, min_distinct_word_ratio=None,
                  max_response_chars=None, near_duplicate_prompt_threshold=None)


def built(rows):
    return build_preference_pairs(prompts_frame(), candidates_frame(), judgments_frame(rows))


def pair_rows(**texts):
    """A consistent comparison for c1 vs c2 of p1 with the given chosen/rejected texts patched in."""
    result = built([judgment("cmp-1", "xy", "B"), judgment("cmp-1", "yx", "A")])
    pairs = result.pairs.copy()
    for column, value in texts.items():
        pairs.loc[0, column] = value
    return pairs, result.comparisons


# --------------------------------------------------------------------------- filters

def test_comparisons_that_gave_no_pair_land_in_quarantine_with_their_status():
    rows = [
        judgment("cmp-1", "xy", "B"), judgment("cmp-1", "yx", "A"),  # consistent
        judgment("cmp-2", "xy", "A", x="c1", y="c3"), judgment("cmp-2", "yx", "A", x="c1", y="c3"),  # inconsistent
        judgment("cmp-3", "xy", "tie", x="c2", y="c3"), judgment("cmp-3", "yx", "tie", x="c2", y="c3"),  # tie
        judgment("cmp-4", "xy", "A", x="c4", y="c5", prompt="p2"),
        judgment("cmp-4", "yx", None, x="c4", y="c5", prompt="p2"),  # unparseable
        judgment("cmp-5", "xy", "A", x="c4", y="c5", prompt="p2"), judgment("cmp-5", "yx", "B", x="c4", y="c5", prompt="p2"),
        judgment("cmp-5", "xy", "B", x="c4", y="c5", prompt="p2", judge=JUDGE_2),
        judgment("cmp-5", "yx", "A", x="c4", y="c5", prompt="p2", judge=JUDGE_2),  # judges disagree
    ]
    result = built(rows)
    filtered = filter_pairs(result.pairs, result.comparisons, prompts_frame(), candidates_frame(), OFF)
    assert list(filtered.pairs["pair_id"]) == ["pair-1"]
    q = filtered.quarantine
    assert list(q.columns) == QUARANTINE_COLUMNS
    assert dict(zip(q["item_id"], q["reason"])) == {
        "cmp-2": "inconsistent", "cmp-3": "tie", "cmp-4": "unparseable", "cmp-5": "judges_disagree"}
    assert set(q["stage"]) == {"pairs"}
    tie = q.set_index("item_id").loc["cmp-3"]
    assert tie["prompt"] == "What causes tides?"
    assert {tie["response_1"], tie["response_2"]} == {"Mostly the gravity of the Moon, and a little the Sun's.", "Wind."}
    assert record_of(tie)["status"] == "tie"  # the original row is kept
    assert q["quarantined_at"].notna().all()


def test_kept_pairs_carry_word_counts():
    pairs, comparisons = pair_rows(chosen="one two  three\nfour", rejected="five")
    kept = filter_pairs(pairs, comparisons, prompts_frame(), candidates_frame(), OFF).pairs
    assert (kept.loc[0, "chosen_words"], kept.loc[0, "rejected_words"]) == (4, 1)


@pytest.mark.parametrize(("texts", "spec", "reason"), [
    ({"rejected": "   "}, FiltersSpec(), "empty_response"),
    ({"chosen": ""}, FiltersSpec(), "empty_response"),
    ({"rejected": "yes yes yes"}, FiltersSpec(), "degenerate_response"),
    ({"rejected": "I am sorry. " * 10}, FiltersSpec(), "degenerate_response"),
    ({"chosen": " ".join(f"word{i}" for i in range(50))}, FiltersSpec(max_response_chars=100), "response_too_long"),
    ({"chosen": "The Moon pulls the sea.", "rejected": "the moon   pulls the sea"}, FiltersSpec(), "identical_responses"),
    ({"chosen": "The Moon pulls the oceans toward it, and the Earth turns beneath the bulge, twice a day.",
      "rejected": "The Moon pulls the oceans toward it, and the Earth turns beneath the bulge, twice a day!!"},
     FiltersSpec(), "identical_responses"),
    ({"chosen": "The Moon pulls the oceans toward it and the Earth turns beneath the bulge twice each day",
      "rejected": "The Moon pulls the oceans toward it and the Earth turns beneath the bulge twice each day really"},
     FiltersSpec(max_response_similarity=0.8), "near_identical_responses"),
])
def test_pair_filters(texts, spec, reason):
    pairs, comparisons = pair_rows(**texts)
    filtered = filter_pairs(pairs, comparisons, prompts_frame(), candidates_frame(), spec)
    assert filtered.pairs.empty
    row = filtered.quarantine.iloc[0]
    assert (row["stage"], row["reason"], row["item_id"]) == ("filters", reason, "pair-1")
    assert row["response_1"] == pairs.loc[0, "chosen"] and row["response_2"] == pairs.loc[0, "rejected"]
    assert json.loads(row["record"])["pair_id"] == "pair-1"


def test_low_confidence_and_missing_confidence():
    pairs, comparisons = pair_rows()
    pairs = pd.concat([pairs, pairs.assign(pair_id="pair-2", confidence=float("nan")),
                       pairs.assign(pair_id="pair-3", confidence=0.95)], ignore_index=True)
    pairs.loc[0, "confidence"] = 0.4
    filtered = filter_pairs(pairs, comparisons, prompts_frame(), candidates_frame(), FiltersSpec(min_confidence=0.5))
    assert list(filtered.pairs["pair_id"]) == ["pair-2", "pair-3"]  # no confidence: kept
    q = filtered.quarantine[filtered.quarantine["stage"] == "filters"]
    assert list(zip(q["item_id"], q["reason"])) == [("pair-1", "low_confidence")]
    assert "0.40 < 0.5" in q.iloc[0]["detail"]


def test_first_applicable_reason_and_every_reason_in_detail():
    pairs, comparisons = pair_rows(rejected="", confidence=0.1)
    q = filter_pairs(pairs, comparisons, prompts_frame(), candidates_frame(), FiltersSpec(min_confidence=0.5)).quarantine
    assert q.iloc[0]["reason"] == "empty_response"
    assert "low_confidence" in q.iloc[0]["detail"]


def test_responses_and_similarity_helpers():
    assert response_problem("A fine answer.", FiltersSpec()) is None
    assert response_problem("word", FiltersSpec(min_response_words=3))[0] == "empty_response"
    assert response_problem("go go", FiltersSpec()) is None  # two words: too short to call degenerate
    assert response_similarity("a b c d", "a b c d") == 1.0
    assert response_similarity("the cat sat on the mat", "a dog ran in the park") == 0.0


def test_near_duplicate_prompts_with_minhash():
    prompts = pd.DataFrame({
        "prompt_id": ["p1", "p2", "p3", "p4"],
        "prompt": [
            "How do I reset my account password if I no longer have access to my email address?",
            "How do I reset my account password if I no longer have access to my email address ?!",  # exact, normalised
            "how do I reset my account password if I no longer have access to my old email address?",  # near
            "Write a four-line poem about autumn rain.",
        ],
    })
    found = duplicate_prompts(prompts, threshold=0.6)
    assert found["p2"][:2] == ("duplicate_prompt", "p1")
    assert found["p3"][:2] == ("near_duplicate_prompt", "p1")
    assert "p1" not in found and "p4" not in found
    assert set(duplicate_prompts(prompts, threshold=None)) == {"p2"}  # exact repeats only


def test_near_duplicate_prompt_pairs_are_quarantined():
    prompts = pd.concat([prompts_frame(), pd.DataFrame([{
        "prompt_id": "p3", "prompt": "What causes tides?!", "category": "factual", "reference": None, "source": "t"}])],
        ignore_index=True)
    pairs, comparisons = pair_rows()
    pairs = pd.concat([pairs, pairs.assign(pair_id="pair-9", prompt_id="p3")], ignore_index=True)
    filtered = filter_pairs(pairs, comparisons, prompts, candidates_frame(), FiltersSpec())
    assert list(filtered.pairs["pair_id"]) == ["pair-1"]
    row = filtered.quarantine[filtered.quarantine["stage"] == "filters"].iloc[0]
    assert (row["item_id"], row["reason"]) == ("pair-9", "duplicate_prompt")
    assert "repeats prompt p1" in row["detail"]


def test_failed_generation_calls_are_quarantined():
    candidates = candidates_frame()
    candidates.loc[4, ["text", "error"]] = [None, "ProviderError: 500"]
    filtered = filter_pairs(pd.DataFrame(columns=built([]).pairs.columns), built([]).comparisons, prompts_frame(),
                            candidates, OFF)
    q = filtered.quarantine
    assert list(zip(q["stage"], q["reason"], q["item_id"])) == [("candidates", "generation_error", "c5")]


def test_quarantine_text_columns_are_typed_even_when_empty():
    import duckdb

    q = filter_pairs(*pair_rows(), prompts_frame(), candidates_frame(), OFF).quarantine
    assert q.empty
    con = duckdb.connect()
    con.register("q", q)
    types = dict(con.execute("DESCRIBE SELECT * FROM q").fetchall()[i][:2] for i in range(len(q.columns)))
    assert types["reason"] == "VARCHAR" and types["pair_id"] == "VARCHAR"


# --------------------------------------------------------------------------- rebalancing

def test_rebalance_length_halves_the_longer_chosen_share():
    lengths = [(5, 2)] * 8 + [(2, 5)] * 2 + [(3, 3)] * 2
    pairs = pd.DataFrame({"pair_id": [f"pair-{i}" for i in range(len(lengths))],
                          "chosen": [" ".join(["w"] * c) for c, _ in lengths],
                          "rejected": [" ".join(["w"] * r) for _, r in lengths]})
    kept, dropped = rebalance_length(pairs)
    assert len(kept) == 2 + 2 + 2 and len(dropped) == 6
    flags = longer_chosen(kept)
    assert flags.sum() == 2 and (flags == 0).sum() == 2 and flags.isna().sum() == 2
    assert set(dropped["reason"]) == {"length_rebalance"} and set(dropped["stage"]) == {"export"}
    assert set(dropped["item_id"]) <= {f"pair-{i}" for i in range(8)}
    assert rebalance_length(pairs)[0]["pair_id"].tolist() == kept["pair_id"].tolist()  # deterministic
    assert rebalance_length(pairs, seed=1)[0]["pair_id"].tolist() != kept["pair_id"].tolist()
    balanced, none = rebalance_length(kept)
    assert len(balanced) == len(kept) and none.empty


# --------------------------------------------------------------------------- gates failing on purpose

def good_pairs():
    rows = [judgment("cmp-1", "xy", "B"), judgment("cmp-1", "yx", "A"),
            judgment("cmp-2", "xy", "A", x="c4", y="c5", prompt="p2"),
            judgment("cmp-2", "yx", "B", x="c4", y="c5", prompt="p2")]
    return built(rows).pairs, judgments_frame(rows)


def test_every_stage_passes_on_good_tables():
    pairs, judgments = good_pairs()
    assert validate_prompts(prompts_frame()).success
    assert validate_candidates(candidates_frame()).success
    assert validate_judgments(judgments).success
    gate = validate_pairs(pairs, GatesSpec(min_position_consistency=0.9, max_length_bias=0.5), judgments)
    assert gate.success, gate.failures
    assert gate.figures["position_consistency"]["rate"] == 1.0


def failed(gate) -> set[str]:
    return {f["label"] for f in gate.failures}


def test_prompts_gate_fails():
    prompts = prompts_frame()
    prompts.loc[1, "prompt_id"] = "p1"
    prompts.loc[0, "prompt"] = "   "
    gate = validate_prompts(prompts, GatesSpec(min_prompts=3))
    assert not gate.success
    assert failed(gate) == {"expect_table_row_count_to_be_between", "expect_column_values_to_be_unique(prompt_id)",
                            "expect_column_values_to_match_regex(prompt)"}


def test_candidates_gate_fails_on_missing_text_without_error():
    candidates = candidates_frame()
    candidates.loc[0, "text"] = None  # no text, yet no error recorded
    candidates.loc[1, ["text", "error"]] = [None, "ProviderError: 500"]  # a failed call: allowed
    gate = validate_candidates(candidates)
    assert failed(gate) == {"expect_column_values_to_not_be_null(text)"}
    assert gate.failing_ids() == {"c1": ["expect_column_values_to_not_be_null(text)"]}


def test_judgments_gate_fails_on_bad_verdicts():
    rows = [judgment("cmp-1", "xy", "B"), judgment("cmp-1", "yx", "A")]
    frame = judgments_frame(rows)
    frame.loc[0, "preference"] = "C"
    frame.loc[1, "confidence"] = 1.5
    gate = validate_judgments(frame)
    assert failed(gate) == {"expect_column_values_to_be_in_set(preference)", "expect_column_values_to_be_between(confidence)"}
    ids = gate.failing_ids()
    assert set(ids) == {frame.loc[0, "judgment_id"], frame.loc[1, "judgment_id"]}


def test_judgments_gate_catches_ok_status_without_verdict():
    frame = judgments_frame([judgment("cmp-1", "xy", None, status="ok"), judgment("cmp-1", "yx", "A")])
    assert "expect_column_values_to_not_be_null(preference)" in failed(validate_judgments(frame))


def test_pairs_gate_row_level_failures_and_quarantine():
    pairs, judgments = good_pairs()
    pairs.loc[1, "rejected"] = pairs.loc[1, "chosen"]
    pairs.loc[0, "judge_fingerprint"] = None
    gate = validate_pairs(pairs)
    assert failed(gate) == {"expect_select_column_values_to_be_unique_within_record(chosen,rejected)",
                            "expect_column_values_to_not_be_null(judge_fingerprint)"}
    q = gate_quarantine("preference_pairs", pairs, gate)
    assert dict(zip(q["item_id"], q["reason"])) == {
        "pair-1": "expect_column_values_to_not_be_null(judge_fingerprint)",
        "pair-2": "expect_select_column_values_to_be_unique_within_record(chosen,rejected)"}
    assert set(q["stage"]) == {"gate:preference_pairs"}


def test_pairs_gate_min_pairs_quarantines_the_whole_batch():
    pairs, _ = good_pairs()
    gate = validate_pairs(pairs, GatesSpec(min_pairs=5))
    assert failed(gate) == {"expect_table_row_count_to_be_between"}
    q = gate_quarantine("preference_pairs", pairs, gate)
    assert list(q["reason"]) == ["batch_rejected", "batch_rejected"]
    assert "observed 2" in q.iloc[0]["detail"] and "min_value=5" in q.iloc[0]["detail"]


def test_upstream_table_level_failure_leaves_one_batch_row():
    prompts = prompts_frame().assign(batch_id="b1")
    gate = validate_prompts(prompts, GatesSpec(min_prompts=10))
    q = gate_quarantine("prompts", prompts, gate)
    assert len(q) == 1
    assert (q.iloc[0]["stage"], q.iloc[0]["item_id"], q.iloc[0]["batch_id"]) == ("gate:prompts", "b1", "b1")


def test_dataset_level_length_bias_bound():
    lengths = [(5, 2)] * 14 + [(2, 5)] * 6  # 70% longer chosen
    pairs = pd.concat([good_pairs()[0].iloc[[0]]] * 20, ignore_index=True)
    pairs["pair_id"] = [f"pair-{i}" for i in range(20)]
    pairs["chosen_candidate_id"] = [f"c{i}" for i in range(20)]
    pairs["chosen"] = [" ".join(["w"] * c) + f" {i}" for i, (c, _) in enumerate(lengths)]
    pairs["rejected"] = [" ".join(["v"] * r) + f" {i}" for i, (_, r) in enumerate(lengths)]
    bad = validate_pairs(pairs, GatesSpec(max_length_bias=0.15))
    assert failed(bad) == {"expect_column_mean_to_be_between(_longer_chosen)"}
    assert bad.figures["length_bias"]["pct_longer_chosen"] == 0.7
    assert validate_pairs(pairs, GatesSpec(max_length_bias=0.2)).success  # 0.7 is exactly on the edge: inside
    assert validate_pairs(pairs, GatesSpec(max_length_bias=None)).success  # off by default


def test_dataset_level_position_consistency_floor():
    pairs, judgments = good_pairs()
    extra = judgments_frame([judgment("cmp-3", "xy", "A", x="c2", y="c3"), judgment("cmp-3", "yx", "A", x="c2", y="c3"),
                             judgment("cmp-4", "xy", "A", x="c1", y="c3"), judgment("cmp-4", "yx", "A", x="c1", y="c3")])
    judgments = pd.concat([judgments, extra], ignore_index=True)
    assert order_consistency(judgments)["same_verdict_both_orders"].mean() == 0.5
    gate = validate_pairs(pairs, GatesSpec(min_position_consistency=0.6), judgments)
    assert failed(gate) == {"expect_column_mean_to_be_between(same_verdict_both_orders)"}
    assert gate.figures["position_consistency"] == {"rate": 0.5, "n_both_orders": 4, "min_position_consistency": 0.6}
    assert validate_pairs(pairs, GatesSpec(min_position_consistency=0.5), judgments).success
    # Without any comparison judged in both orders the floor cannot be shown: the gate fails.
    assert not validate_pairs(pairs, GatesSpec(min_position_consistency=0.1), judgments.iloc[:0]).success


def test_defaults_pass_the_stand_in_run_shape():
    """The embedded default run: a few pairs, consistency far below any sensible floor: default gates pass."""
    pairs, judgments = good_pairs()
    inconsistent = judgments_frame([judgment(f"cmp-{i}", order, "A", x="c2", y="c3", judge="local:smollm2-135m")
                                    for i in range(3, 13) for order in ("xy", "yx")])
    assert validate_pairs(pairs, GatesSpec(), pd.concat([judgments, inconsistent], ignore_index=True)).success
    assert JUDGE in set(judgments["judge_model"])
