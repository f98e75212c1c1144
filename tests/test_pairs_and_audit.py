"""From verdicts to pairs, and the audit figures, on hand-made tables whose answers are known."""

from __future__ import annotations

import json
from datetime import timedelta

import pandas as pd
import pytest

from pref_pipeline.audit import LENGTH_BIAS_BAND, compute_audit, render_markdown, write_report
from pref_pipeline.pairs import COMPARISON_COLUMNS, PAIR_COLUMNS, build_preference_pairs
from tests.helpers import (
    CANDIDATE_TEXTS, JUDGE, JUDGE_2, T0, candidates_frame, empty_comparisons, empty_judgments, judgment,
    judgments_frame, known_judgments, prompts_frame,
)


def build(rows: list[dict]):
    result = build_preference_pairs(prompts_frame(), candidates_frame(), judgments_frame(rows))
    assert list(result.pairs.columns) == PAIR_COLUMNS
    assert list(result.comparisons.columns) == COMPARISON_COLUMNS
    return result


def status_of(result, cmp: str) -> str:
    row = result.comparisons.set_index("comparison_id").loc[cmp]
    return row["status"]


# --------------------------------------------------------------------------- build_preference_pairs

def test_consistent_comparison_becomes_a_pair():
    # x = c1 (short), y = c2 (long); xy says B (= y), yx says A (= y): consistent for c2.
    rows = [
        judgment("cmp-1", "xy", "B", confidence=0.9, reasoning="B explains the mechanism.", minute=1),
        judgment("cmp-1", "yx", "A", confidence=0.7, reasoning="A is complete.", minute=5),
    ]
    result = build(rows)
    assert len(result.pairs) == 1
    pair = result.pairs.iloc[0]
    assert pair["pair_id"] == "pair-1"
    assert pair["prompt_id"] == "p1"
    assert pair["prompt"] == "What causes tides?"
    assert pair["chosen"] == CANDIDATE_TEXTS["c2"][1]
    assert pair["rejected"] == CANDIDATE_TEXTS["c1"][1]
    assert pair["chosen_candidate_id"] == "c2"
    assert pair["rejected_candidate_id"] == "c1"
    assert pair["generation_method"] == "llm_as_judge"
    assert pair["judge_model_id"] == "gpt-4o"  # without the provider prefix
    assert pair["criteria"] == "helpfulness_and_clarity"
    assert pair["category"] == "factual"
    assert pair["chosen_model"] == "openai:gen-big"
    assert pair["rejected_model"] == "openai:gen-small"
    assert pair["chosen_generator"] == "big"
    assert pair["rejected_generator"] == "small"
    assert pair["verdict_ab"] == "B"
    assert pair["verdict_ba"] == "A"
    assert pair["confidence"] == pytest.approx(0.8)
    assert pair["reasoning"] == "B explains the mechanism."
    assert pair["judge_fingerprint"] == "fp-gpt"
    assert pair["judged_at"] == T0 + timedelta(hours=1, minutes=5)
    assert pair["generated_at"] == T0 + timedelta(minutes=1)

    comparison = result.comparisons.iloc[0]
    assert comparison["status"] == "consistent"
    assert comparison["winner_id"] == "c2"
    assert comparison["judge_models"] == JUDGE


def test_consistent_for_x():
    rows = [judgment("cmp-1", "xy", "A"), judgment("cmp-1", "yx", "B")]
    pair = build(rows).pairs.iloc[0]
    assert (pair["chosen_candidate_id"], pair["rejected_candidate_id"]) == ("c1", "c2")
    assert pair["chosen"] == "The Moon."


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([judgment("cmp-9", "xy", "A"), judgment("cmp-9", "yx", "A")], "inconsistent"),  # position bias: always A
        ([judgment("cmp-9", "xy", "B"), judgment("cmp-9", "yx", "B")], "inconsistent"),
        ([judgment("cmp-9", "xy", "A"), judgment("cmp-9", "yx", "tie")], "inconsistent"),
        ([judgment("cmp-9", "xy", "tie"), judgment("cmp-9", "yx", "tie")], "tie"),
        ([judgment("cmp-9", "xy", "A"), judgment("cmp-9", "yx", None)], "unparseable"),
        ([judgment("cmp-9", "xy", None), judgment("cmp-9", "yx", None)], "unparseable"),
        ([judgment("cmp-9", "xy", "A"), judgment("cmp-9", "yx", None, error="ProviderError: 500")], "error"),
        ([judgment("cmp-9", "xy", "A")], "error"),  # one order missing
    ],
)
def test_comparisons_that_give_no_pair(rows, expected):
    result = build(rows)
    assert result.pairs.empty
    assert len(result.comparisons) == 1
    assert status_of(result, "cmp-9") == expected
    assert pd.isna(result.comparisons.iloc[0]["winner_id"])  # typed text column: missing is <NA>


