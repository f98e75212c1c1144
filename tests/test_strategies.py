"""Every generation strategy end to end through Dagster, the models answered by the in-process fake.

The fake generator answers by what it is asked (``role_aware``): the strong model, good demonstrations,
a revision and a principle to follow give long careful answers; the weak model, a poor demonstration and
an instruction to violate a principle give short ones; the fake judge prefers the longer response. So the
winner of every pair is known and checked, with the metadata that says how it was made.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pref_pipeline.config import ConfigError, load_config, parse_config
from pref_pipeline.estimate import estimate_run
from pref_pipeline.paths import Home
from tests.fakes import FakeLLMServer
from tests.fakes.in_process import FakeLLM
from tests.helpers import materialize, pipeline_config, read_jsonl, table_rows, write_prompts

PROMPTS = [
    {"id": "q1", "category": "factual", "prompt": "What causes the seasons on Earth?",
     "reference": "The seasons come from the tilt of the Earth's axis. The hemisphere tilted towards the Sun gets "
                  "more direct light and longer days. That makes summer there. The other hemisphere has winter."},
    {"id": "q2", "category": "advice", "prompt": "How can I sleep better at night?",
     "reference": "Keep a regular bedtime every day. Avoid caffeine after midday. Keep the bedroom dark and cool. "
                  "Stop using screens an hour before bed."},
    {"id": "q3", "category": "coding", "prompt": "What is a Python tuple?"},  # no reference
]
LONG = "A careful and complete answer that explains the reasons step by step, with concrete details and examples."
SHORT = "Dunno, maybe."


def role_aware(info) -> str:
    """Answers that depend on what the strategy asked (see the module docstring)."""
    prompt, system = info.prompt, info.system or ""
    question = prompt.split("Question: ")[-1].split("\n")[0] if "Question: " in prompt else prompt
    if "Does the response still have the problem" in prompt:
        return "YES, it still misses the point." if "still-flawed" in question else "NO, the flaw is fixed."
    if "Point out the most important way" in prompt:
        return f"Critique of '{question}': it is too short and gives no reasons."
    if "Rewrite the response" in prompt:
        if "identical" in question:  # the revision is the original unchanged
            return prompt.split("Response: ")[1].split("\n")[0]
        return f"Revised: {LONG}"
    if "Copy the answer below" in prompt:
        reference = prompt.split("Answer: ")[-1]
        if "seasons" in question:  # a subtle edit: one sentence dropped
            return reference.rsplit(". ", 1)[0] + "."
        return "Something else entirely about bananas and trains."  # a different text: out of bounds
    if "Answer the last question in the style" in prompt:
        return LONG if prompt.count("Question: ") > 2 else SHORT
    if "careful, knowledgeable" in system or "Answer the question directly and completely" in system:
        return f"Strong: {LONG}"
    if "sloppy" in system:
        return SHORT
    if system.startswith("You are an assistant."):
        return SHORT if any(w in system for w in ("unhelpful", "dismissive", "not true")) else f"Following: {LONG}"
    if info.model == "weak-but-verbose":
        return f"Weak but long: {LONG} {LONG}"
    if info.temperature == 0.9:  # sampling's second generator: a different, longer answer
        return f"Another answer to '{question}', with several more words in it than the first one has."
    return f"Original answer to '{question}'."  # a plain answer (critique_revise's original, sampling)


@pytest.fixture
def fake() -> FakeLLM:
    return FakeLLM(generate_fn=role_aware)


def config_with(prompts_file: Path, strategies: list[dict], base_url: str | None = None, **extra):
    return pipeline_config(prompts_file, base_url, strategies=strategies,
                           generators=[{"model": "openai:gen", "temperature": 0.5, "max_tokens": 200},
                                       {"model": "openai:gen", "temperature": 0.9, "max_tokens": 200}],
                           judges=[{"model": "openai:judge"}], **extra)


def quarantine_reasons(strategy: str | None = None) -> dict[str, int]:
    comparisons = {c["comparison_id"]: c for c in table_rows("comparisons")}
    out: dict[str, int] = {}
    for q in table_rows("quarantine"):
        c = comparisons.get(q["item_id"])
        if strategy is None or (c is not None and c["strategy"] == strategy):
            out[q["reason"]] = out.get(q["reason"], 0) + 1
    return out


def audit_strategies() -> dict[str, dict]:
    audit = json.loads((Home.from_env().reports / "batches" / "prompts" / "audit.json").read_text())
    return {s["strategy"]: s for s in audit["strategies"]}


def test_every_strategy_end_to_end(home, tmp_path, fake):
    config = config_with(write_prompts(tmp_path / "prompts.jsonl", PROMPTS), [
        {"method": "sampling"},
        {"method": "strong_vs_weak", "confirm": True},
        {"method": "few_shot_contrast", "shots": 3},
        {"method": "critique_revise", "principles": ["Answer with reasons."]},
        {"method": "gold_corruption", "model": "none"},
        {"method": "hhh_contrast"},
        {"method": "human_vs_model"},
    ], candidates_per_prompt=2)
    result = materialize(config, fake=fake)
    assert result.success
    rows = read_jsonl(Home.from_env().exports / "preference_pairs.jsonl")
    candidates = {c["candidate_id"]: c for c in table_rows("candidates")}
    by_method: dict[str, list[dict]] = {}
    for row in rows:
        by_method.setdefault(row["generation_method"], []).append(row)
    assert set(by_method) == {"sampling", "strong_vs_weak", "few_shot_contrast", "critique_revise", "gold_corruption",
                              "hhh_contrast", "human_vs_model"}

    def roles(method: str) -> set[tuple[str, str]]:
        return {(candidates[r["chosen_candidate_id"]]["role"], candidates[r["rejected_candidate_id"]]["role"])
                for r in by_method[method]}

    # Who is chosen, by construction.
    assert roles("strong_vs_weak") == {("strong", "weak")} and len(by_method["strong_vs_weak"]) == 3
    assert roles("few_shot_contrast") == {("good_shots", "poor_shots")} and len(by_method["few_shot_contrast"]) == 3
    assert roles("critique_revise") == {("revised", "original")} and len(by_method["critique_revise"]) == 3
    assert roles("hhh_contrast") == {("follow", "violate")} and len(by_method["hhh_contrast"]) == 3
    assert roles("gold_corruption") == {("gold", "corrupted")}
    assert {r["prompt_id"] for r in by_method["gold_corruption"]} == {"q1", "q2"}  # q3 has no reference
    for row in by_method["gold_corruption"]:
        assert row["chosen"] == next(p["reference"] for p in PROMPTS if p["id"] == row["prompt_id"])
        copy = candidates[row["rejected_candidate_id"]]
        assert copy["parent_id"] == row["chosen_candidate_id"] and copy["generator_model"] == "rules"
        assert json.loads(copy["notes"])["edit"] in {"delete", "substitute", "insert"}
    # human_vs_model is judged: the fake judge prefers the longer text.
    for row in by_method["human_vs_model"]:
        assert row["label_source"] == "judge" and len(row["chosen"]) > len(row["rejected"])
        assert {candidates[row["chosen_candidate_id"]]["role"], candidates[row["rejected_candidate_id"]]["role"]} == {
            "human", "model"}
    # Where each label came from, and the strategy's parameters with every row.
    assert {r["label_source"] for r in by_method["strong_vs_weak"]} == {"construction+judge"}
    for method in ("few_shot_contrast", "critique_revise", "gold_corruption", "hhh_contrast"):
        assert {r["label_source"] for r in by_method[method]} == {"construction"}
        assert {r["judge_model_id"] for r in by_method[method]} == {"none"}
    for method, method_rows in by_method.items():
        for row in method_rows:
            assert json.loads(row["strategy_params"])["method"] == method
    assert json.loads(by_method["few_shot_contrast"][0]["strategy_params"])["shots"] == 3
    # The critique is kept with the revision.
    revised = [c for c in candidates.values() if c["role"] == "revised"]
    assert len(revised) == 3
    for c in revised:
        notes = json.loads(c["notes"])
        assert notes["critique"].startswith("Critique of") and notes["still_flawed"] is False
        assert candidates[c["parent_id"]]["role"] == "original"
    # No reference: no pair, quarantined with its reason.
    assert quarantine_reasons("gold_corruption") == {"no_reference": 1}
    assert quarantine_reasons("human_vs_model") == {"no_reference": 1}
    # Only the judged strategies were shown to the judge: sampling (1 comparison per prompt), strong_vs_weak
    # (3) and human_vs_model (2), both orders each.
    assert len(table_rows("judgments")) == 2 * (3 + 3 + 2)
    # The audit's per-strategy table.
    audit = audit_strategies()
    assert audit["strong_vs_weak"]["judge_agreement"]["rate"] == 1.0
    assert audit["strong_vs_weak"]["judge_agreement"]["agree"] == 3
    assert audit["gold_corruption"]["pairs_kept"] == 2 and audit["gold_corruption"]["by_construction"] == 2
    assert audit["gold_corruption"]["no_pair"] == {"no_reference": 1}
    assert audit["hhh_contrast"]["judge_agreement"] is None
    pairs_meta = result.asset_materializations_for_node("preference_pairs")[0].metadata
    assert pairs_meta["by_generation_method"].value["critique_revise"] == 3


def test_a_weak_model_that_wins_under_confirm_is_quarantined(home, tmp_path, fake):
    """The judge prefers the weak model's (longer) answer: no pair, reason judge_disagrees_with_construction."""
    config = config_with(write_prompts(tmp_path / "prompts.jsonl", PROMPTS), [{
        "method": "strong_vs_weak", "confirm": True,
        "strong": {"model": "openai:strong", "system_prompt": "Answer briefly and sloppy."},
        "weak": {"model": "openai:weak-but-verbose"}}], gates={"min_pairs": 0})
    assert materialize(config, fake=fake).success
    assert not read_jsonl(Home.from_env().exports / "preference_pairs.jsonl")
    assert quarantine_reasons("strong_vs_weak") == {"judge_disagrees_with_construction": 3}
    agreement = audit_strategies()["strong_vs_weak"]["judge_agreement"]
    assert agreement == {"judged": 3, "agree": 0, "disagree": 3, "no_verdict": 0, "rate": 0.0,
                         "ci95": agreement["ci95"]}
    assert any("agree with the construction in only" in f
               for f in json.loads((Home.from_env().reports / "batches" / "prompts" / "audit.json").read_text())[
                   "flags"]) is False  # fewer than 5 verdicts: no flag yet


