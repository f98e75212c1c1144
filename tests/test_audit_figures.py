"""Every audit figure on small hand-made tables whose answer is worked out by hand in the test.

Intervals are checked against statsmodels' Wilson interval (``proportion_confint``), which the audit
also uses; tests/test_audit_package.py pins it against published values. Every other expected
number is derived in the comments.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
from statsmodels.stats.proportion import proportion_confint

from pref_pipeline import store, table_files
from pref_pipeline.audit import compute_audit, render_markdown
from pref_pipeline.export import recency_weights, with_recency_weight
from pref_pipeline.paths import SCHEMA, Home
from pref_pipeline.pairs import COMPARISON_COLUMNS
from tests.helpers import (
    JUDGE, JUDGE_2, MODELS, OTHER, V1, V2, empty_comparisons, empty_judgments, history_frame, judgment,
    judgments_frame, shown_label,
)


def wilson(k: int, n: int) -> tuple[float, float]:
    low, high = proportion_confint(k, n, alpha=0.05, method="wilson")
    return low, high


def assert_ci(actual, k: int, n: int) -> None:
    low, high = wilson(k, n)
    assert actual[0] == pytest.approx(low, abs=1e-4) and actual[1] == pytest.approx(high, abs=1e-4)


def text(n_words: int, word: str = "w") -> str:
    return " ".join([word] * n_words)


# --------------------------------------------------------------------------- length bias by group, with intervals

# (chosen words, rejected words, judge, category, chosen strategy, rejected strategy)
GROUPED = [
    (6, 2, "gpt", "factual", "sampling", "sampling"),  # longer chosen
    (5, 3, "gpt", "factual", "revise", "sampling"),  # longer chosen
    (7, 1, "gpt", "creative", "sampling", "revise"),  # longer chosen
    (2, 8, "gpt", "creative", "sampling", "sampling"),  # shorter chosen
    (1, 4, "claude", "factual", "revise", "sampling"),  # shorter chosen
    (3, 9, "claude", "creative", "sampling", "revise"),  # shorter chosen
    (4, 4, "claude", "creative", "sampling", "sampling"),  # equal: left out of every share
]


def grouped_pairs() -> pd.DataFrame:
    return pd.DataFrame([{
        "pair_id": f"pair-{i}", "chosen": text(c), "rejected": text(r), "judge_model_id": judge, "category": category,
        "chosen_strategy": cs, "rejected_strategy": rs} for i, (c, r, judge, category, cs, rs) in enumerate(GROUPED)])


def by_group(entries: list[dict]) -> dict[str, dict]:
    return {e["group"]: e for e in entries}


def test_length_bias_overall_and_by_judge_strategy_category_with_intervals():
    lb = compute_audit(grouped_pairs(), empty_judgments(), empty_comparisons())["length_bias"]
    # Overall: 6 pairs of unequal length, the longer chosen in 3.
    assert (lb["n_compared"], lb["n_equal_length"], lb["pct_longer_chosen"], lb["flagged"]) == (6, 1, 0.5, False)
    assert_ci(lb["ci95"], 3, 6)

    judges = by_group(lb["by_judge"])
    assert set(judges) == {"gpt", "claude"}
    assert (judges["gpt"]["n"], judges["gpt"]["share"], judges["gpt"]["flagged"]) == (4, 0.75, True)  # 3 of 4
    assert_ci(judges["gpt"]["ci95"], 3, 4)
    assert (judges["claude"]["n"], judges["claude"]["share"], judges["claude"]["flagged"]) == (2, 0.0, True)  # 0 of 2
    assert_ci(judges["claude"]["ci95"], 0, 2)
    assert [e["group"] for e in lb["by_judge"]] == ["gpt", "claude"]  # most pairs first

    categories = by_group(lb["by_category"])
    # factual: rows 0, 1, 4 -> longer chosen in 2 of 3; creative: rows 2, 3, 5 (row 6 equal) -> 1 of 3.
    assert (categories["factual"]["n"], categories["factual"]["share"]) == (3, round(2 / 3, 4))
    assert (categories["creative"]["n"], categories["creative"]["share"]) == (3, round(1 / 3, 4))
    assert categories["factual"]["flagged"] and categories["creative"]["flagged"]  # 0.167 from 0.5 > 0.15
    assert_ci(categories["factual"]["ci95"], 2, 3)
    assert_ci(categories["creative"]["ci95"], 1, 3)

    # Strategies name the pair of strategies, whichever side won: rows 0, 3 vs rows 1, 2, 4, 5.
    strategies = by_group(lb["by_strategy"])
    assert set(strategies) == {"sampling vs sampling", "revise vs sampling"}
    assert (strategies["sampling vs sampling"]["n"], strategies["sampling vs sampling"]["share"]) == (2, 0.5)
    assert (strategies["revise vs sampling"]["n"], strategies["revise vs sampling"]["share"]) == (4, 0.5)
    assert_ci(strategies["revise vs sampling"]["ci95"], 2, 4)

    # Histogram of chosen minus rejected words: +4, +2, +6, -6, -3, -6, 0.
    assert lb["histogram"] == [[-6, 2], [-3, 1], [0, 1], [2, 1], [4, 1], [6, 1]]


def test_a_pocket_of_length_bias_is_flagged_when_its_interval_leaves_the_band():
    """20 pairs where judge a always picks the longer and 20 where judge b always picks the shorter: 50% overall,
    yet each judge's interval (20 of 20: Wilson 0.839-1.0) lies outside 0.35-0.65."""
    rows = [{"chosen": text(6), "rejected": text(2), "judge_model_id": "a"}] * 20 + \
           [{"chosen": text(2), "rejected": text(6), "judge_model_id": "b"}] * 20
    audit = compute_audit(pd.DataFrame(rows), empty_judgments(), empty_comparisons())
    assert audit["length_bias"]["pct_longer_chosen"] == 0.5 and not audit["length_bias"]["flagged"]
    assert wilson(20, 20)[0] > 0.65
    pockets = [f for f in audit["flags"] if f.startswith("length bias in judge")]
    assert len(pockets) == 2 and "judge a: longer chosen in 100% of 20 pairs" in pockets[0] + pockets[1]


