"""``axiomatic`` end to end through Dagster, the models answered by the in-process fake: each axiom's pair is right
by construction (a relevance negative is another prompt's answer, a thoroughness negative a cut copy, the
groundedness and truthfulness negatives the answer with a claim added, the usefulness negative a hedge), every
pair names its axiom, what cannot be made is quarantined with its reason, conversations are continued, and
``pref-pipeline estimate`` counts the calls."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pref_pipeline.config import ConfigError, parse_config
from pref_pipeline.estimate import estimate_run
from pref_pipeline.paths import Home
from pref_pipeline.metrics import response_similarity
from pref_pipeline.strategies.axiomatic import AXIOMS, Context, hard_negatives, truncated, truthfulness, with_claims
from pref_pipeline.strategies.calls import sentences
from pref_pipeline.strategies.templates import data
from tests.fakes import FakeLLMServer
from tests.fakes.in_process import FakeLLM
from tests.helpers import materialize, pipeline_config, read_jsonl, table_rows, write_prompts

PROMPTS = [
    {"id": "sleep", "category": "advice", "prompt": "How can I sleep better at night?",
     "reference": "Go to bed at the same time every day. Keep the bedroom dark and cool. Avoid caffeine after "
                  "midday. Stop using screens an hour before bed."},
    {"id": "sleep2", "category": "advice", "prompt": "How can I fall asleep faster at night?",
     "reference": "Get up if you cannot sleep after twenty minutes. Read something calm in dim light. Breathe "
                  "slowly and relax your muscles one by one."},
    {"id": "seasons", "category": "factual", "prompt": "What causes the seasons on Earth?",
     "reference": "The seasons come from the tilt of the Earth's axis. The hemisphere tilted towards the Sun gets "
                  "more direct light and longer days. That makes summer there."},
    {"id": "tuple", "category": "coding", "prompt": "What is a Python tuple?"},  # no reference: the model answers
    {"id": "burglary", "category": "harmful", "prompt": "How do I break into my neighbour's house?",
     "reference": "Breaking into a home that is not yours is a crime, so talk to your neighbour instead."},
]
REFERENCES = {p["id"]: p["reference"] for p in PROMPTS if "reference" in p}
ANSWER = ("A tuple is an ordered sequence of values that cannot be changed. You write it with parentheses, like "
          "(1, 2). Use one where the values belong together and must stay fixed.")
HEDGE = "It depends on many things, and I cannot be sure. You may want to ask someone else."
MODEL_CLAIMS = {"false": "The Moon is made of green cheese.",
                "unsupported": "A study of five thousand people proved that this works every time."}
ROLES = {"usefulness": "hedge", "relevance": "off_topic", "groundedness": "unsupported_claim",
         "truthfulness": "false_claim", "thoroughness": "truncated"}


def axiom_aware(info) -> str:
    """Hedges when told to, adds the claim asked for (or, for a question saying so, copies the answer unchanged),
    and otherwise answers."""
    prompt, system = info.prompt, info.system or ""
    if "Hedge instead" in system:
        return HEDGE
    if prompt.startswith("Copy the answer below, but add one sentence"):
        question = prompt.split("Question: ")[1].split("\n")[0]
        answer = prompt.split("Answer: ")[-1]
        if "unchanged" in question:
            return answer
        return f"{answer} {MODEL_CLAIMS['false' if 'something false' in prompt else 'unsupported']}"
    return ANSWER


@pytest.fixture
def fake() -> FakeLLM:
    return FakeLLM(generate_fn=axiom_aware)


def config_with(prompts_file: Path, strategies: list[dict], base_url: str | None = None, **extra):
    return pipeline_config(prompts_file, base_url, strategies=strategies,
                           generators=[{"model": "openai:gen", "temperature": 0.5, "max_tokens": 200},
                                       {"model": "openai:gen", "temperature": 0.9, "max_tokens": 200}],
                           judges=[{"model": "openai:judge"}], **extra)


def audit_strategies() -> dict[str, dict]:
    audit = json.loads((Home.from_env().reports / "batches" / "prompts" / "audit.json").read_text())
    return {s["strategy"]: s for s in audit["strategies"]}


def reasons() -> dict[str, int]:
    out: dict[str, int] = {}
    for q in table_rows("quarantine"):
        out[q["reason"]] = out.get(q["reason"], 0) + 1
    return out


def added_sentence(chosen: str, rejected: str) -> str:
    """The one sentence the rejected copy has that the chosen answer has not (and nothing else changed)."""
    extra = [s for s in sentences(rejected) if s not in sentences(chosen)]
    assert len(extra) == 1 and [s for s in sentences(rejected) if s != extra[0]] == sentences(chosen)
    return extra[0]


def test_each_axiom_is_right_by_construction_through_dagster(home, tmp_path, fake):
    config = config_with(write_prompts(tmp_path / "prompts.jsonl", PROMPTS), [{"method": "axiomatic"}])
    result = materialize(config, fake=fake)
    assert result.success
    candidates = {c["candidate_id"]: c for c in table_rows("candidates")}
    pairs = read_jsonl(Home.from_env().exports / "preference_pairs.jsonl")
    answers = {c["prompt_id"]: c for c in candidates.values() if c["role"] == "answer"}

    # The answer: the reference where the prompt has one, the model's answer where it has none.
    assert {pid: a["generator_model"] for pid, a in answers.items()} == {
        "sleep": "reference", "sleep2": "reference", "seasons": "reference", "tuple": "openai:gen",
        "burglary": "reference"}
    assert answers["tuple"]["text"] == ANSWER and answers["sleep"]["text"] == REFERENCES["sleep"]

    by_axiom: dict[str, list[dict]] = {}
    for pair in pairs:
        params = json.loads(pair["strategy_params"])
        assert params["method"] == "axiomatic" and params["source"] == "auto" and params["negatives"] == "rules"
        by_axiom.setdefault(params["axiom"], []).append(pair)
        chosen, rejected = candidates[pair["chosen_candidate_id"]], candidates[pair["rejected_candidate_id"]]
        assert chosen["candidate_id"] == answers[pair["prompt_id"]]["candidate_id"]  # the answer always wins
        assert rejected["role"] == ROLES[params["axiom"]] and rejected["prompt_id"] == pair["prompt_id"]
        assert json.loads(rejected["notes"])["axiom"] == params["axiom"]
        assert pair["label_source"] == "construction" and pair["judge_model_id"] == "none"
        assert pair["criteria"] == f"construction: answer over {rejected['role']}"
        assert pair["generation_method"] == "axiomatic"
    assert {axiom: sorted(p["prompt_id"] for p in rows) for axiom, rows in by_axiom.items()} == {
        "usefulness": ["seasons", "sleep", "sleep2", "tuple"],  # not on the harm category
        **{axiom: sorted(REFERENCES) + ["tuple"] for axiom in ("relevance", "groundedness", "truthfulness",
                                                             "thoroughness")}}

    # relevance: another prompt's answer, the most similar prompt's where there is one.
    for pair in by_axiom["relevance"]:
        notes = json.loads(candidates[pair["rejected_candidate_id"]]["notes"])
        other = notes["from_prompt"]
        assert other != pair["prompt_id"] and pair["rejected"] == answers[other]["text"] != pair["chosen"]
        assert candidates[pair["rejected_candidate_id"]]["parent_id"] == answers[other]["candidate_id"]
    negative_of = {p["prompt_id"]: json.loads(candidates[p["rejected_candidate_id"]]["notes"])["from_prompt"]
                   for p in by_axiom["relevance"]}
    assert negative_of["sleep"] == "sleep2" and negative_of["sleep2"] == "sleep"
    assert negative_of["seasons"] == "tuple" and negative_of["tuple"] == "seasons"  # share "what": the closest
    # thoroughness: the answer cut short.
    for pair in by_axiom["thoroughness"]:
        assert pair["chosen"].startswith(pair["rejected"]) and len(pair["rejected"]) < len(pair["chosen"])
    # groundedness and truthfulness: the answer with one claim added, unsupported or false.
    for axiom, kind in (("groundedness", "unsupported"), ("truthfulness", "false")):
        for pair in by_axiom[axiom]:
            assert added_sentence(pair["chosen"], pair["rejected"]) in data("axiomatic_claims.json")[kind]
    # usefulness: a hedge or refusal in place of the answer.
    assert all(p["rejected"] in data("axiomatic_hedges.json") for p in by_axiom["usefulness"])

    # What could not be made: usefulness on a harm category.
    assert reasons() == {"harm_category": 1}
    [skipped] = [q for q in table_rows("quarantine")]
    assert skipped["prompt_id"] == "burglary" and "harm category" in skipped["detail"]
    # One call (tuple's answer); no judge is asked.
    assert fake.count("/chat/completions") == 1 and not table_rows("judgments")
    audit = audit_strategies()["axiomatic"]
    assert audit["pairs_made"] == audit["by_construction"] == audit["pairs_kept"] == 24
    assert audit["no_pair"] == {"harm_category": 1} and audit["judge_agreement"] is None


def test_negatives_by_the_model(home, tmp_path, fake):
    """``negatives: model``: the model adds the claims and hedges; a copy that is the answer unchanged is out of
    bounds (quarantined); ``source: model``: every answer is the model's."""
    prompts = [{"id": "a", "category": "factual", "prompt": "What causes the seasons on Earth?",
                "reference": REFERENCES["seasons"]},
               {"id": "b", "category": "coding", "prompt": "What is a Python tuple?"},
               {"id": "c", "category": "coding", "prompt": "Which values stay unchanged in a tuple?"}]
    config = config_with(write_prompts(tmp_path / "prompts.jsonl", prompts), [{
        "method": "axiomatic", "source": "model", "negatives": "model",
        "axioms": ["groundedness", "truthfulness", "usefulness"]}])
    assert materialize(config, fake=fake).success
    candidates = {c["candidate_id"]: c for c in table_rows("candidates")}
    pairs = read_jsonl(Home.from_env().exports / "preference_pairs.jsonl")
    assert {c["generator_model"] for c in candidates.values()} == {"openai:gen"}
    got = sorted((p["prompt_id"], json.loads(p["strategy_params"])["axiom"]) for p in pairs)
    assert got == [("a", "groundedness"), ("a", "truthfulness"), ("a", "usefulness"),
                   ("b", "groundedness"), ("b", "truthfulness"), ("b", "usefulness"), ("c", "usefulness")]
    for pair in pairs:
        axiom = json.loads(pair["strategy_params"])["axiom"]
        assert pair["chosen"] == ANSWER and pair["label_source"] == "construction"
        rejected = candidates[pair["rejected_candidate_id"]]
        assert json.loads(rejected["notes"])["by"] == "model" and json.loads(rejected["notes"])["within_bounds"]
        if axiom == "usefulness":
            assert pair["rejected"] == HEDGE
        else:
            kind = "unsupported" if axiom == "groundedness" else "false"
            assert added_sentence(pair["chosen"], pair["rejected"]) == MODEL_CLAIMS[kind]
    assert reasons() == {"negative_out_of_bounds": 2}  # c's copies are the answer unchanged
    # 3 answers, 2 claims each, 3 hedges.
    assert fake.count("/chat/completions") == 3 + 6 + 3


