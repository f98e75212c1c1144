"""Graded AutoPM chains (``gold_corruption`` with ``steps``/``source``) and ALMoST's contrasts one by one
(``few_shot_contrast`` with ``contrast``), end to end through Dagster with the in-process fake as the models.

The fake editor drops the last sentence of what it is asked to edit (a subtle, bounded edit), except for the
sleep prompt's copies, which it replaces by an unrelated text (out of bounds). The fake answerer of the
few-shot prompts says how many demonstrations of which quality it saw, so each pair's construction is read
off its texts.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pref_pipeline.config import ConfigError, parse_config
from pref_pipeline.estimate import estimate_run
from pref_pipeline.generation import configured_strategies
from pref_pipeline.paths import Home
from pref_pipeline.specs import generator_label
from pref_pipeline.strategies.calls import sentences
from pref_pipeline.strategies.templates import data
from tests.fakes.in_process import FakeLLM
from tests.helpers import materialize, pipeline_config, read_jsonl, table_rows, write_prompts

SEASONS = ("The seasons come from the tilt of the Earth's axis towards or away from the Sun. "
           "The hemisphere tilted towards the Sun gets more direct light and longer days in that part of the year. "
           "That extra light and warmth makes summer in that hemisphere while the other one has its winter. "
           "Half a year later the tilt points the other way and the seasons of the two hemispheres swap. "
           "The distance between the Earth and the Sun changes a little over the year but hardly matters here.")
SLEEP = ("Keep a regular bedtime and wake-up time every single day of the week. "
         "Avoid coffee, tea and other caffeine after midday because it stays in the body for hours. "
         "Keep the bedroom dark, quiet and cool so that the body can settle down for the night. "
         "Stop using phones and other screens about an hour before you want to fall asleep.")
PROMPTS = [
    {"id": "q1", "category": "factual", "prompt": "What causes the seasons on Earth?", "reference": SEASONS},
    {"id": "q2", "category": "advice", "prompt": "How can I sleep better at night?", "reference": SLEEP},
    {"id": "q3", "category": "coding", "prompt": "What is a Python tuple?"},  # no reference
]
MODEL_ANSWER = ("A tuple is an ordered collection of values that cannot be changed after it is made. "
                "You write it with round brackets and commas between the values inside them. "
                "Because it cannot change, a tuple can be a key of a dictionary or a member of a set. "
                "Lists are the changeable cousins of tuples and use square brackets instead.")
UNRELATED = "Something else entirely about bananas and trains."
POOR = {d["poor"] for d in data("few_shot_demos.json")}


def question_of(prompt: str) -> str:
    return prompt.split("Question: ")[-1].split("\n")[0] if "Question: " in prompt else prompt


def answers(info) -> str:
    """The fake models (see the module docstring)."""
    prompt = info.prompt
    if "Copy the answer below" in prompt:
        text = prompt.split("Answer: ", 1)[1].strip()
        if "sleep" in question_of(prompt) and text != SLEEP:  # the sleep chain's second edit leaves the bounds
            return UNRELATED
        return text.rsplit(". ", 1)[0] + "."  # drop the last sentence
    if "Answer the last question in the style" in prompt:
        demo_answers = [part.split("\n")[0].strip() for part in prompt.split("Answer: ")[1:]]
        quality = "poor" if all(a in POOR for a in demo_answers) else "good"
        return f"After {len(demo_answers)} {quality} demonstrations, an answer to: {question_of(prompt)}"
    if info.model == "gen-70b":
        return f"A careful answer to '{question_of(prompt)}', with the reasons and an example."
    if "tuple" in prompt:
        return MODEL_ANSWER
    return f"A plain answer to '{question_of(prompt)}'."


@pytest.fixture
def fake() -> FakeLLM:
    return FakeLLM(generate_fn=answers)


def config_with(prompts_file: Path, strategies: list[dict]):
    return pipeline_config(prompts_file, strategies=strategies,
                           generators=[{"model": "openai:gen", "temperature": 0.5, "max_tokens": 200}],
                           judges=[{"model": "openai:judge"}])


def pairs_of(method: str) -> list[dict]:
    return [r for r in read_jsonl(Home.from_env().exports / "preference_pairs.jsonl")
            if r["generation_method"] == method]


def quarantined(strategy: str) -> list[tuple[str, str, str]]:
    """(prompt, reason, detail) of every quarantined comparison of ``strategy``."""
    comparisons = {c["comparison_id"]: c for c in table_rows("comparisons")}
    return sorted((q["prompt_id"], q["reason"], q["detail"]) for q in table_rows("quarantine")
                  if q["item_id"] in comparisons and comparisons[q["item_id"]]["strategy"] == strategy)


def check_graded(rows: list[dict], candidates: dict[str, dict], source_role: str = "gold") -> None:
    """Every pair of a chain: fewer edits chosen over more, its edit distance in its ``strategy_params``; the
    copies' notes hold their step and edit history, each copy derived from the one before."""
    for row in rows:
        chosen, rejected = candidates[row["chosen_candidate_id"]], candidates[row["rejected_candidate_id"]]
        step_of = {c["candidate_id"]: (json.loads(c["notes"])["step"] if c["role"] != source_role else 0)
                   for c in (chosen, rejected)}
        distance = step_of[rejected["candidate_id"]] - step_of[chosen["candidate_id"]]
        assert distance >= 1, row
        assert json.loads(row["strategy_params"])["edit_distance"] == distance
        assert row["label_source"] == "construction" and row["judge_model_id"] == "none"
        assert row["criteria"] == f"construction: {chosen['role']} over {rejected['role']}"
    for copy in (c for c in candidates.values() if c["strategy"] == "gold_corruption" and c["role"] != source_role):
        notes = json.loads(copy["notes"])
        assert [h["step"] for h in notes["history"]] == list(range(1, notes["step"] + 1))
        assert copy["role"] == ("corrupted" if notes["step"] == 1 else f"corrupted_{notes['step']}")
        parent = candidates[copy["parent_id"]]
        assert (json.loads(parent["notes"])["step"] if parent["role"] != source_role else 0) == notes["step"] - 1
        assert notes["history"][:-1] == (json.loads(parent["notes"])["history"] if parent["role"] != source_role
                                         else [])


