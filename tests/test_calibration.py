"""Agreement with human labels on a tiny labelled file whose answer is known, by category and
source; the shipped sets load (hh-rlhf dialogues included)."""

from __future__ import annotations

import gzip
import json

import pytest

from pref_pipeline.cli import main
from pref_pipeline.config import parse_config
from pref_pipeline.known_answers import DEFAULT_SETS, load_known_answers, measure
from tests.fakes import FakeLLMServer
from tests.fakes.in_process import FakeLLM
from tests.helpers import calls, resources

SHORT, LONG = "Short answer.", "A much longer answer that explains the point in detail."


def record(category: str, human_prefers_longer: bool, n: int, longer_first: bool) -> dict:
    outputs = [LONG + f" ({n})", SHORT + f" ({n})"] if longer_first else [SHORT + f" ({n})", LONG + f" ({n})"]
    longer_label = 1 if longer_first else 2
    return {"input": f"Question {n}?", "output_1": outputs[0], "output_2": outputs[1], "category": category,
            "label": longer_label if human_prefers_longer else 3 - longer_label}


def test_agreement_on_a_tiny_labelled_file_whose_answer_is_known(home, tmp_path):
    # The fake judge prefers the longer response. People agree with it on both "math" records and on one
    # of the two "chat" records: 3 of 4 overall, chat the most divergent category.
    records = [record("math", True, 1, True), record("math", True, 2, False),
               record("chat", True, 3, False), record("chat", False, 4, True)]
    path = tmp_path / "mine.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("".join(json.dumps(r) + "\n" for r in records))
    known = load_known_answers(path)
    assert set(known.prompts["category"]) == {"math", "chat"} and set(known.prompts["source"]) == {"mine"}
    config = parse_config({"judges": [{"model": "openai:judge-1"}]})
    figures = measure(config, known, calls(FakeLLM()))
    human = figures["human"]
    assert (human["n_compared"], human["agreement_rate"]) == (4, 0.75)
    assert [(c["category"], c["n"], c["agreement_rate"]) for c in human["by_category"]] == [
        ("chat", 2, 0.5), ("math", 2, 1.0)]
    assert human["most_divergent_category"] == "chat"
    assert [(s["source"], s["agreement_rate"]) for s in human["by_source"]] == [("mine", 0.75)]
    assert figures["length_bias_of_human_labels"] == 0.75


def test_known_answer_cli_reports_by_category(home, tmp_path, capsys):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps([record("math", True, 1, True), record("chat", False, 2, True)]))
    with FakeLLMServer() as server:
        config = tmp_path / "config.yaml"
        config.write_text(f"judges:\n  - model: openai:judge-1\n    base_url: {server.openai_base_url}\n")
        assert main(["review", "known-answer", "--set", str(path), "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "judge's pair agrees with people on 0.5 of 2" in out and "most divergent category: chat" in out


@pytest.mark.parametrize("path", DEFAULT_SETS, ids=lambda p: p.name)
def test_shipped_sets_load(path):
    known = load_known_answers(path, limit=20)
    assert len(known.prompts) >= 15 and len(known.candidates) == 2 * len(known.prompts)
    if "hh-rlhf" in path.name:  # split at the last assistant turn; the human's choice is not always first
        assert all(p.rstrip().endswith(("?", ".", "!")) or "Human:" in p for p in known.prompts["prompt"])
        firsts = [known.winners[p] == c for p, c in known.candidates.groupby("prompt_id")["candidate_id"].first().items()]
        assert 0 < sum(firsts) < len(firsts)


def test_judge_calibration_asset_materializes_with_agreement_metadata(home, tmp_path):
    """The opt-in asset: the same figures as the CLI, as metadata (overall and by category), through Dagster;
    not part of the preference_pipeline job."""

    from assets.calibration import build_calibration_job
    from pref_pipeline.definitions import build_definitions
    from pref_pipeline.paths import Home

    path = tmp_path / "mine.json"
    path.write_text(json.dumps([record("math", True, 1, True), record("math", True, 2, False),
                                record("chat", True, 3, False), record("chat", False, 4, True)]))
    fake = FakeLLM()
    config = parse_config({"judges": [{"model": "openai:judge-1"}]})
    result = build_calibration_job(config).execute_in_process(
        resources=resources(fake), run_config={"ops": {"judge_calibration": {"config": {"sets": [str(path)]}}}})
    assert result.success
    assert fake.count("/chat/completions") == 8  # 4 labelled pairs x both orders x 1 judge
    [materialization] = result.asset_materializations_for_node("judge_calibration")
    metadata = {key: value.value for key, value in materialization.metadata.items()}
    assert metadata["agreement.overall"] == 0.75 and metadata["agreement.n_compared"] == 4
    assert [(c["category"], c["n"], c["agreement_rate"]) for c in metadata["agreement.by_category"]] == [
        ("chat", 2, 0.5), ("math", 2, 1.0)]
    assert metadata["most_divergent_category"] == "chat"
    assert metadata["by_set"]["mine"]["agreement_rate"] == 0.75
    report = json.loads((Home.from_env().reports / "known_answers.json").read_text())
    assert report["mine"]["human"]["agreement_rate"] == 0.75

    definitions = build_definitions(config, Home.from_env())
    pipeline = definitions.resolve_job_def("preference_pipeline")
    assert "judge_calibration" not in {k.to_user_string() for k in pipeline.asset_layer.executable_asset_keys}
    assert definitions.resolve_job_def("calibrate_judges") is not None


def test_judge_calibration_refuses_to_spend_without_named_sets(home, tmp_path):
    """``sets`` is required: without run config Dagster refuses the run before it starts; an empty list or a
    missing file fails with a clear message; either way no LLM call is made. And the graph cannot materialize the
    asset ("Materialize all" leaves it out): it is declared without a function, recorded by the job."""
    import dagster as dg

    from assets.calibration import build_calibration_job
    from pref_pipeline.definitions import build_definitions
    from pref_pipeline.paths import Home

    fake = FakeLLM()
    config = parse_config({"judges": [{"model": "openai:judge-1"}]})
    job = build_calibration_job(config)
    with pytest.raises(dg.DagsterInvalidConfigError, match="sets"):
        job.execute_in_process(resources=resources(fake))
    for sets, message in (([], "runs only on sets named in its run config"),
                          ([str(tmp_path / "absent.json")], "no such known-answer file")):
        result = job.execute_in_process(resources=resources(fake), raise_on_error=False,
                                        run_config={"ops": {"judge_calibration": {"config": {"sets": sets}}}})
        [failure] = [e for e in result.all_events if e.is_step_failure]
        assert message in failure.step_failure_data.user_failure_data.description
    assert fake.requests == []
    graph = build_definitions(config, Home.from_env()).resolve_asset_graph()
    assert not graph.get(dg.AssetKey("judge_calibration")).is_executable
