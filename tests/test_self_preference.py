"""Self-preference (a judge favouring its own model family's responses) and a judge that is the
same model as a generator, measured by the audit after a real materialize with the in-process fake."""

from __future__ import annotations

import json

import pandas as pd

from pref_pipeline.audit import compute_audit
from pref_pipeline.paths import Home
from pref_pipeline.store import read_table
from tests.fakes import default_judge
from tests.fakes.in_process import FakeLLM
from tests.helpers import materialize, pipeline_config


def own_family_first(info):
    """The gpt judge: whichever response a gpt generator wrote wins (the fake's text names its model)."""
    a, b = ("Answer (gpt-" in info.response_a), ("Answer (gpt-" in info.response_b)
    if a == b:
        return default_judge(info)
    return {"preference": "A" if a else "B", "confidence": 0.9, "reasoning": "This one reads best."}


def judges_by_model(info):
    return (own_family_first if info.body["model"] == "gpt-judge" else default_judge)(info)


def test_a_judge_favouring_its_own_family_is_flagged_and_a_judge_that_is_a_generator_warned(home, prompts_file):
    config = pipeline_config(prompts_file, candidates_per_prompt=3,
                             judges=[{"model": "openai:gpt-judge"}, {"model": "openai:mistral-judge"},
                                     {"model": "openai:llama-gen"}], judging={"aggregation": "majority"},
                             filters={"max_response_similarity": None, "min_distinct_word_ratio": None})
    config = config.model_copy(update={"generators": [
        config.generators[0].model_copy(update={"model": "openai:gpt-gen"}),
        config.generators[1].model_copy(update={"model": "openai:llama-gen"})]})
    result = materialize(config, fake=FakeLLM(judge_fn=judges_by_model))
    assert result.success
    home_paths = Home.from_env()
    database = home_paths
    candidates = read_table(database, "candidates")
    comparisons = read_table(database, "comparisons")
    assert set(candidates["generator_model"]) == {"openai:gpt-gen", "openai:llama-gen"}
    family = dict(zip(candidates["candidate_id"], candidates["generator_model"].str.startswith("openai:gpt")))
    mixed = sum(family[x] != family[y] for x, y in zip(comparisons["candidate_x_id"], comparisons["candidate_y_id"]))
    assert mixed >= 3

    audit = json.loads((home_paths.reports / "audit.json").read_text())
    by_model = {j["judge_model"]: j for j in audit["self_preference"]["by_judge"]}
    gpt = by_model["openai:gpt-judge"]
    assert gpt["family"] == "gpt" and gpt["own_family_generators"] == ["openai:gpt-gen"]
    assert gpt["n_own_vs_other"] == mixed and gpt["n_own_wins"] == mixed and gpt["n_other_wins"] == 0
    assert gpt["own_win_rate"] == 1.0 and gpt["own_win_ci95"][0] > 0.5 and gpt["flagged"] is True
    assert by_model["openai:mistral-judge"]["n_with_own_family"] == 0
    assert by_model["openai:mistral-judge"]["flagged"] is False and by_model["openai:mistral-judge"]["own_win_rate"] is None
    assert by_model["openai:llama-gen"]["family"] == "llama"

    assert audit["self_preference"]["judge_is_generator"] == ["openai:llama-gen"]
    flags = audit["flags"]
    assert any(f.startswith("self-preference: judge openai:gpt-judge picked its own family's (gpt)") for f in flags)
    assert not any("self-preference: judge openai:mistral-judge" in f for f in flags)
    assert any(f.startswith("judge openai:llama-gen is also a generator") for f in flags)
    assert not any("judge openai:gpt-judge is also a generator" in f for f in flags)
    markdown = (home_paths.reports / "audit.md").read_text()
    assert "## Self-preference" in markdown and "Same model as a generator: openai:llama-gen." in markdown
    # The batch's own audit (the pairs step) measures it too, from the step's candidates.
    batch = json.loads((home_paths.batch_reports("prompts") / "audit.json").read_text())
    assert batch["self_preference"]["by_judge"] == audit["self_preference"]["by_judge"]


def test_no_candidates_no_self_preference_figures():
    """An audit without the candidates (older callers) still has the key, with nothing in it."""
    judgments = pd.DataFrame({"judgment_id": ["j1", "j2"], "comparison_id": ["c", "c"], "order": ["xy", "yx"],
                              "judge_model": ["openai:gpt-j"] * 2, "judge_fingerprint": ["fp"] * 2,
                              "candidate_x_id": ["x"] * 2, "candidate_y_id": ["y"] * 2,
                              "preference": ["A", "B"], "preferred": ["x", "x"], "parse_status": ["ok"] * 2})
    audit = compute_audit(pd.DataFrame(columns=["chosen", "rejected"]), judgments,
                          pd.DataFrame(columns=["comparison_id", "candidate_x_id", "candidate_y_id", "status"]))
    assert audit["self_preference"] == {"by_judge": [], "judge_is_generator": []}
    assert not any("self-preference" in f or "also a generator" in f for f in audit["flags"])