def test_a_rule_chain_pairs_every_gap_and_ends_where_a_step_leaves_its_bounds(home, tmp_path, fake):
    """``steps: 3`` by rules: the seasons reference (5 sentences) gives 3 copies, 6 graded pairs; the sleep
    reference (4 sentences) loses half of what is left at step 3 (below ``min_length_ratio``): the chain ends
    there, its 3 earlier pairs kept."""
    config = config_with(write_prompts(tmp_path / "prompts.jsonl", PROMPTS), [
        {"method": "gold_corruption", "model": "none", "edits": ["delete"], "steps": 3, "min_length_ratio": 0.6}])
    assert materialize(config, fake=fake).success
    candidates = {c["candidate_id"]: c for c in table_rows("candidates")}
    rows = pairs_of("gold_corruption")
    by_prompt = {p: [r for r in rows if r["prompt_id"] == p] for p in ("q1", "q2")}
    assert len(by_prompt["q1"]) == 6 and len(by_prompt["q2"]) == 3
    check_graded(rows, candidates)
    # The reference is chosen over every copy; each distance is there as often as it should be.
    assert sum(candidates[r["chosen_candidate_id"]]["role"] == "gold" for r in by_prompt["q1"]) == 3
    assert sorted(json.loads(r["strategy_params"])["edit_distance"] for r in by_prompt["q1"]) == [1, 1, 1, 2, 2, 3]
    assert sorted(json.loads(r["strategy_params"])["edit_distance"] for r in by_prompt["q2"]) == [1, 1, 2]
    assert {json.loads(r["strategy_params"])["steps"] for r in rows} == {3}
    # Each copy is its predecessor with one more sentence dropped.
    for row in by_prompt["q1"]:
        distance = json.loads(row["strategy_params"])["edit_distance"]
        assert set(sentences(row["rejected"])) < set(sentences(row["chosen"]))
        assert len(sentences(row["chosen"])) - len(sentences(row["rejected"])) == distance
    # The sleep chain: step 3 out of bounds against step 2, quarantined with its step; no copy beyond it.
    (sleep, reason, detail), no_reference = quarantined("gold_corruption")
    assert (sleep, reason) == ("q2", "corruption_out_of_bounds") and no_reference[:2] == ("q3", "no_reference")
    assert detail.startswith("step 3: edited copy out of bounds") and "against copy 2; the chain ends there" in detail
    sleep_copies = sorted((json.loads(c["notes"])["step"], json.loads(c["notes"])["within_bounds"])
                          for c in candidates.values() if c["prompt_id"] == "q2" and c["role"] != "gold")
    assert sleep_copies == [(1, True), (2, True), (3, False)]
    assert {c["generator_model"] for c in candidates.values() if c["role"].startswith("corrupted")} == {"rules"}
    assert fake.count("/chat/completions") == 0  # rules: no call