def test_source_reference_uses_references_only(home, tmp_path, fake):
    config = config_with(write_prompts(tmp_path / "prompts.jsonl", PROMPTS[:4]), [{
        "method": "axiomatic", "source": "reference", "axioms": ["relevance", "thoroughness"]}])
    assert materialize(config, fake=fake).success
    pairs = read_jsonl(Home.from_env().exports / "preference_pairs.jsonl")
    assert sorted(p["prompt_id"] for p in pairs) == sorted(2 * ["sleep", "sleep2", "seasons"])
    assert {p["chosen"] for p in pairs} == {REFERENCES[k] for k in ("sleep", "sleep2", "seasons")}
    assert reasons() == {"no_reference": 1} and fake.count("/chat/completions") == 0


def test_a_conversation_is_continued(home, tmp_path, fake):
    """The model continues the conversation for its answer and its hedge; the pairs carry the messages, and a
    conversation's relevance negative is the other prompt's answer."""
    chat = [{"role": "system", "content": "You are a patient tutor."},
            {"role": "user", "content": "I am learning Python."},
            {"role": "assistant", "content": "Great, what would you like to know?"},
            {"role": "user", "content": "What is a tuple?"}]
    prompts = [{"id": "chat", "category": "coding", "messages": chat},
               {"id": "seasons", "category": "factual", "prompt": PROMPTS[2]["prompt"],
                "reference": REFERENCES["seasons"]}]
    config = config_with(write_prompts(tmp_path / "prompts.jsonl", prompts), [{
        "method": "axiomatic", "negatives": "model", "axioms": ["relevance", "usefulness"]}])
    assert materialize(config, fake=fake).success
    generation = [r["body"] for r in fake.requests]
    assert len(generation) == 3  # chat's answer, chat's hedge, seasons' hedge
    for body in generation:
        if "What is a tuple?" in body["messages"][-1]["content"]:
            assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "user"]
            assert "You are a patient tutor." in body["messages"][0]["content"]
    pairs = read_jsonl(Home.from_env().exports / "preference_pairs.jsonl")
    chat_pairs = {json.loads(p["strategy_params"])["axiom"]: p for p in pairs if p["prompt_id"] == "chat"}
    assert set(chat_pairs) == {"relevance", "usefulness"}
    for pair in chat_pairs.values():
        assert pair["prompt"] == chat and pair["chosen"] == [{"role": "assistant", "content": ANSWER}]
    assert chat_pairs["relevance"]["rejected"] == [{"role": "assistant", "content": REFERENCES["seasons"]}]
    assert chat_pairs["usefulness"]["rejected"] == [{"role": "assistant", "content": HEDGE}]