def test_critique_revise_edge_cases(home, tmp_path, fake):
    """A revision identical to the original gives no pair; a flaw the second critique still finds pairs a
    separately generated answer against the flawed original."""
    prompts = [{"id": "same", "prompt": "An identical question?"},
               {"id": "flawed", "prompt": "A still-flawed question?"},
               {"id": "fine", "prompt": "A fine question?"}]
    config = config_with(write_prompts(tmp_path / "prompts.jsonl", prompts), [{"method": "critique_revise"}])
    assert materialize(config, fake=fake).success
    rows = {r["prompt_id"]: r for r in read_jsonl(Home.from_env().exports / "preference_pairs.jsonl")}
    candidates = {c["candidate_id"]: c for c in table_rows("candidates")}
    assert set(rows) == {"flawed", "fine"}
    assert candidates[rows["fine"]["chosen_candidate_id"]]["role"] == "revised"
    assert candidates[rows["flawed"]["chosen_candidate_id"]]["role"] == "alternative"
    assert candidates[rows["flawed"]["rejected_candidate_id"]]["role"] == "original"
    flawed_revision = next(c for c in candidates.values() if c["prompt_id"] == "flawed" and c["role"] == "revised")
    assert json.loads(flawed_revision["notes"])["still_flawed"] is True
    assert quarantine_reasons("critique_revise") == {"revision_identical": 1}
    # Built-in constitution when no principles are given.
    assert json.loads(flawed_revision["notes"])["principle"]


