"""``best_of_n`` end to end through Dagster, the models answered by the in-process fake: N samples scored by a
pointwise judge or by a rule, the best chosen over the worst and over a random other one, ties quarantined, the
scores kept on the candidates and with the pair; beside ``sampling`` and ``score_extremes`` (which ask the same
requests) its candidates keep ids of their own; ``pref-pipeline estimate`` counts its samples and scores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pref_pipeline.config import ConfigError, parse_config
from pref_pipeline.estimate import estimate_run
from pref_pipeline.paths import Home
from tests.fakes import FakeLLMServer
from tests.fakes.in_process import FakeLLM
from tests.helpers import materialize, pipeline_config, read_jsonl, table_rows, write_prompts

SCORER = {"model": "openai:scorer", "type": "pointwise"}
GENERATORS = [{"model": "openai:gen", "temperature": 0.5, "max_tokens": 200},
              {"model": "openai:gen", "temperature": 0.9, "max_tokens": 200}]
REFERENCES = {
    "What causes the seasons on Earth?": "The tilt of the Earth's axis makes one hemisphere lean towards the Sun. "
                                         "That hemisphere gets more direct light and has summer.",
    "How can I sleep better at night?": "Go to bed at the same time every day and keep the bedroom dark and cool.",
}


def score_by_length(info) -> dict:
    """A score from the answer's length, except that every answer to the interview question scores 5 (a tie)."""
    if "interview" in info.question:
        return {"score": 5, "reasoning": "all alike"}
    return {"score": 1 + len(info.response) % 10, "reasoning": "length"}


def config_with(prompts_file: Path, strategies: list[dict], judges: list[dict] | None = None,
                base_url: str | None = None, **extra):
    return pipeline_config(prompts_file, base_url, strategies=strategies, generators=GENERATORS,
                           judges=judges or [SCORER], **extra)


def audit_strategies() -> dict[str, dict]:
    audit = json.loads((Home.from_env().reports / "batches" / "prompts" / "audit.json").read_text())
    return {s["strategy"]: s for s in audit["strategies"]}


def quarantined(reason: str) -> list[dict]:
    return [q for q in table_rows("quarantine") if q["reason"] == reason]


def test_best_of_n_with_a_pointwise_judge_through_dagster(home, prompts_file):
    """The best of 5 over the worst and over a random other one; a prompt whose answers all score alike gives no pair
    for either, quarantined with the scores."""
    fake = FakeLLM(score_fn=score_by_length)
    config = config_with(prompts_file, [{"method": "best_of_n", "n": 5, "pair_with": ["worst", "random"],
                                         "min_margin": 1}])
    result = materialize(config, fake=fake)
    assert result.success
    candidates = {c["candidate_id"]: c for c in table_rows("candidates")}
    pairs = read_jsonl(Home.from_env().exports / "preference_pairs.jsonl")

    # Five samples per prompt, spread over the two generators (as sampling spreads them), each scored by the judge.
    assert len(candidates) == 5 * 3
    for c in candidates.values():
        assert c["strategy"] == "best_of_n" and c["generator_label"] == (
            "openai:gen[temperature=0.5]" if c["candidate_index"] % 2 == 0 else "openai:gen[temperature=0.9]")
        scores = json.loads(c["pointwise_scores"])
        assert len(scores) == 1 and list(scores.values()) == [c["pointwise_score"]]
    assert fake.count("/chat/completions") == 5 * 3 * 2  # each sample once, each score once: no judge compares

    # p1 and p2: best over worst and best over a random other one, by construction, the scores with the pair.
    assert sorted((p["prompt_id"], json.loads(p["strategy_params"])["pair_with"]) for p in pairs) == [
        ("p1", "random"), ("p1", "worst"), ("p2", "random"), ("p2", "worst")]
    for pair in pairs:
        chosen, rejected = candidates[pair["chosen_candidate_id"]], candidates[pair["rejected_candidate_id"]]
        group = [c["pointwise_score"] for c in candidates.values() if c["prompt_id"] == pair["prompt_id"]]
        params = json.loads(pair["strategy_params"])
        assert chosen["pointwise_score"] == max(group) and chosen["role"] == "best"
        assert params["chosen_score"] == chosen["pointwise_score"]
        assert params["rejected_score"] == rejected["pointwise_score"]
        assert params["chosen_score"] - params["rejected_score"] >= 1
        assert params["method"] == "best_of_n" and params["scorer"] == "pointwise" and params["n"] == 5
        if params["pair_with"] == "worst":
            assert rejected["pointwise_score"] == min(group) and rejected["role"] == "worst"
        else:
            assert rejected["role"] == "random" and rejected["candidate_id"] != chosen["candidate_id"]
        assert pair["label_source"] == "construction" and pair["judge_model_id"] == "none"
        assert pair["generation_method"] == "best_of_n"
        assert pair["criteria"] == f"construction: best over {rejected['role']}"
    assert not table_rows("judgments")

    # p3: every answer scored 5: a tie for both kinds, quarantined with the scores.
    tied = quarantined("score_tie")
    assert sorted(q["prompt_id"] for q in tied) == ["p3", "p3"]
    assert {q["detail"] for q in tied} == {"scores tied: best 5, worst 5 (min_margin 1, scorer pointwise)",
                                           "scores tied: best 5, random 5 (min_margin 1, scorer pointwise)"}

    # The per-strategy audit table.
    audit = audit_strategies()["best_of_n"]
    assert audit["comparisons"] == 6 and audit["pairs_made"] == 4 and audit["by_construction"] == 4
    assert audit["pairs_kept"] == 4 and audit["no_pair"] == {"score_tie": 2} and audit["judge_agreement"] is None


