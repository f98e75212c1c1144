"""Every judge type end to end, panels that vote, weights, ties, logprob confidence, rules,
rubrics, and score_extremes' pairing (with a score tie).

The models are the in-process fake (``tests/fakes/in_process.py``), except for the log-probabilities, which
come through the OpenAI SDK from the fake server."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pandas as pd
import pytest

from pref_pipeline.config import ConfigError, judge_spec, parse_config
from pref_pipeline.judging import fingerprint_for
from pref_pipeline.judging.base import JudgeTask
from pref_pipeline.judging.confidence import label_margin, label_probability
from pref_pipeline.judging.panel import Panel, decide, panel_for
from pref_pipeline.judging.rules import RULES
from pref_pipeline.pairs import build_preference_pairs
from pref_pipeline.paths import Home
from pref_pipeline.store import read_table
from tests.fakes import FakeLLMServer, default_judge
from tests.fakes.in_process import FakeLLM
from tests.helpers import generate, judge, materialize, pipeline_config


def config_with(prompts_file, judges: list[dict], base_url: str | None = None, **extra):
    return pipeline_config(prompts_file, base_url, judges=judges, **{
        "candidates_per_prompt": 3, "filters": {"max_response_similarity": None, "min_distinct_word_ratio": None},
        **extra})


def words(text: str) -> int:
    return len(text.split())


# --------------------------------------------------------------------------- each judge type through Dagster

@pytest.mark.parametrize("judge_entry, winner", [
    ({"model": "openai:judge-1", "type": "pairwise", "rubric": "helpfulness"}, "longer"),
    ({"model": "openai:scorer", "type": "pointwise", "rubric": "completeness"}, "longer"),
    ({"type": "rule", "rule": "prefer_concise"}, "shorter"),
])
def test_each_judge_type_end_to_end_through_dagster(home, prompts_file, judge_entry, winner):
    fake = FakeLLM()
    result = materialize(config_with(prompts_file, [judge_entry]), fake=fake)
    assert result.success
    database = Home.from_env()
    judgments = read_table(database, "judgments")
    pairs = read_table(database, "preference_pairs")
    comparisons = read_table(database, "comparisons")
    assert set(judgments["judge_type"]) == {judge_entry["type"]}
    criteria = judge_entry.get("rubric") or judge_entry.get("rule")
    assert set(judgments["criteria"]) == {criteria}  # the judged criteria in every row
    assert len(pairs) > 0 and set(pairs["criteria"]) == {criteria}
    size = len if judge_entry["type"] == "pairwise" else words  # the fake judge counts characters, the rest words
    for row in pairs.itertuples():
        assert (size(row.chosen) > size(row.rejected)) if winner == "longer" else \
            (size(row.chosen) < size(row.rejected))
    votes = json.loads(comparisons["votes"].iloc[0])
    assert votes[0]["judge_type"] == judge_entry["type"] and {"xy", "yx", "status", "vote", "weight"} <= set(votes[0])
    if judge_entry["type"] == "pointwise":
        assert judgments["score_x"].notna().all() and judgments["score_y"].notna().all()
        # each candidate scored once, however many comparisons it is in (9 candidates -> 9 score calls)
        assert sum(1 for r in fake.requests if "<response>" in r["body"]["messages"][-1]["content"]) == 9
    if judge_entry["type"] == "pairwise":
        prompts_sent = [r["body"]["messages"][-1]["content"] for r in fake.requests if "<response_a>" in
                        r["body"]["messages"][-1]["content"]]
        assert prompts_sent and all("Rubric:\nHelpfulness: does the response do what the user asked?" in p
                                    for p in prompts_sent)
    if judge_entry["type"] == "rule":
        assert not any("<response_a>" in r["body"]["messages"][-1]["content"] for r in fake.requests)


# --------------------------------------------------------------------------- panels

def position_biased(info):
    """Always "A", whatever is shown: inconsistent across orders on every pair."""
    return {"preference": "A", "confidence": 0.9, "reasoning": "The first one."}


def by_model(**fns):
    return lambda info: fns.get(info.body["model"], default_judge)(info)


def test_majority_panel_with_a_position_biased_member_still_gets_the_pairs_right(home, prompts_file):
    from pref_pipeline.sources import load_prompts

    fake = FakeLLM(judge_fn=by_model(biased=position_biased))
    judges = [{"model": "openai:judge-1"}, {"model": "openai:judge-2"}, {"model": "openai:biased"}]
    unanimous = config_with(prompts_file, judges)
    majority = config_with(prompts_file, judges, judging={"aggregation": "majority"})
    prompts = load_prompts(unanimous.prompts).prompts
    candidates = generate(prompts, unanimous, fake).candidates
    judgments = judge(prompts, candidates, unanimous, fake).judgments

    blocked = build_preference_pairs(prompts, candidates, judgments, panel=panel_for(unanimous))
    assert blocked.pairs.empty  # one biased judge silences the whole dataset under unanimity
    assert set(blocked.comparisons["status"]) <= {"inconsistent", "tie"}

    voted = build_preference_pairs(prompts, candidates, judgments, panel=panel_for(majority))
    decided = voted.comparisons[voted.comparisons["status"] == "consistent"]
    assert len(voted.pairs) == len(decided) > 0
    for row in voted.pairs.itertuples():
        assert len(row.chosen) > len(row.rejected)  # what the two honest judges prefer
    biased_fp = fingerprint_for(majority.judges[2])
    for row in decided.itertuples():
        members = {m["judge_fingerprint"]: m for m in json.loads(row.votes)}
        assert members[biased_fp]["status"] == "inconsistent" and members[biased_fp]["vote"] is None
        assert (members[biased_fp]["xy"], members[biased_fp]["yx"]) in (("x", "y"), ("y", "x"))
        assert json.loads(row.vote)["abstain"] == 1
        assert row.agreement == pytest.approx(2 / 3)
        assert row.confidence == pytest.approx(2 / 3 * 0.9)  # agreement x the voters' label probability (0.9)


NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


def verdicts(comparison: str, fingerprint: str, xy: str | None, yx: str | None, confidence=0.8, status="ok"):
    """Two judgments rows of one judge on one comparison ("x"/"y"/"tie" per order)."""
    rows = []
    for order, preferred in (("xy", xy), ("yx", yx)):
        shown = None if preferred is None else "tie" if preferred == "tie" else \
            ("A" if (preferred == "x") == (order == "xy") else "B")
        rows.append({"comparison_id": comparison, "prompt_id": "p", "candidate_x_id": "cx", "candidate_y_id": "cy",
                     "order": order, "judge_model": f"openai:{fingerprint}", "judge_fingerprint": fingerprint,
                     "judge_type": "pairwise", "criteria": "c", "preference": shown, "preferred": preferred,
                     "confidence": confidence, "label_probability": None, "reasoning": "", "parse_status": status,
                     "error": None, "judged_at": NOW})
    return rows


def test_weighted_votes_follow_the_weights_and_majority_the_heads():
    rows = (verdicts("c1", "heavy", "y", "y") + verdicts("c1", "light1", "x", "x") + verdicts("c1", "light2", "x", "x"))
    frame = pd.DataFrame(rows)
    weights = {"heavy": 3.0, "light1": 1.0, "light2": 1.0}
    [weighted] = decide(frame, Panel("weighted", weights)).itertuples()
    assert (weighted.status, weighted.preferred) == ("consistent", "y")
    assert weighted.agreement == pytest.approx(3 / 5)
    assert json.loads(weighted.vote) == {"x": 2.0, "y": 3.0, "tie": 0.0, "abstain": 0.0}
    [majority] = decide(frame, Panel("majority", weights)).itertuples()
    assert (majority.status, majority.preferred) == ("consistent", "x")  # weights ignored: two heads against one
    [unanimous] = decide(frame, Panel("unanimous", weights)).itertuples()
    assert unanimous.status == "judges_disagree"
    # an even split of the weight decides nothing
    [split] = decide(frame, Panel("weighted", {"heavy": 2.0, "light1": 1.0, "light2": 1.0})).itertuples()
    assert (split.status, split.preferred) == ("judges_disagree", None)


def test_ties_are_first_class():
    all_tie = pd.DataFrame(verdicts("c1", "a", "tie", "tie") + verdicts("c1", "b", "tie", "tie"))
    for aggregation in ("unanimous", "majority", "weighted"):
        [row] = decide(all_tie, Panel(aggregation)).itertuples()
        assert (row.status, row.preferred, row.agreement) == ("tie", None, 1.0)
    mostly_tie = pd.DataFrame(verdicts("c1", "a", "tie", "tie") + verdicts("c1", "b", "tie", "tie")
                              + verdicts("c1", "c", "x", "x"))
    [row] = decide(mostly_tie, Panel("majority")).itertuples()
    assert row.status == "tie"
    # an abstaining rule (not applicable) neither votes nor blocks, even under unanimity
    rule = verdicts("c1", "rule", None, None, confidence=None, status="not_applicable")
    [row] = decide(pd.DataFrame(verdicts("c1", "a", "x", "x") + rule), Panel("unanimous")).itertuples()
    assert (row.status, row.preferred) == ("consistent", "x")
    [row] = decide(pd.DataFrame(rule), Panel("majority")).itertuples()
    assert row.status == "no_vote"


def test_pointwise_equal_scores_are_a_tie(home, prompts_file):
    from pref_pipeline.sources import load_prompts

    fake = FakeLLM(score_fn=lambda info: {"score": 6, "reasoning": "fine"})
    config = config_with(prompts_file, [{"model": "openai:scorer", "type": "pointwise"}])
    prompts = load_prompts(config.prompts).prompts
    candidates = generate(prompts, config, fake).candidates
    judgments = judge(prompts, candidates, config, fake).judgments
    assert set(judgments["preference"]) == {"tie"}
    result = build_preference_pairs(prompts, candidates, judgments, panel=panel_for(config))
    assert result.pairs.empty and set(result.comparisons["status"]) == {"tie"}


# --------------------------------------------------------------------------- logprob confidence

def test_label_margin_is_read_at_the_label_token():
    text = '{"preference": "B", "confidence": 0.9, "reasoning": "x"}'
    tokens = [{"token": t, "logprob": 0.0, "top": [[t, 0.0]]} for t in ['{"', 'preference', '":', ' "']]
    tokens += [{"token": "B", "logprob": -0.3567, "top": [["B", -0.3567], ["A", -1.204]]}]  # 0.7 / 0.3
    tokens += [{"token": '",', "logprob": 0.0, "top": []}]
    margin = label_margin(tokens, text)
    assert margin == pytest.approx(0.3 - 0.7, abs=1e-3)
    assert label_probability("B", margin) == pytest.approx(0.7, abs=1e-3)
    assert label_margin(None, text) is None and label_probability("tie", margin) is None


def test_logprob_confidence_through_the_judge_and_the_panel(home, prompts_file):
    from pref_pipeline.sources import load_prompts

    def unsure(info):
        verdict = default_judge(info)
        return {**verdict, "confidence": 0.95, "_label_probs": {verdict["preference"]: 0.6,
                                                                 "B" if verdict["preference"] == "A" else "A": 0.4}}

    with FakeLLMServer(judge_fn=unsure) as server:
        config = config_with(prompts_file, [{"model": "openai:judge-1"}], server.openai_base_url)
        prompts = load_prompts(config.prompts).prompts
        candidates = generate(prompts, config).candidates
        judgments = judge(prompts, candidates, config).judgments
        asked = [r["body"] for r in server.requests if "<response_a>" in r["body"]["messages"][-1]["content"]]
    assert all(b["logprobs"] is True and b["top_logprobs"] == 5 for b in asked)
    decisive = judgments[judgments["preference"].isin(["A", "B"])]
    assert len(decisive) > 0
    assert decisive["label_probability"].to_numpy() == pytest.approx(0.6)
    assert decisive["logprob_margin"].abs().to_numpy() == pytest.approx(0.2)
    pairs = build_preference_pairs(prompts, candidates, judgments, panel=panel_for(config)).pairs
    assert len(pairs) and pairs["confidence"].to_numpy() == pytest.approx(0.6)  # the margin, not the stated 0.95


def test_logprobs_off_for_anthropic_and_when_turned_off():
    assert not judge_spec(model="anthropic:claude").wants_logprobs
    assert judge_spec(model="openai:x").wants_logprobs
    assert not judge_spec(model="openai:x", logprobs=False).wants_logprobs


# --------------------------------------------------------------------------- rules

def task(x: str, y: str, category: str | None = None, reference: str | None = None, order="xy") -> JudgeTask:
    return JudgeTask("cmp", "p", "Question?", "cx", x, "cy", y, order, category=category, reference=reference)


def test_prefer_concise_within_the_quality_band():
    short = "Paris is the capital of France."
    long = "Paris is the capital of France. It has been the capital for centuries and is its largest city by far."
    assert RULES["prefer_concise"](task(short, long))[0] == "x"
    assert RULES["prefer_concise"](task(short, short + " Indeed."))[0] is None  # lengths alike: abstains
    assert RULES["prefer_concise"](task("Yes.", long))[0] == "y"  # too short: outside the band
    assert RULES["prefer_concise"](task("I'm sorry, I cannot help with that.", long))[0] == "y"  # a refusal


def test_no_refusal_of_safe_requests_and_reference_match():
    refusal, answer = "I'm sorry, but I can't help with that request.", "Boil the pasta for ten minutes, then drain."
    assert RULES["no_refusal_of_safe_requests"](task(refusal, answer, category="cooking"))[0] == "y"
    assert RULES["no_refusal_of_safe_requests"](task(refusal, answer, category="harmful"))[0] is None
    assert RULES["no_refusal_of_safe_requests"](task(answer, answer + " Salt it."))[0] is None
    reference = "The seasons are caused by the tilt of Earth's axis."
    close, far = "Earth's axis is tilted, which causes the seasons.", "The distance to the Sun changes."
    assert RULES["reference_match"](task(far, close, reference=reference))[0] == "y"
    assert RULES["reference_match"](task(far, close))[0] is None  # no gold answer: abstains


# --------------------------------------------------------------------------- configuration and rubrics

def test_judge_config_contract(tmp_path):
    config = parse_config({"judging": {"aggregation": "weighted"}, "judges": [
        {"model": "openai:gpt-4.1", "type": "pairwise", "weight": 2.0, "rubric": "helpfulness"},
        {"model": "openai:gpt-4.1-mini", "type": "pointwise"},
        {"type": "rule", "rule": "prefer_concise"}]})
    assert config.judging.aggregation == "weighted"
    assert [j.type for j in config.judges] == ["pairwise", "pointwise", "rule"]
    assert config.judges[2].model == "rule:prefer_concise" and config.judges[2].criteria == "prefer_concise"
    assert [j.model for j in config.model_judges] == ["openai:gpt-4.1", "openai:gpt-4.1-mini"]
    rubric = tmp_path / "tone.md"
    rubric.write_text("Tone: polite.\n")
    own = parse_config({"judges": [{"model": "openai:j", "rubric": "tone.md"}]}, base_dir=tmp_path)
    assert own.judges[0].criteria == "tone" and own.judges[0].rubric_text() == "Tone: polite.\n"
    for bad, message in [({"type": "rule"}, "needs `rule`"),
                         ({"type": "rule", "rule": "prefer_concise", "model": "openai:x"}, "has no model"),
                         ({"model": "openai:x", "rubric": "nonexistent"}, "neither a built-in rubric"),
                         ({"type": "rule", "rule": "be_nice"}, "rule"),
                         ({"model": "openai:x", "weight": 0}, "weight")]:
        with pytest.raises(ConfigError, match=message):
            parse_config({"judges": [bad]})
    with pytest.raises(ConfigError, match="aggregation"):
        parse_config({"judging": {"aggregation": "plurality"}})


def test_rubric_and_template_text_are_in_the_fingerprint(tmp_path):
    base = judge_spec(model="openai:j")
    assert fingerprint_for(base) != fingerprint_for(judge_spec(model="openai:j", rubric="honesty"))
    assert fingerprint_for(base) != fingerprint_for(judge_spec(model="openai:j", type="pointwise"))
    rubric = tmp_path / "r.md"
    rubric.write_text("one")
    first = fingerprint_for(judge_spec(model="openai:j", rubric=str(rubric)))
    rubric.write_text("two")
    assert fingerprint_for(judge_spec(model="openai:j", rubric=str(rubric))) != first
    assert fingerprint_for(judge_spec(model="openai:j", weight=5)) == fingerprint_for(base)  # weight: the panel's


# --------------------------------------------------------------------------- score_extremes

def score_by_words(info):
    return {"score": min(10, 1 + len(info.response.split()) // 5), "reasoning": "length"}


def test_score_extremes_pairs_highest_against_lowest_and_quarantines_a_tie(home, prompts_file):
    from pref_pipeline.generation import plan_comparisons
    from pref_pipeline.sources import load_prompts

    config = config_with(prompts_file, [{"model": "openai:scorer", "type": "pointwise"}],
                         strategies=[{"method": "score_extremes", "min_margin": 1}], candidates_per_prompt=4)
    prompts = load_prompts(config.prompts).prompts
    candidates = generate(prompts, config, FakeLLM(score_fn=score_by_words)).candidates
    assert set(candidates["strategy"]) == {"score_extremes"} and candidates["pointwise_score"].notna().all()
    plan = plan_comparisons(candidates, config)
    planned = [p for p in plan if p.reason is None]
    assert len(plan) == 3 and all(p.reason == "score_tie" for p in plan if p.reason)
    by_id = candidates.set_index("candidate_id")
    for comparison in planned:
        assert comparison.expected == "x" and not comparison.judged
        group = candidates[candidates["prompt_id"] == comparison.prompt_id]
        assert by_id.loc[comparison.x_id, "pointwise_score"] == group["pointwise_score"].max()
        assert by_id.loc[comparison.y_id, "pointwise_score"] == group["pointwise_score"].min()
        assert group["pointwise_score"].max() - group["pointwise_score"].min() >= 1

    tied = config_with(prompts_file, [{"model": "openai:flat-scorer", "type": "pointwise"}],
                       strategies=[{"method": "score_extremes"}])
    candidates = generate(load_prompts(tied.prompts).prompts, tied,
                          FakeLLM(score_fn=lambda info: {"score": 7, "reasoning": "same"})).candidates
    skipped = plan_comparisons(candidates, tied)
    assert len(skipped) == 3 and {s.reason for s in skipped} == {"score_tie"} and not any(s.judged for s in skipped)
    assert all("scores tied: highest 7, lowest 7" in s.detail for s in skipped)


def test_score_extremes_needs_a_pointwise_judge():
    with pytest.raises(ConfigError, match="score_extremes needs at least one judge with `type: pointwise`"):
        parse_config({"strategies": [{"method": "score_extremes"}]})


def test_score_extremes_end_to_end_through_dagster(home, prompts_file):
    """Through the real job: the highest-scored candidate is chosen over the lowest, by construction, and a
    prompt whose candidates all score alike gives no pair but a quarantine row that says so."""
    def score(info):
        if "interview" in info.question:  # p3: every candidate scores the same
            return {"score": 5, "reasoning": "all alike"}
        return {"score": 1 + len(info.response) % 10, "reasoning": "length"}

    config = config_with(prompts_file, [{"model": "openai:scorer", "type": "pointwise"}],
                         strategies=[{"method": "score_extremes", "min_margin": 1}], candidates_per_prompt=4)
    result = materialize(config, fake=FakeLLM(score_fn=score))
    assert result.success
    database = Home.from_env()
    candidates = read_table(database, "candidates")
    pairs = read_table(database, "preference_pairs")
    quarantine = read_table(database, "quarantine")
    export = Home.from_env().batch_exports("prompts") / "preference_pairs.jsonl"
    exported = [json.loads(line) for line in export.read_text().splitlines()]
    scores = candidates.set_index("candidate_id")["pointwise_score"]
    assert sorted(pairs["prompt_id"]) == ["p1", "p2"]
    for row in pairs.itertuples():
        group = candidates[candidates["prompt_id"] == row.prompt_id]["pointwise_score"]
        assert scores[row.chosen_candidate_id] == group.max() and scores[row.rejected_candidate_id] == group.min()
    assert set(pairs["generation_method"]) == {"score_extremes"} and set(pairs["label_source"]) == {"construction"}
    assert all(json.loads(p)["min_margin"] == 1 for p in pairs["strategy_params"])
    tied = quarantine[quarantine["reason"] == "score_tie"]
    assert list(tied["prompt_id"]) == ["p3"] and "scores tied: highest 5, lowest 5" in tied["detail"].iloc[0]
    assert {e["generation_method"] for e in exported} == {"score_extremes"}
    assert sorted(e["prompt_id"] for e in exported) == ["p1", "p2"]
