"""The seeds' variants of two strategies, end to end through Dagster with the in-process fake:

- ``critique_revise`` with ``alternative: reference``: when the second critique still finds the flaw, the
  prompt's reference (written by a person) is chosen over the original, and a model's answer where the prompt
  has no reference; the alternative's notes say which;
- ``human_vs_model`` with ``winner: human``: the human-written reference is chosen by construction, no judge asked.

Neither key changes a configuration that leaves it out: its ``strategy_params`` (hashed into candidate ids and
cache keys) stay what they were.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from pref_pipeline.config import parse_config
from pref_pipeline.generation import configured_strategies
from pref_pipeline.paths import Home
from tests.fakes.in_process import FakeLLM
from tests.helpers import materialize, pipeline_config, read_jsonl, table_rows, write_prompts

FLAWED_WITH_REFERENCE = "Why is the sky blue (a still-flawed answer)?"
FLAWED_NO_REFERENCE = "What is a tuple (a still-flawed answer)?"
FIXED = "How do I boil an egg?"
SKY_REFERENCE = ("Sunlight is scattered by the molecules of the air. Blue light is scattered more than red light, "
                 "so the sky looks blue from every direction.")
EGG_REFERENCE = "Put the egg in boiling water for seven minutes, then cool it in cold water."
PROMPTS = [
    {"id": "sky", "category": "science", "prompt": FLAWED_WITH_REFERENCE, "reference": SKY_REFERENCE},
    {"id": "tuple", "category": "coding", "prompt": FLAWED_NO_REFERENCE},
    {"id": "egg", "category": "advice", "prompt": FIXED, "reference": EGG_REFERENCE},
]
ALTERNATIVE = "A separate careful answer that follows the principle, with its reasons."


def answers(info) -> str:
    """The critique steps as critique_revise asks them; a still-flawed question keeps its flaw after revision."""
    prompt, system = info.prompt, info.system or ""
    question = prompt.split("Question: ")[-1].split("\n")[0] if "Question: " in prompt else prompt
    if "Does the response still have the problem" in prompt:
        return "YES, it is still flawed." if "still-flawed" in question else "NO, the flaw is fixed."
    if "Point out the most important way" in prompt:
        return "It gives no reasons."
    if "Rewrite the response" in prompt:
        return "Revised, with the reasons given."
    if "following this principle" in system:
        return ALTERNATIVE
    return f"Model answer to: {question}"


def judge_requests(fake: FakeLLM) -> int:
    return sum(1 for r in fake.requests if "<response_a>" in json.dumps(r["body"]))


def alternative_requests(fake: FakeLLM) -> int:
    return sum(1 for r in fake.requests if "following this principle" in json.dumps(r["body"]))


@pytest.fixture
def fake() -> FakeLLM:
    return FakeLLM(generate_fn=answers)


def config_for(tmp_path, strategies: list[dict]):
    return pipeline_config(write_prompts(tmp_path / "prompts.jsonl", PROMPTS), strategies=strategies,
                           generators=[{"model": "openai:gen", "temperature": 0.5, "max_tokens": 200}],
                           judges=[{"model": "openai:judge"}])


def exported() -> dict[str, dict]:
    return {r["prompt_id"]: r for r in read_jsonl(Home.from_env().exports / "preference_pairs.jsonl")}


def test_critique_revise_alternative_from_the_reference(home, tmp_path, fake):
    result = materialize(config_for(tmp_path, [{"method": "critique_revise", "alternative": "reference"}]), fake=fake)
    assert result.success
    rows = exported()
    candidates = {c["candidate_id"]: c for c in table_rows("candidates")}
    assert set(rows) == {"sky", "tuple", "egg"}

    # Still flawed, with a reference: the reference is chosen over the original, no call made for it.
    sky = rows["sky"]
    chosen, rejected = candidates[sky["chosen_candidate_id"]], candidates[sky["rejected_candidate_id"]]
    assert (chosen["role"], rejected["role"]) == ("alternative", "original")
    assert sky["chosen"] == SKY_REFERENCE and sky["chosen_model"] == "reference"
    assert json.loads(chosen["notes"])["alternative_from"] == "reference"
    assert chosen["parent_id"] == rejected["candidate_id"]
    assert (sky["label_source"], sky["judge_model_id"]) == ("construction", "none")
    assert sky["criteria"] == "construction: alternative over original"
    assert sky["critique"] == "It gives no reasons."  # the critique of the original the reference answers

    # Still flawed, no reference: a model's answer stands in, and its notes say why.
    tuple_pair = rows["tuple"]
    chosen = candidates[tuple_pair["chosen_candidate_id"]]
    assert chosen["role"] == "alternative" and tuple_pair["chosen"] == ALTERNATIVE
    assert chosen["generator_model"] == "openai:gen"
    notes = json.loads(chosen["notes"])
    assert notes["alternative_from"] == "model" and "no reference" in notes["why"]

    # Fixed by the revision: revised over original, as always (the reference is not used).
    egg = rows["egg"]
    assert candidates[egg["chosen_candidate_id"]]["role"] == "revised"
    assert egg["chosen"] != EGG_REFERENCE

    # One alternative asked of the model (the prompt without a reference), no judge asked at all.
    assert alternative_requests(fake) == 1
    assert judge_requests(fake) == 0
    # The key is in the strategy's parameters, so these candidates are not today's.
    assert {json.loads(r["strategy_params"])["alternative"] for r in rows.values()} == {"reference"}


def test_critique_revise_alternative_from_a_model_by_default(home, tmp_path, fake):
    """Left out, ``alternative`` is ``model``: a separately generated answer beats a still-flawed original even
    where the prompt has a reference, as before."""
    assert materialize(config_for(tmp_path, [{"method": "critique_revise"}]), fake=fake).success
    rows = exported()
    assert rows["sky"]["chosen"] == ALTERNATIVE and rows["tuple"]["chosen"] == ALTERNATIVE
    assert alternative_requests(fake) == 2
    assert all("alternative" not in json.loads(r["strategy_params"]) for r in rows.values())
    alternatives = [c for c in table_rows("candidates") if c["role"] == "alternative"]
    assert all("alternative_from" not in json.loads(c["notes"]) for c in alternatives)  # the notes as before


def test_human_vs_model_with_the_human_text_chosen(home, tmp_path, fake):
    result = materialize(config_for(tmp_path, [{"method": "human_vs_model", "winner": "human"}]), fake=fake)
    assert result.success
    rows = exported()
    candidates = {c["candidate_id"]: c for c in table_rows("candidates")}
    assert set(rows) == {"sky", "egg"}  # "tuple" has no reference
    for prompt_id, reference in (("sky", SKY_REFERENCE), ("egg", EGG_REFERENCE)):
        row = rows[prompt_id]
        assert row["chosen"] == reference and row["rejected"].startswith("Model answer to")
        assert (candidates[row["chosen_candidate_id"]]["role"], candidates[row["rejected_candidate_id"]]["role"]) == (
            "human", "model")
        assert (row["label_source"], row["judge_model_id"], row["judged_at"]) == ("construction", "none", None)
        assert row["criteria"] == "construction: human over model"
        assert json.loads(row["strategy_params"])["winner"] == "human"
    assert judge_requests(fake) == 0  # no judge asked
    comparisons = table_rows("comparisons")
    assert {c["status"] for c in comparisons if c["prompt_id"] != "tuple"} == {"construction"}
    assert [c["status"] for c in comparisons if c["prompt_id"] == "tuple"] == ["no_reference"]


def test_defaults_keep_strategy_params_and_the_estimate():
    """Left out or given at their defaults, the new keys leave ``strategy_params`` as they were before the keys
    existed; ``winner: human`` shows nothing to the judges, and ``alternative: reference`` asks no alternative
    where the reference stands in."""
    def strategy(entry: dict):
        config = parse_config({"generators": [{"model": "openai:gen"}], "judges": [{"model": "openai:judge"}],
                               "strategies": [entry]})
        return configured_strategies(config)[0]

    assert strategy({"method": "human_vs_model"}).strategy_params == '{"method":"human_vs_model"}'
    assert strategy({"method": "human_vs_model", "winner": "judge"}).strategy_params == '{"method":"human_vs_model"}'
    today = strategy({"method": "critique_revise"}).strategy_params
    assert json.loads(today).keys() == {"method", "templates"}
    assert strategy({"method": "critique_revise", "alternative": "model"}).strategy_params == today

    prompts = pd.DataFrame({"prompt_id": [p["id"] for p in PROMPTS], "prompt": [p["prompt"] for p in PROMPTS],
                            "reference": [p.get("reference") for p in PROMPTS]})
    judged, human = strategy({"method": "human_vs_model"}), strategy({"method": "human_vs_model", "winner": "human"})
    assert judged.asks_judges and judged.estimate_judged(prompts) == ["sky", "egg"]
    assert not human.asks_judges and human.estimate_judged(prompts) == []
    # Answer, critique, revision, second critique per prompt, and an alternative where no reference stands in.
    assert len(strategy({"method": "critique_revise"}).estimate_calls(prompts)) == 3 * 5
    assert len(strategy({"method": "critique_revise", "alternative": "reference"}).estimate_calls(prompts)) == 3 * 4 + 1