def test_best_of_n_with_a_rule_scores_by_reference_match_and_calls_no_judge(home, tmp_path):
    """``scorer: reference_match``: an answer's score is its word-overlap F1 with the reference; the prompt without a
    reference gives no pair (and no sample); the pairwise judge is never asked."""
    prompts = [{"id": "q1", "category": "factual", "prompt": "What causes the seasons on Earth?",
                "reference": REFERENCES["What causes the seasons on Earth?"]},
               {"id": "q2", "category": "advice", "prompt": "How can I sleep better at night?",
                "reference": REFERENCES["How can I sleep better at night?"]},
               {"id": "q3", "category": "coding", "prompt": "What is a Python tuple?"}]

    def answers(info) -> str:  # the careful generator repeats the reference, the other gives half of it
        reference = REFERENCES.get(info.prompt, "A tuple is an immutable sequence.")
        if info.temperature == 0.5:
            return reference
        half = reference.split()
        return " ".join(half[:len(half) // 2]) + f" and so on (seed {info.seed})."

    fake = FakeLLM(generate_fn=answers)
    config = config_with(write_prompts(tmp_path / "prompts.jsonl", prompts),
                         [{"method": "best_of_n", "n": 4, "scorer": "reference_match"}],
                         judges=[{"model": "openai:judge"}])
    assert materialize(config, fake=fake).success
    candidates = {c["candidate_id"]: c for c in table_rows("candidates")}
    pairs = read_jsonl(Home.from_env().exports / "preference_pairs.jsonl")
    assert {c["prompt_id"] for c in candidates.values()} == {"q1", "q2"}  # q3 has no reference: nothing sampled
    for c in candidates.values():
        assert json.loads(c["pointwise_scores"]) == {"rule:reference_match": c["pointwise_score"]}
        assert (c["pointwise_score"] == 1.0) == (c["text"] in REFERENCES.values())
    assert sorted(p["prompt_id"] for p in pairs) == ["q1", "q2"]
    for pair in pairs:
        chosen, rejected = candidates[pair["chosen_candidate_id"]], candidates[pair["rejected_candidate_id"]]
        assert chosen["text"] == REFERENCES[pair["prompt"]] and chosen["candidate_index"] == 0  # first of the best
        assert 0 < rejected["pointwise_score"] < 1 and rejected["candidate_index"] == 3  # last of the worst
        params = json.loads(pair["strategy_params"])
        assert params["scorer"] == "reference_match" and params["pair_with"] == "worst"
        assert (params["chosen_score"], params["rejected_score"]) == (1.0, rejected["pointwise_score"])
        assert pair["label_source"] == "construction"
    assert [q["prompt_id"] for q in quarantined("no_reference")] == ["q3"]
    assert fake.count("/chat/completions") == 2 * 4  # the samples only: a rule makes no call, no judge compares
    assert not table_rows("judgments")
    assert audit_strategies()["best_of_n"]["no_pair"] == {"no_reference": 1}


def test_beside_sampling_and_score_extremes_its_candidates_have_ids_of_their_own(home, prompts_file):
    """The three sample the same requests (the response cache answers the repeats); every candidate id is unique,
    so the candidates gate passes, and each strategy pairs only its own candidates."""
    fake = FakeLLM(score_fn=score_by_length)
    config = config_with(prompts_file, [{"method": "sampling"}, {"method": "score_extremes", "min_margin": 1},
                                        {"method": "best_of_n", "min_margin": 1}],
                         judges=[SCORER], candidates_per_prompt=4)
    result = materialize(config, fake=fake)
    assert result.success
    candidates = table_rows("candidates")
    assert len({c["candidate_id"] for c in candidates}) == len(candidates) == 3 * 3 * 4
    by_id = {c["candidate_id"]: c for c in candidates}
    for pair in read_jsonl(Home.from_env().exports / "preference_pairs.jsonl"):
        assert {by_id[pair["chosen_candidate_id"]]["strategy"], by_id[pair["rejected_candidate_id"]]["strategy"]} == {
            pair["generation_method"]}
    texts = {}
    for c in candidates:  # the same sample (prompt, index) has the same text whichever strategy asked for it
        texts.setdefault((c["prompt_id"], c["candidate_index"]), set()).add(c["text"])
    assert all(len(t) == 1 for t in texts.values())
    assert {"sampling", "score_extremes", "best_of_n"} <= set(audit_strategies())


def test_estimate_counts_its_samples_and_scores(home, prompts_file):
    with FakeLLMServer() as server:
        pointwise = config_with(prompts_file, [{"method": "best_of_n", "n": 6}], [SCORER, {"model": "openai:judge"}],
                                server.openai_base_url)
        by_rule = config_with(prompts_file, [{"method": "best_of_n", "n": 6, "scorer": "no_refusal_of_safe_requests"}],
                              [{"model": "openai:judge"}], server.openai_base_url)
        counted = [{(r["step"], r["model"]): r["calls"] for r in estimate_run(c, Home.from_env())["rows"]}
                   for c in (pointwise, by_rule)]
    # 6 samples per prompt over two generators; the pointwise judge scores each; the pairwise judge compares none.
    assert counted[0] == {("candidates", "openai:gen[temperature=0.5]"): 3 * 3,
                          ("candidates", "openai:gen[temperature=0.9]"): 3 * 3, ("judgments", "openai:scorer"): 3 * 6}
    assert counted[1] == {("candidates", "openai:gen[temperature=0.5]"): 3 * 3,
                          ("candidates", "openai:gen[temperature=0.9]"): 3 * 3}
    assert server.count("/chat/completions") == 0


@pytest.mark.parametrize("entry, judges, message", [
    ({"method": "best_of_n"}, [{"model": "openai:judge"}],
     "best_of_n with `scorer: pointwise` needs at least one judge with `type: pointwise`"),
    ({"method": "best_of_n", "n": 2, "pair_with": ["worst", "random"]}, [SCORER],
     "pair_with: [worst, random] needs n of at least 3"),
    ({"method": "best_of_n", "pair_with": ["random", "random"]}, [SCORER], "names a kind twice"),
    ({"method": "best_of_n", "scorer": "prefer_concise"}, [SCORER], "strategies[0].scorer"),
])
def test_configurations_it_refuses(entry, judges, message):
    with pytest.raises(ConfigError) as error:
        parse_config({"generators": GENERATORS, "judges": judges, "strategies": [entry]})
    assert message in str(error.value)


def test_a_rule_scorer_needs_no_pointwise_judge():
    config = parse_config({"generators": GENERATORS, "judges": [{"type": "rule", "rule": "prefer_concise"}],
                           "strategies": [{"method": "best_of_n", "scorer": "reference_match"}]})
    assert config.strategies[0].scorer == "reference_match"


CHAT = [{"role": "system", "content": "You are a patient tutor."},
        {"role": "user", "content": "What is a derivative?"},
        {"role": "assistant", "content": "The rate at which a function changes."},
        {"role": "user", "content": "Give me an example with x squared."}]


def test_a_conversation_is_continued_and_scored_with_every_turn(home, tmp_path):
    """The samples continue the conversation (its system message and earlier turns are sent), the judge scores
    them reading every turn, and the pair carries the prompt's messages."""
    fake = FakeLLM(score_fn=lambda info: {"score": 1 + len(info.response) % 10, "reasoning": "length"})
    prompts = write_prompts(tmp_path / "prompts.jsonl", [{"id": "chat", "messages": CHAT, "category": "math"}])
    config = config_with(prompts, [{"method": "best_of_n", "n": 4, "min_margin": 1}])
    assert materialize(config, fake=fake).success
    bodies = [r["body"] for r in fake.requests]
    scoring = [b for b in bodies if "<response>" in b["messages"][-1]["content"]]
    sampling = [b for b in bodies if b not in scoring]
    assert len(sampling) == 4 and len(scoring) == 4
    for body in sampling:
        assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "user"]
        assert body["messages"][0]["content"].endswith("You are a patient tutor.")
        assert body["messages"][-1]["content"] == "Give me an example with x squared."
    assert all("The rate at which a function changes." in b["messages"][-1]["content"] for b in scoring)
    [pair] = read_jsonl(Home.from_env().exports / "preference_pairs.jsonl")
    assert pair["generation_method"] == "best_of_n" and pair["prompt"] == CHAT
    assert pair["chosen"][0]["role"] == "assistant"