def test_an_llm_chain_edits_each_copy_in_turn_and_stops_out_of_bounds(home, tmp_path, fake):
    """``steps: 3`` by a model: each edit is asked of the copy before it; the sleep chain's second edit is a
    different text (out of bounds): one pair, then quarantined."""
    config = config_with(write_prompts(tmp_path / "prompts.jsonl", PROMPTS), [
        {"method": "gold_corruption", "edits": ["delete", "insert"], "steps": 3}])
    assert materialize(config, fake=fake).success
    candidates = {c["candidate_id"]: c for c in table_rows("candidates")}
    rows = pairs_of("gold_corruption")
    assert sorted(r["prompt_id"] for r in rows) == ["q1"] * 6 + ["q2"]
    check_graded(rows, candidates)
    # The edits were asked in turn, each of the copy before: 3 for the seasons, 2 for sleep (none after the
    # copy out of bounds); the kind rotates along the chain.
    edits = [r["body"]["messages"][-1]["content"] for r in fake.requests if "Copy the answer below" in str(r["body"])]
    assert len(edits) == 3 + 2
    seasons = sorted((c for c in candidates.values() if c["prompt_id"] == "q1"), key=lambda c: c["candidate_index"])
    for before, after in zip(seasons, seasons[1:]):
        assert any(e.endswith("Answer: " + before["text"]) for e in edits)
        assert after["parent_id"] == before["candidate_id"] and after["generator_model"] == "openai:gen"
    kinds = [json.loads(c["notes"])["edit"] for c in seasons[1:]]
    assert set(kinds) == {"delete", "insert"} and kinds[0] != kinds[1]
    assert [h["edit"] for h in json.loads(seasons[-1]["notes"])["history"]] == kinds
    assert [q[:2] for q in quarantined("gold_corruption")] == [("q2", "corruption_out_of_bounds"),
                                                                ("q3", "no_reference")]
    assert quarantined("gold_corruption")[0][2].startswith("step 2: edited copy out of bounds")


