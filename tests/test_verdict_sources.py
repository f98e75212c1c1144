"""Length bias by where a label comes from, each figure worked out by hand in the test: the judge's
(``length_bias.pct_longer_chosen``: judge-labelled pairs of unequal length), the seed's
(``pct_longer_chosen_all_pairs``: longer chosen over every pair, a tie counting as not longer) and per label
source, on hand-made tables and on a Dagster run mixing judged and construction pairs; the length-controlled
model and the ``max_length_bias`` gate on judge-labelled pairs only.
"""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from statsmodels.stats.proportion import proportion_confint

from pref_pipeline.audit import compute_audit, headline_figures, render_markdown
from pref_pipeline.config import GatesSpec
from pref_pipeline.gates import validate_pairs
from pref_pipeline.metrics import judge_labelled
from pref_pipeline.paths import Home
from tests.fakes.in_process import FakeLLM
from tests.helpers import empty_comparisons, empty_judgments, materialize, pipeline_config, read_jsonl, write_prompts


def text(n_words: int, word: str = "w") -> str:
    return " ".join([word] * n_words)


def assert_ci(actual, k: int, n: int) -> None:
    low, high = proportion_confint(k, n, alpha=0.05, method="wilson")
    assert actual[0] == pytest.approx(low, abs=1e-4) and actual[1] == pytest.approx(high, abs=1e-4)


def seed_length_bias(pairs: list[dict]) -> float:
    """Seed 001's ``detect_length_bias``, as it is written there."""
    lengths_chosen = [len(p["chosen"].split()) for p in pairs]
    lengths_rejected = [len(p["rejected"].split()) for p in pairs]
    longer_preferred = sum(c > r for c, r in zip(lengths_chosen, lengths_rejected))
    return longer_preferred / len(pairs)


# --------------------------------------------------------------------------- length bias by label source

# (chosen words, rejected words, label source, judge)
MIXED = [
    (6, 2, "judge", "gpt"),  # longer chosen
    (2, 5, "judge", "gpt"),  # shorter chosen
    (3, 3, "judge", "gpt"),  # equal
    (7, 4, "judge", "gpt"),  # longer chosen
    (5, 1, "construction+judge", "gpt"),  # longer chosen (the judges confirmed the construction)
    (8, 3, "construction", "none"),  # longer chosen: a construction pair (e.g. a sentence dropped from the loser)
    (9, 2, "construction", "none"),
    (4, 4, "construction", "none"),  # equal
    (6, 2, "construction", "none"),
    (10, 1, "construction", "none"),
]


def mixed_pairs() -> pd.DataFrame:
    return pd.DataFrame([{
        "pair_id": f"pair-{i}", "chosen": text(c), "rejected": text(r), "label_source": source,
        "judge_model_id": judge, "category": "factual", "chosen_candidate_id": f"c{i}-a",
        "rejected_candidate_id": f"c{i}-b"} for i, (c, r, source, judge) in enumerate(MIXED)])