def test_gold_corruption_by_an_llm_keeps_to_its_bounds(home, tmp_path, fake):
    """q1's edit drops a sentence (a subtle flaw: kept); q2's edit is a different text (out of bounds: no pair)."""
    config = config_with(write_prompts(tmp_path / "prompts.jsonl", PROMPTS), [
        {"method": "gold_corruption", "edits": ["delete"]}])
    assert materialize(config, fake=fake).success
    rows = read_jsonl(Home.from_env().exports / "preference_pairs.jsonl")
    assert [(r["prompt_id"], r["generation_method"], r["label_source"]) for r in rows] == [
        ("q1", "gold_corruption", "construction")]
    assert quarantine_reasons("gold_corruption") == {"corruption_out_of_bounds": 1, "no_reference": 1}
    copies = [c for c in table_rows("candidates") if c["role"] == "corrupted"]
    assert {c["generator_model"] for c in copies} == {"openai:gen"}
    assert {json.loads(c["notes"])["within_bounds"] for c in copies} == {True, False}


@pytest.mark.parametrize("text, message", [
    ("strategies:\n  - method: critque_revise\n", "strategies[0].method: unknown method 'critque_revise'; did you mean "
                                                  "`critique_revise`?"),
    ("strategies:\n  - method: gold_corruption\n    edtis: [delete]\n",
     "strategies[0].edtis: unknown key; did you mean `edits`?"),
    ("strategies:\n  - method: hhh_contrast\n    model: none\n", "`model: none` (edits made by rules, no LLM) is only "
                                                                "for gold_corruption"),
    ("strategies:\n  - method: strong_vs_weak\n    strong: {model: openai:a, temprature: 1}\n",
     "strategies[0].strong.temprature: unknown key; did you mean `temperature`?"),
])
def test_unknown_methods_and_keys_fail_before_any_call(home, tmp_path, fake, text, message):
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert message in str(error.value)
    assert fake.count("/chat/completions") == 0