def test_every_comparison_is_listed_with_its_status():
    rows = [
        judgment("cmp-1", "xy", "B"), judgment("cmp-1", "yx", "A"),  # consistent: c2
        judgment("cmp-2", "xy", "A", x="c1", y="c3"), judgment("cmp-2", "yx", "A", x="c1", y="c3"),
        judgment("cmp-3", "xy", "tie", x="c2", y="c3"), judgment("cmp-3", "yx", "tie", x="c2", y="c3"),
        judgment("cmp-4", "xy", "A", x="c4", y="c5", prompt="p2"),
        judgment("cmp-4", "yx", None, x="c4", y="c5", prompt="p2"),
    ]
    result = build(rows)
    assert list(result.pairs["pair_id"]) == ["pair-1"]
    statuses = dict(zip(result.comparisons["comparison_id"], result.comparisons["status"]))
    assert statuses == {"cmp-1": "consistent", "cmp-2": "inconsistent", "cmp-3": "tie", "cmp-4": "unparseable"}


def test_two_judges_that_disagree():
    rows = [
        judgment("cmp-1", "xy", "A"), judgment("cmp-1", "yx", "B"),  # gpt: consistent for x
        judgment("cmp-1", "xy", "B", judge=JUDGE_2), judgment("cmp-1", "yx", "A", judge=JUDGE_2),  # claude: y
    ]
    result = build(rows)
    assert result.pairs.empty
    assert status_of(result, "cmp-1") == "judges_disagree"
    assert result.comparisons.iloc[0]["judge_models"] == f"{JUDGE_2}+{JUDGE}"


def test_two_judges_one_inconsistent():
    rows = [
        judgment("cmp-1", "xy", "A"), judgment("cmp-1", "yx", "B"),
        judgment("cmp-1", "xy", "A", judge=JUDGE_2), judgment("cmp-1", "yx", "A", judge=JUDGE_2),
    ]
    result = build(rows)
    assert result.pairs.empty
    assert status_of(result, "cmp-1") == "inconsistent"


def test_two_judges_that_agree_make_one_pair_naming_both():
    rows = [
        judgment("cmp-1", "xy", "B", confidence=0.6), judgment("cmp-1", "yx", "A", confidence=0.8),
        judgment("cmp-1", "xy", "B", judge=JUDGE_2, confidence=1.0, criteria="accuracy"),
        judgment("cmp-1", "yx", "A", judge=JUDGE_2, confidence=1.0, criteria="accuracy"),
    ]
    result = build(rows)
    assert len(result.pairs) == 1
    pair = result.pairs.iloc[0]
    assert pair["chosen_candidate_id"] == "c2"
    assert pair["judge_model_id"] == "claude-x+gpt-4o"
    assert pair["criteria"] == "accuracy+helpfulness_and_clarity"
    assert pair["judge_fingerprint"] == "fp-claude+fp-gpt"
    assert pair["verdict_ab"] == "B|B"
    assert pair["verdict_ba"] == "A|A"
    assert pair["confidence"] == pytest.approx(0.85)


def test_no_judgments_no_pairs():
    result = build([])
    assert result.pairs.empty and result.comparisons.empty


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_set_based_pairing_matches_the_row_by_row_reference(seed):
    """Messy verdicts (three candidates a prompt, two judges that sometimes disagree, failed calls, missing
    orders): the set-based query gives the statuses, winners and pairs of the former row-by-row pairing."""
    from bench.bench_pairing import assert_same_pairing, synthetic_tables

    prompts, candidates, judgments = synthetic_tables(60, candidates_per_prompt=3, judges=2, seed=seed, messy=True)
    statuses = set(build_preference_pairs(prompts, candidates, judgments).comparisons["status"])
    assert statuses == {"consistent", "inconsistent", "tie", "unparseable", "error", "judges_disagree"}
    assert_same_pairing(prompts, candidates, judgments)