# --------------------------------------------------------------------------- the length-controlled model

def model_pairs(cells: list[tuple[bool, bool, int]], gen_a: str = "g", gen_b: str = "g",
                long_words: int = 6, short_words: int = 2) -> pd.DataFrame:
    """``cells``: (a is the longer, a won, count). Candidate ``a`` always has the smaller id, as the audit orients."""
    rows, k = [], 0
    for a_longer, a_won, count in cells:
        for _ in range(count):
            a_text, b_text = (text(long_words), text(short_words)) if a_longer else (text(short_words), text(long_words))
            a, b = (f"c{k:03d}-a", a_text, gen_a), (f"c{k:03d}-b", b_text, gen_b)
            winner, loser = (a, b) if a_won else (b, a)
            rows.append({"pair_id": f"pair-{k}", "chosen_candidate_id": winner[0], "rejected_candidate_id": loser[0],
                         "chosen": winner[1], "rejected": loser[1], "chosen_generator": winner[2],
                         "rejected_generator": loser[2]})
            k += 1
    return pd.DataFrame(rows)


def test_length_controlled_length_effect_alone():
    """One generator, every difference 4 words (so the scale sd = 4 and tanh(diff/sd) = ±tanh 1), the longer wins
    75% in both orientations: the fitted P(a response one sd longer wins) is exactly 0.75."""
    pairs = model_pairs([(True, True, 6), (True, False, 2),  # a longer: longer wins 6 of 8
                         (False, False, 9), (False, True, 3)])  # a shorter: longer (b) wins 9 of 12
    lc = compute_audit(pairs, empty_judgments(), empty_comparisons())["length_controlled"]
    assert lc["status"] == "ok" and lc["n_pairs"] == 20 and lc["separation"] is False
    assert lc["length_scale_words"] == 4.0
    assert lc["p_longer_wins_1sd"] == pytest.approx(0.75, abs=1e-3)
    assert lc["length_coef"] == pytest.approx(math.log(3) / math.tanh(1), abs=1e-3)
    assert lc["length_coef_ci95"][0] < lc["length_coef"] < lc["length_coef_ci95"][1]
    assert lc["by_generator"] == []  # one generator never meets another