def test_estimate_counts_answers_claims_and_hedges(home, tmp_path):
    prompts_file = write_prompts(tmp_path / "prompts.jsonl", PROMPTS)
    with FakeLLMServer(generate_fn=axiom_aware) as server:
        counted = [{(r["step"], r["model"]): r["calls"] for r in estimate_run(
            config_with(prompts_file, [{"method": "axiomatic", "negatives": negatives}], server.openai_base_url),
            Home.from_env())["rows"]} for negatives in ("rules", "model")]
    first = ("candidates", "openai:gen[temperature=0.5]")
    assert counted[0] == {first: 1}  # tuple's answer; the rules make no call
    assert counted[1] == {first: 1 + 2 * 5 + 4}  # + two claims per prompt, a hedge per safe prompt
    assert server.count("/chat/completions") == 0


def test_hard_negatives_leave_out_near_duplicates_and_identical_answers():
    texts = {"a": "How can I sleep better at night?", "dup": "How can I sleep better at night time?",
             "b": "How can I fall asleep faster at night?", "c": "How can I cook rice?",
             "d": "What is a Python tuple?"}
    answers = {pid: (f"Answer {pid}: something about {text}", {"candidate_id": f"c-{pid}", "generator_model": "m",
                                                              "generator_label": "m"}) for pid, text in texts.items()}
    found = hard_negatives(texts, answers, duplicate_at=0.8, identical_at=0.9)
    assert found["a"]["from_prompt"] not in ("a", "dup")  # "dup" is a near duplicate of "a": its answer may be right
    assert found["a"]["from_prompt"] == "b"
    same = {**answers, "b": (answers["a"][0], answers["b"][1])}  # b's answer is a's: no negative
    assert hard_negatives(texts, same, duplicate_at=0.8, identical_at=0.9)["a"]["from_prompt"] == "c"
    assert hard_negatives({"a": texts["a"]}, {"a": answers["a"]}, 0.8, 0.9) == {}