def test_defaults():
    """The embedded default runs strategies that give signal on a small model; a config without
    ``strategies`` keeps today's behaviour (sampling)."""
    assert [s.method for s in load_config(None).strategies] == [
        "sampling", "gold_corruption", "critique_revise", "strong_vs_weak"]
    assert load_config(None).strategies[1].model == "none"
    assert [s.method for s in parse_config({"generators": [{"model": "openai:x"}]}).strategies] == ["sampling"]


def test_estimate_counts_every_strategy(home, tmp_path):
    """A dry run: the models are on the fake server, and it is asked nothing."""
    with FakeLLMServer(generate_fn=role_aware) as server:
        config = config_with(write_prompts(tmp_path / "prompts.jsonl", PROMPTS), [
            {"method": "strong_vs_weak", "confirm": True}, {"method": "critique_revise"},
            {"method": "gold_corruption", "model": "none"}, {"method": "human_vs_model"}], server.openai_base_url)
        estimate = estimate_run(config, Home.from_env())
    calls = {(r["step"], r["model"]): r["calls"] for r in estimate["rows"]}
    # strong + weak per prompt; critique_revise 5 per prompt (alternative counted as an upper bound);
    # human_vs_model 1 per prompt with a reference; rules make no call.
    assert calls[("candidates", "strong")] == 3 and calls[("candidates", "weak")] == 3
    assert calls[("candidates", "openai:gen[temperature=0.5]")] == 3 * 5 + 2
    # Judged: strong_vs_weak (3 prompts) and human_vs_model (2), both orders.
    assert calls[("judgments", "openai:judge")] == 2 * (3 + 2)
    assert server.count("/chat/completions") == 0