def test_length_controlled_win_rate_of_two_generators():
    """A (always side a) vs B. When A is the longer it wins 8 of 10, when B is the longer A wins 5 of 10.
    The model logit P(A wins) = c ± beta*tanh(1) is saturated: logit 0.8 = ln 4 = c + b, logit 0.5 = 0 = c - b,
    so c = b = ln 2. Length-controlled win rate of A = sigmoid(ln 2) = 2/3 (raw 13/20 = 0.65); of B 1/3
    (raw 0.35); a response one sd longer wins sigmoid(ln 2) = 2/3."""
    pairs = model_pairs([(True, True, 8), (True, False, 2), (False, True, 5), (False, False, 5)], gen_a="A", gen_b="B")
    lc = compute_audit(pairs, empty_judgments(), empty_comparisons())["length_controlled"]
    assert lc["status"] == "ok"
    generators = {g["generator"]: g for g in lc["by_generator"]}
    assert (generators["A"]["n"], generators["A"]["win_rate"]) == (20, 0.65)
    assert (generators["B"]["n"], generators["B"]["win_rate"]) == (20, 0.35)
    assert generators["A"]["lc_win_rate"] == pytest.approx(2 / 3, abs=1e-3)
    assert generators["B"]["lc_win_rate"] == pytest.approx(1 / 3, abs=1e-3)
    assert_ci(generators["A"]["win_rate_ci95"], 13, 20)
    assert lc["p_longer_wins_1sd"] == pytest.approx(2 / 3, abs=1e-3)
    markdown = render_markdown(compute_audit(pairs, empty_judgments(), empty_comparisons()))
    assert "| A | 20 | 65.0% | 66.7% |" in markdown


def test_length_controlled_needs_ten_pairs():
    lc = compute_audit(model_pairs([(True, True, 9)]), empty_judgments(), empty_comparisons())["length_controlled"]
    assert lc["status"].startswith("too few pairs")


# --------------------------------------------------------------------------- position bias with intervals

def test_position_bias_first_position_win_rate_and_consistency_per_judge():
    # Judge 1 (preferred per order): cmp-1 x/x, cmp-2 y/y, cmp-3 x/y, cmp-4 y/x -> consistent 2 of 4.
    # Its labels: A B | B A | A A | B B -> "A" (first shown wins) 4 of 8.
    one = [("cmp-1", "x", "x"), ("cmp-2", "y", "y"), ("cmp-3", "x", "y"), ("cmp-4", "y", "x")]
    # Judge 2: cmp-1 x/y, cmp-2 x/y, cmp-3 tie/tie -> consistent 1 (the ties) of 3; labels A A | A A | tie tie:
    # first shown wins 4 of 4 decisive.
    two = [("cmp-1", "x", "y"), ("cmp-2", "x", "y"), ("cmp-3", "tie", "tie")]
    rows = [judgment(c, order, shown_label(order, p), judge=judge)
            for judge, table in ((JUDGE, one), (JUDGE_2, two)) for c, xy, yx in table
            for order, p in (("xy", xy), ("yx", yx))]
    pb = compute_audit(pd.DataFrame(columns=["chosen", "rejected"]), judgments_frame(rows), empty_comparisons())["position_bias"]
    assert (pb["n_both_orders"], pb["consistency_rate"]) == (7, round(3 / 7, 4))
    assert pb["first_position_win_rate"] == round(8 / 12, 4)
    assert_ci(pb["consistency_ci95"], 3, 7)
    assert_ci(pb["first_position_ci95"], 8, 12)
    judges = {j["judge_model"]: j for j in pb["by_judge"]}
    assert (judges[JUDGE]["consistency_rate"], judges[JUDGE]["first_position_win_rate"]) == (0.5, 0.5)
    assert (judges[JUDGE_2]["consistency_rate"], judges[JUDGE_2]["first_position_win_rate"]) == (round(1 / 3, 4), 1.0)
    assert (judges[JUDGE_2]["n_decisive"], judges[JUDGE_2]["n_ties"]) == (4, 2)
    assert_ci(judges[JUDGE]["consistency_ci95"], 2, 4)