def test_a_chain_from_a_models_answer(home, tmp_path, fake):
    """``source: model``: the model's answer is the chain's source (a prompt needs no reference); edited by rules."""
    config = config_with(write_prompts(tmp_path / "prompts.jsonl", PROMPTS), [
        {"method": "gold_corruption", "model": "none", "source": "model", "steps": 2, "edits": ["delete"],
         "max_prompts": 3}])
    assert materialize(config, fake=fake).success
    candidates = {c["candidate_id"]: c for c in table_rows("candidates")}
    rows = [r for r in pairs_of("gold_corruption") if r["prompt_id"] == "q3"]
    assert len(rows) == 3  # answer > copy 1, answer > copy 2, copy 1 > copy 2
    check_graded(rows, candidates, source_role="answer")
    answer = next(c for c in candidates.values() if c["role"] == "answer" and c["prompt_id"] == "q3")
    assert answer["text"] == MODEL_ANSWER and answer["generator_model"] == "openai:gen"
    assert {r["chosen"] for r in rows if candidates[r["chosen_candidate_id"]]["role"] == "answer"} == {MODEL_ANSWER}
    assert json.loads(rows[0]["strategy_params"])["source"] == "model"
    # The other prompts' answers are one sentence long: nothing to delete, which is quarantined; no reference needed.
    assert {q[:2] for q in quarantined("gold_corruption")} == {("q1", "edit_impossible"), ("q2", "edit_impossible")}
    assert fake.count("/chat/completions") == 3  # the answers only: the edits are rules


def test_almost_contrasts_side_by_side(home, tmp_path, fake):
    """ALMoST's heuristics one by one, combined in one run: more shots (k good vs 1 good), better demonstrations
    (k good vs k poor), both at once (today's default: k good vs 1 poor), and a larger model over a smaller one;
    each entry pairs only its own candidates and carries its own ``strategy_params``."""
    config = config_with(write_prompts(tmp_path / "prompts.jsonl", PROMPTS), [
        {"method": "few_shot_contrast", "contrast": "shots"},
        {"method": "few_shot_contrast", "contrast": "quality"},
        {"method": "few_shot_contrast"},
        {"method": "strong_vs_weak", "strong": {"model": "openai:gen-70b"}, "weak": {"model": "openai:gen-7b"}},
    ])
    assert materialize(config, fake=fake).success
    rows = pairs_of("few_shot_contrast")
    assert len(rows) == 9 and len({r["pair_id"] for r in rows}) == 9
    by_contrast: dict[str, list[dict]] = {}
    for row in rows:
        by_contrast.setdefault(json.loads(row["strategy_params"]).get("contrast", "both"), []).append(row)
    expected = {"shots": ("3 good", "1 good"), "quality": ("3 good", "3 poor"), "both": ("3 good", "1 poor")}
    for contrast, (chosen, rejected) in expected.items():
        assert len(by_contrast[contrast]) == 3
        for row in by_contrast[contrast]:
            assert row["chosen"].startswith(f"After {chosen} demonstrations")
            assert row["rejected"].startswith(f"After {rejected} demonstrations")
            assert row["label_source"] == "construction"
    # Today's default keeps today's parameters (no ``contrast`` key).
    assert "contrast" not in json.loads(by_contrast["both"][0]["strategy_params"])
    candidates = table_rows("candidates")
    assert len({c["candidate_id"] for c in candidates}) == len(candidates)
    roles = {(json.loads(c["strategy_params"]).get("contrast", "both"), c["role"]) for c in candidates
             if c["strategy"] == "few_shot_contrast"}
    assert roles == {("shots", "good_shots"), ("shots", "fewer_shots"), ("quality", "good_shots"),
                     ("quality", "poor_shots"), ("both", "good_shots"), ("both", "poor_shots")}
    size = pairs_of("strong_vs_weak")
    assert len(size) == 3 and {(r["chosen_model"], r["rejected_model"]) for r in size} == {
        ("openai:gen-70b", "openai:gen-7b")}