def test_the_three_length_bias_figures_on_construction_and_judged_pairs():
    pairs = mixed_pairs()
    audit = compute_audit(pairs, empty_judgments(), empty_comparisons())
    lb = audit["length_bias"]
    # The judge's: judge-labelled pairs are rows 0-4; of unequal length rows 0, 1, 3, 4; the longer chosen in
    # rows 0, 3, 4 -> 3 of 4 = 0.75, outside 0.5 ± 0.15: flagged.
    assert (lb["pct_longer_chosen"], lb["n_compared"], lb["n_equal_length"], lb["n_judge_labelled"]) == (0.75, 4, 1, 5)
    assert lb["flagged"] is True
    assert_ci(lb["ci95"], 3, 4)
    # The seed's over every pair: longer chosen in rows 0, 3, 4, 5, 6, 8, 9 -> 7 of 10 (ties count as not longer).
    assert (lb["pct_longer_chosen_all_pairs"], lb["n_longer_chosen_all_pairs"], lb["n_pairs"]) == (0.7, 7, 10)
    assert lb["pct_longer_chosen_all_pairs"] == seed_length_bias(pairs.to_dict("records"))
    assert_ci(lb["all_pairs_ci95"], 7, 10)
    # What the headline was before: longer chosen over every pair of unequal length, 7 of 8 = 0.875. Neither
    # figure is that: the construction pairs no longer count towards the judge, ties count towards the seed's.
    assert 0.875 not in (lb["pct_longer_chosen"], lb["pct_longer_chosen_all_pairs"])
    # Per label source, most pairs first: construction rows 5-9 (4 unequal, longer in 4); judge rows 0-3
    # (3 unequal, longer in 2); construction+judge row 4.
    assert [(e["label_source"], e["judge_labelled"], e["n_pairs"], e["n_compared"], e["n_longer_chosen"],
             e["pct_longer_chosen"], e["pct_longer_chosen_all_pairs"]) for e in lb["by_label_source"]] == [
        ("construction", False, 5, 4, 4, 1.0, 0.8),
        ("judge", True, 4, 3, 2, round(2 / 3, 4), 0.5),
        ("construction+judge", True, 1, 1, 1, 1.0, 1.0)]
    assert_ci(lb["by_label_source"][1]["ci95"], 2, 3)
    # The groups, the histogram and the means are the judge's too: no "none" judge, differences +4 -3 0 +3 +4.
    assert [(g["group"], g["n"], g["share"]) for g in lb["by_judge"]] == [("gpt", 4, 0.75)]
    assert lb["histogram"] == [[-3, 1], [0, 1], [3, 1], [4, 2]]
    assert (lb["mean_chosen_words"], lb["mean_rejected_words"]) == (round(23 / 5, 1), 3.0)
    assert any(f.startswith("length bias: the longer response was chosen in 75% of judge-labelled pairs")
               for f in audit["flags"])
    assert headline_figures(audit)["length_bias.pct_longer_chosen_all_pairs"] == 0.7
    markdown = render_markdown(audit)
    assert "**75.0%**" in markdown and "**70.0%**" in markdown
    assert "5 pairs labelled by construction are not in it" in markdown
    assert "| construction | 5 | 80.0% | 4 | 100.0% |" in markdown


def test_only_construction_pairs_leave_the_judge_figure_empty():
    pairs = mixed_pairs().iloc[5:]
    audit = compute_audit(pairs, empty_judgments(), empty_comparisons())
    lb = audit["length_bias"]
    assert (lb["pct_longer_chosen"], lb["flagged"], lb["n_judge_labelled"]) == (None, False, 0)
    assert lb["pct_longer_chosen_all_pairs"] == 0.8  # 4 of 5
    assert not [f for f in audit["flags"] if f.startswith("length bias")]
    assert "No kept pair was labelled by a judge" in render_markdown(audit)


def test_the_sql_and_python_say_the_same_pairs_are_judge_labelled():
    """``metrics.judge_labelled`` (the gate) and ``kept_pairs.judge_labelled`` (the audit's SQL) agree; a pair without
    a label source (a table from before the column) counts as judged."""
    sources = ["judge", "construction", "construction+judge", None, "human"]
    pairs = pd.DataFrame({"pair_id": [f"p{i}" for i in range(5)], "chosen": ["a b"] * 5, "rejected": ["a"] * 5,
                          "label_source": sources})
    python = dict(zip(sources, judge_labelled(pairs)))
    assert python == {"judge": True, "construction": False, "construction+judge": True, None: True, "human": False}
    by_source = compute_audit(pairs, empty_judgments(), empty_comparisons())["length_bias"]["by_label_source"]
    sql = {(None if e["label_source"] == "(unrecorded)" else e["label_source"]): e["judge_labelled"] for e in by_source}
    assert sql == python
    assert judge_labelled(pairs.drop(columns="label_source")).all()