# --------------------------------------------------------------------------- agreement

def test_cohens_kappa_between_two_judges():
    """Ten (comparison, order) verdicts. Judge 1: x x x x x x y y y y; judge 2: x x x x y y y y y tie.
    Observed agreement 7/10; chance (6*4 + 4*5 + 0*1) / 100 = 0.44; kappa = (0.7 - 0.44) / 0.56 = 0.4643."""
    first = ["x"] * 6 + ["y"] * 4
    second = ["x"] * 4 + ["y"] * 5 + ["tie"]
    rows = []
    for i, (a, b) in enumerate(zip(first, second)):
        cmp, order = f"cmp-{i // 2}", ("xy", "yx")[i % 2]
        rows.append(judgment(cmp, order, shown_label(order, a), judge=JUDGE))
        rows.append(judgment(cmp, order, shown_label(order, b), judge=JUDGE_2))
    [pair] = compute_audit(pd.DataFrame(columns=["chosen", "rejected"]), judgments_frame(rows),
                           empty_comparisons())["agreement"]["judge_vs_judge"]
    assert {pair["judge_a"], pair["judge_b"]} == {JUDGE, JUDGE_2}
    assert (pair["n"], pair["observed_agreement"]) == (10, 0.7)
    assert pair["kappa"] == pytest.approx(0.26 / 0.56, abs=1e-4)


def test_agreement_with_human_labels_overall_by_category_and_per_verdict():
    # cmp-k compares xk and yk. The judge (one judge, both orders alike) keeps x1, x2, x3, y4 and x6; cmp-5 is
    # inconsistent (no pair). People chose x1, y2, x3, y4, y5, and called cmp-6 a tie.
    judge_picks = {1: ("x", "x"), 2: ("x", "x"), 3: ("x", "x"), 4: ("y", "y"), 5: ("x", "y"), 6: ("x", "x")}
    categories = {1: "factual", 2: "factual", 3: "creative", 4: "creative", 5: "creative", 6: "factual"}
    human = {1: "x", 2: "y", 3: "x", 4: "y", 5: "y", 6: None}
    rows = [judgment(f"cmp-{k}", order, shown_label(order, p), x=f"x{k}", y=f"y{k}")
            for k, (xy, yx) in judge_picks.items() for order, p in (("xy", xy), ("yx", yx))]
    comparisons = pd.DataFrame([{
        "comparison_id": f"cmp-{k}", "candidate_x_id": f"x{k}", "candidate_y_id": f"y{k}",
        "status": "consistent" if xy == yx else "inconsistent",
        "winner_id": f"{xy}{k}" if xy == yx else None} for k, (xy, yx) in judge_picks.items()], columns=COMPARISON_COLUMNS)
    labels = pd.DataFrame([{
        "label_id": f"h{k}", "source": "review", "comparison_id": f"cmp-{k}", "category": categories[k],
        "human_preference": "tie" if h is None else None, "human_winner_id": None if h is None else f"{h}{k}"}
        for k, h in human.items()])
    human_figures = compute_audit(pd.DataFrame(columns=["chosen", "rejected"]), judgments_frame(rows), comparisons,
                                  human_labels=labels)["agreement"]["human"]
    # Decisive human labels with a pair: cmp-1 (agree), cmp-2 (disagree), cmp-3 (agree), cmp-4 (agree) -> 3 of 4.
    assert (human_figures["n_labels"], human_figures["n_human_ties"]) == (6, 1)
    assert (human_figures["n_compared"], human_figures["n_judge_undecided"]) == (4, 1)  # cmp-5: no pair
    assert human_figures["agreement_rate"] == 0.75
    assert_ci(human_figures["agreement_ci95"], 3, 4)
    # By category: factual cmp-1, cmp-2 -> 1 of 2; creative cmp-3, cmp-4 -> 2 of 2. The worst comes first.
    assert [(c["category"], c["n"], c["agreement_rate"]) for c in human_figures["by_category"]] == [
        ("factual", 2, 0.5), ("creative", 2, 1.0)]
    assert human_figures["most_divergent_category"] == "factual"
    # Every single verdict: ten on labelled comparisons (cmp-1..6), eight with a decisive human label.
    # Human per verdict: x x | y y | x x | y y | y y | tie tie; judge: x x | x x | x x | y y | x y | x x.
    # Accuracy on decisive: cmp-1 2, cmp-2 0, cmp-3 2, cmp-4 2, cmp-5 1 -> 7 of 10 decisive (cmp-5 counts too).
    [per_verdict] = human_figures["per_verdict"]
    assert (per_verdict["n"], per_verdict["n_decisive"], per_verdict["accuracy"]) == (12, 10, 0.7)
    # Kappa over the 12 verdicts: agree 7 of 12; human x4 y6 tie2, judge x9 y3 -> chance (36 + 18) / 144 = 0.375;
    # kappa = (7/12 - 0.375) / 0.625 = 1/3.
    assert per_verdict["kappa"] == pytest.approx((7 / 12 - 0.375) / 0.625, abs=1e-4)