# --------------------------------------------------------------------------- audit: length bias

def pairs_of(lengths: list[tuple[int, int]]) -> pd.DataFrame:
    """Pairs whose chosen/rejected responses have the given word counts."""
    return pd.DataFrame({
        "chosen": [" ".join(["word"] * c) for c, _ in lengths],
        "rejected": [" ".join(["word"] * r) for _, r in lengths],
    }, dtype=object)


def test_length_bias_three_of_four_longer_chosen_is_flagged():
    pairs = pairs_of([(10, 3), (8, 2), (5, 4), (2, 9), (6, 6)])  # 3 of 4 unequal: longer chosen; 1 equal
    audit = compute_audit(pairs, empty_judgments(), empty_comparisons())
    lb = audit["length_bias"]
    assert lb["pct_longer_chosen"] == 0.75
    assert lb["flagged"] is True
    assert lb["n_compared"] == 4
    assert lb["n_equal_length"] == 1
    assert lb["mean_chosen_words"] == pytest.approx((10 + 8 + 5 + 2 + 6) / 5, abs=0.05)
    assert lb["mean_rejected_words"] == pytest.approx((3 + 2 + 4 + 9 + 6) / 5, abs=0.05)
    assert audit["pairs"]["kept"] == 5
    assert any(flag.startswith("length bias") for flag in audit["flags"])


def test_length_bias_balanced_is_not_flagged():
    audit = compute_audit(pairs_of([(10, 3), (2, 8), (7, 1), (1, 7)]), empty_judgments(), empty_comparisons())
    assert audit["length_bias"]["pct_longer_chosen"] == 0.5
    assert audit["length_bias"]["flagged"] is False
    assert not any(flag.startswith("length bias") for flag in audit["flags"])


def test_length_bias_shorter_always_chosen_is_flagged():
    audit = compute_audit(pairs_of([(1, 3), (2, 8), (4, 5)]), empty_judgments(), empty_comparisons())
    assert audit["length_bias"]["pct_longer_chosen"] == 0.0
    assert audit["length_bias"]["flagged"] is True


@pytest.mark.parametrize(("n_longer", "flagged"), [(13, False), (14, True), (7, False), (6, True)])
def test_length_bias_band_edges(n_longer, flagged):
    """The flag is for *outside* 50% ± 15%: exactly 65% or 35% of 20 pairs is inside the band."""
    assert LENGTH_BIAS_BAND == 0.15
    lengths = [(5, 2)] * n_longer + [(2, 5)] * (20 - n_longer)
    audit = compute_audit(pairs_of(lengths), empty_judgments(), empty_comparisons())
    assert audit["length_bias"]["pct_longer_chosen"] == pytest.approx(n_longer / 20)
    assert audit["length_bias"]["flagged"] is flagged


def test_only_equal_lengths_gives_no_figure():
    audit = compute_audit(pairs_of([(4, 4), (2, 2)]), empty_judgments(), empty_comparisons())
    assert audit["length_bias"]["pct_longer_chosen"] is None
    assert audit["length_bias"]["flagged"] is False
    assert audit["length_bias"]["n_equal_length"] == 2


def test_empty_tables():
    audit = compute_audit(pd.DataFrame(columns=PAIR_COLUMNS), empty_judgments(), empty_comparisons())
    assert audit["pairs"] == {"kept": 0, "quarantined": 0, "quarantined_batch_rows": 0, "left_out_by_export": 0,
                              "comparisons": 0, "by_status": {}, "awaiting_label": 0}
    assert audit["length_bias"]["pct_longer_chosen"] is None
    assert audit["position_bias"]["consistency_rate"] is None
    assert audit["position_bias"]["first_position_win_rate"] is None
    assert audit["flags"] == []


# --------------------------------------------------------------------------- audit: position bias

def test_position_bias_on_known_counts():
    audit = compute_audit(pairs_of([]), known_judgments(), empty_comparisons())
    pb = audit["position_bias"]
    # Both orders parsed for cmp-1, cmp-2, cmp-3; cmp-1 and cmp-3 agree.
    assert pb["n_both_orders"] == 3
    assert pb["consistency_rate"] == pytest.approx(round(2 / 3, 4))
    # Decisive parsed verdicts: A, B (cmp-1), A, A (cmp-2), A (cmp-4) -> 4 of 5 for the first position.
    assert pb["first_position_win_rate"] == 0.8
    judging = audit["judging"]
    assert judging == {"judgments": 10, "unparseable": 1, "errors": 2, "parse_retries": 1 + 2}
    assert any("could not be parsed" in flag for flag in audit["flags"])
    assert not any(flag.startswith("position bias") for flag in audit["flags"])  # 67% >= 50%