def model_pairs(cells: list[tuple[bool, bool, int]], label_source: str, gen_a: str = "g", gen_b: str = "g",
                start: int = 0) -> list[dict]:
    """``cells``: (a is the longer, a won, count), with 6 vs 2 words; candidate ``a`` has the smaller id."""
    rows, k = [], start
    for a_longer, a_won, count in cells:
        for _ in range(count):
            a_text, b_text = (text(6), text(2)) if a_longer else (text(2), text(6))
            a, b = (f"c{k:03d}-a", a_text, gen_a), (f"c{k:03d}-b", b_text, gen_b)
            winner, loser = (a, b) if a_won else (b, a)
            rows.append({"pair_id": f"pair-{k}", "chosen_candidate_id": winner[0], "rejected_candidate_id": loser[0],
                         "chosen": winner[1], "rejected": loser[1], "chosen_generator": winner[2],
                         "rejected_generator": loser[2], "label_source": label_source})
            k += 1
    return rows


def test_the_length_controlled_model_is_fitted_on_judge_labelled_pairs_only():
    """20 judged pairs where the longer wins 75% (one generator, every difference 4 words: P(one sd longer wins) is
    exactly 0.75), plus 15 construction pairs where the reference always beats a rule-edited copy and is always
    longer. With those in, the reference's side and length would separate the outcomes perfectly; fitted on the
    judged pairs, the model sees 20 pairs and the judge's 75%."""
    judged = model_pairs([(True, True, 6), (True, False, 2), (False, False, 9), (False, True, 3)], "judge")
    built = model_pairs([(True, True, 15)], "construction", gen_a="reference", gen_b="rules:delete", start=100)
    lc = compute_audit(pd.DataFrame(judged + built), empty_judgments(), empty_comparisons())["length_controlled"]
    assert (lc["status"], lc["n_pairs"], lc["separation"]) == ("ok", 20, False)
    assert lc["p_longer_wins_1sd"] == pytest.approx(0.75, abs=1e-3)
    assert lc["length_coef"] == pytest.approx(math.log(3) / math.tanh(1), abs=1e-3)
    assert lc["by_generator"] == []  # the construction's generators are not in it
    assert "fitted on 20 judge-labelled pairs" in render_markdown(
        compute_audit(pd.DataFrame(judged + built), empty_judgments(), empty_comparisons()))


def test_the_length_gate_bounds_the_judge_as_the_audit_measures_it():
    """Judged pairs half longer-chosen, construction pairs all longer-chosen: the judge is not biased, the gate
    passes (over every pair, 16 of 20 = 0.8, it failed); a biased judge still fails it."""
    def pairs_of(lengths: list[tuple[int, int, str]]) -> pd.DataFrame:
        return pd.DataFrame([{
            "pair_id": f"pair-{i}", "chosen": text(c, "w") + f" {i}", "rejected": text(r, "v") + f" {i}",
            "label_source": source, "chosen_candidate_id": f"c{i}", "rejected_candidate_id": f"r{i}",
            "prompt_id": "p1", "prompt": "q", "generation_method": "m", "judge_model_id": "j", "criteria": "c",
            "judge_fingerprint": "fp",
            "confidence": 0.8, "verdict_ab": "A", "verdict_ba": "B"} for i, (c, r, source) in enumerate(lengths)])

    balanced = pairs_of([(5, 2, "judge")] * 4 + [(2, 5, "judge")] * 4 + [(5, 2, "construction")] * 12)
    gate = validate_pairs(balanced, GatesSpec(max_length_bias=0.15))
    assert gate.success and gate.figures["length_bias"]["pct_longer_chosen"] == 0.5
    assert gate.figures["length_bias"]["n_compared"] == 8
    audit = compute_audit(balanced, empty_judgments(), empty_comparisons())["length_bias"]
    assert audit["pct_longer_chosen"] == gate.figures["length_bias"]["pct_longer_chosen"]
    assert audit["pct_longer_chosen_all_pairs"] == 0.8  # 16 of 20: the seed's figure describes the data set

    biased = pairs_of([(5, 2, "judge")] * 7 + [(2, 5, "construction+judge")] * 1 + [(2, 5, "construction")] * 12)
    gate = validate_pairs(biased, GatesSpec(max_length_bias=0.15))
    assert {f["label"] for f in gate.failures} == {"expect_column_mean_to_be_between(_longer_chosen)"}
    assert gate.figures["length_bias"]["pct_longer_chosen"] == 0.875  # 7 of 8

    only_construction = pairs_of([(5, 2, "construction")] * 6)
    gate = validate_pairs(only_construction, GatesSpec(max_length_bias=0.15))
    assert gate.success and gate.figures["length_bias"]["pct_longer_chosen"] is None  # nothing to bound