# --------------------------------------------------------------------------- drift

def test_drift_flip_rate_by_category_versions_and_weekly_figures():
    drift = compute_audit(pd.DataFrame(columns=["chosen", "rejected"]), empty_judgments(), empty_comparisons(),
                          judgment_history=history_frame())["drift"]
    # v1 -> v2 on the same (comparison, order), parsed by both: cmp-1 x,x -> y,y (2 flips); cmp-2 same;
    # cmp-3 x,y -> y,y (1 flip); cmp-4 xy same, yx unparseable in v2 (left out); cmp-5 not judged by v1.
    [transition] = drift["transitions"]
    assert (transition["from"], transition["to"]) == (V1, V2)
    assert (transition["from_model"], transition["to_model"]) == (MODELS[V1], MODELS[V2])
    assert (transition["n"], transition["flip_rate"]) == (7, round(3 / 7, 4))
    assert_ci(transition["flip_ci95"], 3, 7)
    assert [(c["category"], c["n"], c["flip_rate"]) for c in transition["by_category"]] == [
        ("creative", 3, round(1 / 3, 4)), ("factual", 4, 0.5)]

    versions = {v["judge_fingerprint"]: v for v in drift["versions"]}
    assert [v["judge_fingerprint"] for v in drift["versions"]] == [V1, OTHER, V2]  # by first verdict
    # v1 labels: A B | B A | A A | B A -> first shown wins 5 of 8; same verdict both orders: cmp-1, 2, 4 of 4.
    assert (versions[V1]["n"], versions[V1]["first_position_win_rate"], versions[V1]["consistency_rate"]) == (
        8, 0.625, 0.75)
    # v2 labels: B A | B A | B A | B - | A B -> 4 of 9 decisive; consistent cmp-1, 2, 3, 5 of 4 judged both ways.
    assert (versions[V2]["n"], versions[V2]["first_position_win_rate"], versions[V2]["consistency_rate"]) == (
        10, round(4 / 9, 4), 1.0)
    assert versions[V1]["first_seen"].startswith("2024-05-07") and versions[V2]["last_seen"].startswith("2024-05-21")
    assert (versions[V1]["mean_recency_weight"], versions[V2]["mean_recency_weight"]) == (0.5, 1.0)

    weekly = [(w["week"], w["judge_fingerprint"], w["n"], w["first_position_win_rate"], w["unparseable_rate"])
              for w in drift["weekly"]]
    assert weekly == [
        ("2024-05-06", OTHER, 2, 0.5, 0.0),  # B A
        ("2024-05-06", V1, 4, 0.5, 0.0),  # cmp-1, cmp-2: A B B A
        ("2024-05-13", V1, 4, 0.75, 0.0),  # cmp-3, cmp-4: A A B A
        ("2024-05-20", V2, 10, round(4 / 9, 4), 0.1),  # one unparseable of ten
    ]