def test_position_bias_flag_when_mostly_inconsistent():
    rows = [
        judgment("cmp-1", "xy", "A"), judgment("cmp-1", "yx", "A"),
        judgment("cmp-2", "xy", "A"), judgment("cmp-2", "yx", "A"),
        judgment("cmp-3", "xy", "B"), judgment("cmp-3", "yx", "A"),
    ]
    audit = compute_audit(pairs_of([]), judgments_frame(rows), empty_comparisons())
    assert audit["position_bias"]["consistency_rate"] == pytest.approx(round(1 / 3, 4))
    assert audit["position_bias"]["first_position_win_rate"] == pytest.approx(round(5 / 6, 4))
    assert any(flag.startswith("position bias") for flag in audit["flags"])


def test_position_bias_per_judge():
    """Each judge's two orders are paired with each other, never across judges."""
    frame = pd.concat([known_judgments(JUDGE), known_judgments(JUDGE_2)], ignore_index=True)
    audit = compute_audit(pairs_of([]), frame, empty_comparisons())
    assert audit["position_bias"]["n_both_orders"] == 6
    assert audit["position_bias"]["consistency_rate"] == pytest.approx(round(4 / 6, 4))


def test_stand_in_judge_is_flagged():
    audit = compute_audit(pairs_of([]), known_judgments("local:smollm2-135m"), empty_comparisons())
    assert any("local:smollm2-135m" in flag and "stand-in" in flag for flag in audit["flags"])


def test_capable_judge_is_not_flagged_as_stand_in():
    audit = compute_audit(pairs_of([]), known_judgments(JUDGE), empty_comparisons())
    assert not any("stand-in" in flag for flag in audit["flags"])


def test_audit_from_built_pairs():
    rows = [
        judgment("cmp-1", "xy", "B"), judgment("cmp-1", "yx", "A"),
        judgment("cmp-2", "xy", "A", x="c1", y="c3"), judgment("cmp-2", "yx", "A", x="c1", y="c3"),
        judgment("cmp-3", "xy", "tie", x="c2", y="c3"), judgment("cmp-3", "yx", "tie", x="c2", y="c3"),
    ]
    judgments = judgments_frame(rows)
    result = build_preference_pairs(prompts_frame(), candidates_frame(), judgments)
    audit = compute_audit(result.pairs, judgments, result.comparisons)
    assert audit["pairs"]["kept"] == 1
    assert audit["pairs"]["comparisons"] == 3
    assert audit["pairs"]["by_status"] == {"consistent": 1, "inconsistent": 1, "tie": 1}
    assert audit["length_bias"]["pct_longer_chosen"] == 1.0  # c2 is longer than c1


# --------------------------------------------------------------------------- report files

def test_write_report(tmp_path):
    audit = compute_audit(pairs_of([(10, 3), (8, 2), (5, 4), (2, 9)]), known_judgments("local:smollm2-135m"),
                          pd.DataFrame([{"comparison_id": "cmp-1", "status": "consistent"}], columns=COMPARISON_COLUMNS))
    json_path, md_path = write_report(audit, tmp_path / "reports" / "run-1")
    assert json_path == tmp_path / "reports" / "run-1" / "audit.json"
    assert md_path.name == "audit.md"
    data = json.loads(json_path.read_text(encoding="utf-8"))
    assert data["length_bias"]["pct_longer_chosen"] == 0.75
    assert data["length_bias"]["flagged"] is True
    assert data["position_bias"]["consistency_rate"] == pytest.approx(round(2 / 3, 4))
    assert "first_position_win_rate" in data["position_bias"]
    assert data["pairs"]["kept"] == 4
    assert isinstance(data["flags"], list) and data["flags"]
    assert data == json.loads(json.dumps(audit))
    markdown = md_path.read_text(encoding="utf-8")
    assert markdown == render_markdown(audit)
    assert "**4 pairs kept** from 1 comparisons" in markdown
    assert "75.0%" in markdown
    assert "stand-in" in markdown
    assert "| consistent | 1 |" in markdown