# --------------------------------------------------------------------------- a run mixing judged and construction pairs

PROMPTS = [
    {"id": "q1", "category": "factual", "prompt": "What causes the seasons on Earth?",
     "reference": "The seasons come from the tilt of the Earth's axis. The hemisphere tilted towards the Sun gets "
                  "more direct light and longer days. That makes summer there. The other hemisphere has winter."},
    {"id": "q2", "category": "advice", "prompt": "How can I sleep better at night?",
     "reference": "Keep a regular bedtime every day. Avoid caffeine after midday. Keep the bedroom dark and cool. "
                  "Stop using screens an hour before bed."},
    {"id": "q3", "category": "coding", "prompt": "What is a Python tuple?",
     "reference": "A tuple is an ordered collection that cannot be changed once made. Write it with parentheses. "
                  "Use it for fixed groups of values, such as coordinates."},
]


def test_length_bias_figures_on_a_run_mixing_construction_and_judged_pairs(home, tmp_path):
    """sampling (the fake judge prefers the longer text), gold_corruption by rules and human_vs_model with the human
    text chosen: every figure recomputed here from the exported pairs."""
    config = pipeline_config(write_prompts(tmp_path / "prompts.jsonl", PROMPTS), strategies=[
        {"method": "sampling"}, {"method": "gold_corruption", "model": "none"},
        {"method": "human_vs_model", "winner": "human"}],
        generators=[{"model": "openai:gen", "temperature": 0.2}, {"model": "openai:gen", "temperature": 1.0}],
        judges=[{"model": "openai:judge"}], candidates_per_prompt=3)
    assert materialize(config, fake=FakeLLM()).success
    rows = read_jsonl(Home.from_env().exports / "preference_pairs.jsonl")
    sources = {r["label_source"] for r in rows}
    assert {"judge", "construction"} <= sources

    def words(value: str) -> int:
        return len(value.split())

    judged = [r for r in rows if "judge" in r["label_source"]]
    unequal = [r for r in judged if words(r["chosen"]) != words(r["rejected"])]
    longer = [r for r in unequal if words(r["chosen"]) > words(r["rejected"])]
    assert judged and unequal
    audit = json.loads((Home.from_env().reports / "audit.json").read_text())
    lb = audit["length_bias"]
    assert lb["pct_longer_chosen"] == round(len(longer) / len(unequal), 4)
    assert lb["n_compared"] == len(unequal) and lb["n_judge_labelled"] == len(judged)
    assert lb["pct_longer_chosen_all_pairs"] == round(seed_length_bias(rows), 4)
    assert lb["n_pairs"] == len(rows)
    by_source = {e["label_source"]: e for e in lb["by_label_source"]}
    for source in sources:
        mine = [r for r in rows if r["label_source"] == source]
        assert by_source[source]["n_pairs"] == len(mine)
        assert by_source[source]["pct_longer_chosen_all_pairs"] == round(seed_length_bias(mine), 4)
    assert audit["length_controlled"]["n_pairs"] == len(judged)
    # The dataset card quotes both figures.
    card = (Home.from_env().exports / "hf" / "README.md").read_text(encoding="utf-8")
    assert f"| judges' length bias: share of judge-labelled pairs where the longer response was chosen | " \
           f"{lb['pct_longer_chosen']:.1%} |" in card
    assert f"{lb['pct_longer_chosen_all_pairs']:.1%}" in card