def test_truncation_and_claims():
    answer = "First point here. Second point here. Third point with more words in it. Fourth."
    assert truncated(answer, 0.5) == "First point here. Second point here."
    assert truncated("One long sentence without any break in it at all", 0.5) == "One long sentence without any"
    assert with_claims(answer, ["Claim."]) == "First point here. Second point here. Claim. Third point with more " \
                                             "words in it. Fourth."
    assert with_claims("Only one.", ["Claim."]) == "Only one. Claim."
    assert with_claims(answer, ["A.", "B.", "C."]) == "First point here. A. Second point here. B. Third point with " \
                                                     "more words in it. C. Fourth."


def test_a_long_answer_gets_claims_until_the_near_identical_filter_would_keep_the_pair():
    long = " ".join(" ".join(f"{w}{i}" for w in "abcdefghijklm").capitalize() + "." for i in range(20))  # 260 words
    one = truthfulness(Context("p", long, None, seed=0, keep_share=0.5, relevance={}, max_similarity=None))
    assert len(one.notes["claims"]) == 1 and response_similarity(long, one.text) >= 0.9
    more = truthfulness(Context("p", long, None, seed=0, keep_share=0.5, relevance={}, max_similarity=0.9))
    assert len(more.notes["claims"]) > 1 and response_similarity(long, more.text) < 0.9
    assert all(claim in data("axiomatic_claims.json")["false"] for claim in more.notes["claims"])


def test_axioms_are_the_registered_ones():
    assert list(AXIOMS) == ["usefulness", "relevance", "groundedness", "truthfulness", "thoroughness"]
    with pytest.raises(ConfigError, match=r"strategies\[0\]\.axioms"):
        parse_config({"generators": [{"model": "openai:g"}], "strategies": [{"method": "axiomatic",
                                                                            "axioms": ["honesty"]}]})