def test_two_entries_of_one_method_keep_their_own_pairs_and_no_pair_rows(home, tmp_path, fake):
    """Today's one-copy entry beside a graded one (and a repeat of the first, which runs once): each plans its own
    candidates; the prompt without a reference is quarantined once per entry, under ids of their own."""
    config = config_with(write_prompts(tmp_path / "prompts.jsonl", PROMPTS), [
        {"method": "gold_corruption", "model": "none"},
        {"method": "gold_corruption", "model": "none", "steps": 2},
        {"method": "gold_corruption", "model": "none"},
    ])
    assert len(configured_strategies(config)) == 2
    assert materialize(config, fake=fake).success
    rows = pairs_of("gold_corruption")
    one = [r for r in rows if "steps" not in json.loads(r["strategy_params"])]
    graded = [r for r in rows if json.loads(r["strategy_params"]).get("steps") == 2]
    assert len(one) == 2 and len(graded) == 6 and len(rows) == 8
    assert {(r["criteria"]) for r in one} == {"construction: gold over corrupted"}
    assert all("edit_distance" not in json.loads(r["strategy_params"]) for r in one)  # today's pairs as they were
    check_graded(graded, {c["candidate_id"]: c for c in table_rows("candidates")})
    no_reference = [c for c in table_rows("comparisons") if c["status"] == "no_reference"]
    assert len(no_reference) == 2 and len({c["comparison_id"] for c in no_reference}) == 2
    assert [q[:2] for q in quarantined("gold_corruption")] == [("q3", "no_reference")] * 2


def test_defaults_keep_todays_identity():
    """A new key at its default (given or not) leaves ``strategy_params`` (hashed into candidate ids and cache keys)
    as it was."""
    def params(entry: dict) -> str:
        config = parse_config({"generators": [{"model": "openai:gen"}], "strategies": [entry]})
        return configured_strategies(config)[0].strategy_params

    gold = params({"method": "gold_corruption"})
    assert params({"method": "gold_corruption", "steps": 1, "source": "reference"}) == gold
    assert set(json.loads(gold)) == {"method", "edits", "min_similarity", "max_similarity", "min_length_ratio",
                                     "max_length_ratio", "templates"}
    shots = params({"method": "few_shot_contrast"})
    assert params({"method": "few_shot_contrast", "contrast": "both"}) == shots
    assert set(json.loads(shots)) == {"method", "shots", "templates"}
    assert json.loads(params({"method": "gold_corruption", "steps": 2, "source": "model"})) == {
        **json.loads(gold), "steps": 2, "source": "model"}
    with pytest.raises(ConfigError, match="`shots` must be at least 2"):
        params({"method": "few_shot_contrast", "contrast": "shots", "shots": 1})


def test_estimate_counts_chains_answers_and_contrasts(home, tmp_path):
    """A dry run: an LLM chain counts every step of every prompt with a reference; ``source: model`` its answers
    (every prompt) and, by a model, their edits; the contrasts two answers a prompt each."""
    editor, answerer, other, few = ({"model": f"openai:{name}"} for name in ("editor", "answerer", "other", "few"))
    config = config_with(write_prompts(tmp_path / "prompts.jsonl", PROMPTS), [
        {"method": "gold_corruption", "model": editor, "steps": 3},
        {"method": "gold_corruption", "model": answerer, "source": "model", "steps": 2},
        {"method": "gold_corruption", "model": "none", "source": "model", "steps": 3},
        {"method": "gold_corruption", "model": "none", "steps": 3},
        {"method": "few_shot_contrast", "model": few, "contrast": "shots"},
        {"method": "few_shot_contrast", "model": few, "contrast": "quality"},
    ])
    estimate = estimate_run(config, Home.from_env())
    calls = {(r["step"], r["model"]): r["calls"] for r in estimate["rows"]}
    label = lambda spec: generator_label(parse_config({"generators": [spec]}).generators[0])  # noqa: E731
    assert calls[("candidates", label(editor))] == 2 * 3  # 2 prompts with a reference, 3 steps each
    assert calls[("candidates", label(answerer))] == 3 + 3 * 2  # an answer for every prompt, then 2 edits each
    assert calls[("candidates", "openai:gen[temperature=0.5]")] == 3  # answers edited by rules: the answers only
    assert calls[("candidates", label(few))] == 2 * 3 * 2
    assert not any(step == "judgments" for step, _ in calls)