def test_drift_flag_needs_ten_shared_verdicts():
    """A change flipping 3 of 7 shared verdicts (43%) is reported, but too few to raise a warning."""
    audit = compute_audit(pd.DataFrame(columns=["chosen", "rejected"]), empty_judgments(), empty_comparisons(),
                          judgment_history=history_frame())
    assert not any(flag.startswith("judge change") for flag in audit["flags"])
    # Ten copies of the comparisons (ids made unique) flip 30 of 70: now flagged.
    many = pd.concat([history_frame().assign(comparison_id=lambda f, i=i: f["comparison_id"] + f"-{i}")
                      for i in range(10)], ignore_index=True)
    audit = compute_audit(pd.DataFrame(columns=["chosen", "rejected"]), empty_judgments(), empty_comparisons(),
                          judgment_history=many)
    [flag] = [f for f in audit["flags"] if f.startswith("judge change")]
    assert "flipped 43% of 70 shared verdicts" in flag


# --------------------------------------------------------------------------- recency weight

def test_recency_weight_in_judgment_history(tmp_path):
    """Half-life 30 days: the newest verdict weighs 1, one 30 days older 0.5, one 60 days older 0.25; a newer
    verdict appended later moves every weight down one step."""
    database = Home.at(tmp_path / "home")
    newest = datetime(2024, 6, 30, 12, tzinfo=timezone.utc)
    rows = [judgment(f"cmp-{i}", "xy", "A") | {"judged_at": newest - timedelta(days=30 * i)} for i in range(3)]
    appended, total = store.append_judgment_history(database, judgments_frame(rows), half_life_days=30)
    assert (appended, total) == (3, 3)

    def weights() -> dict[str, float]:
        with table_files.connect(database) as con:
            return dict(con.execute(f"SELECT comparison_id, recency_weight FROM {SCHEMA}.judgment_history").fetchall())

    assert weights() == pytest.approx({"cmp-0": 1.0, "cmp-1": 0.5, "cmp-2": 0.25})
    later = [judgment("cmp-9", "xy", "B") | {"judged_at": newest + timedelta(days=30)}]
    assert store.append_judgment_history(database, judgments_frame(later), half_life_days=30) == (1, 4)
    assert weights() == pytest.approx({"cmp-9": 1.0, "cmp-0": 0.5, "cmp-1": 0.25, "cmp-2": 0.125})
    # Appending the same verdicts again adds nothing (append-only, keyed by judgment and judge version).
    assert store.append_judgment_history(database, judgments_frame(rows), half_life_days=30) == (0, 4)
    assert store.newest_verdict(database) == pd.Timestamp(newest + timedelta(days=30))


def test_recency_weight_for_the_export():
    t = pd.Timestamp("2024-06-30 12:00", tz="UTC")
    pairs = pd.DataFrame({"pair_id": ["a", "b", "c"], "judged_at": [t, t - pd.Timedelta(days=15), t - pd.Timedelta(days=45)]})
    assert list(recency_weights(pairs["judged_at"], 15)) == [1.0, 0.5, 0.125]
    # Counted from a newer verdict stored in another batch: every pair is 15 days older.
    weighted = with_recency_weight(pairs, 15, reference=t + pd.Timedelta(days=15))
    assert list(weighted["recency_weight"]) == [0.5, 0.25, 0.0625]
    # An older reference never makes a pair weigh more than 1.
    assert list(with_recency_weight(pairs, 15, reference=t - pd.Timedelta(days=100))["recency_weight"]) == [1.0, 0.5, 0.125]
