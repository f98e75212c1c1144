"""The CLI's contract (exit codes, what it prints) and the code location that dagster/dg load."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from pref_pipeline.cli import main
from pref_pipeline.config import load_config
from pref_pipeline.paths import Home
from tests.fakes import FakeLLMServer
from tests.helpers import BIN, ROOT, two_generators, write_config_file

ASSET_KEYS = {"prompts", "candidates", "judgments", "preference_pairs", "comparisons", "preference_pairs_export",
              "preference_dataset", "batch_audit", "audit_report", "quarantine", "judgment_history", "rejected_prompts",
              "judge_calibration", "batch_published"}


def write_config(path: Path, base_url: str, prompts_file: Path, **generator) -> Path:
    """Two generators (``generator``: more keys for both) and one judge on the fake server."""
    return write_config_file(path, [prompts_file.name], base_url, candidates_per_prompt=2,
                             generators=two_generators((0.3, 0.9), **generator),
                             judges=[{"model": "openai:judge"}])


def test_run_prints_where_the_dataset_and_report_are(home, prompts_file, capsys):
    with FakeLLMServer() as server:
        config = write_config(prompts_file.parent / "pipeline.yaml", server.openai_base_url, prompts_file)
        code = main(["run", "--config", str(config)])
    out = capsys.readouterr().out
    assert code == 0
    exported = Home.from_env().exports / "preference_pairs.jsonl"
    assert f"dataset: {exported}" in out
    assert str(Home.from_env().reports / "audit.md") in out
    audit = json.loads((Home.from_env().reports / "audit.json").read_text())
    assert len(exported.read_text().splitlines()) == audit["pairs"]["kept"] > 0


def test_bad_config_exits_2_naming_the_key(home, tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("generators:\n  - model: openai:x\n    temprature: 0.5\n")
    assert main(["run", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "generators[0].temprature" in err and "unknown key" in err
    assert not (Home.from_env().exports / "preference_pairs.jsonl").exists()


def test_malformed_prompt_file_exits_2_naming_the_line_before_any_call(home, tmp_path, capsys):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "fine"}\n{"prompt": "broken"\n', encoding="utf-8")
    config = tmp_path / "pipeline.yaml"
    config.write_text(f"prompts:\n  - path: {prompts}\n"
                      "generators:\n  - model: openai:gen\n    base_url: http://127.0.0.1:9/v1\n"
                      "judges:\n  - model: openai:judge\n    base_url: http://127.0.0.1:9/v1\n")
    for command in ("run", "estimate"):
        assert main([command, "--config", str(config)]) == 2
        err = capsys.readouterr().err
        assert f"{prompts}:2" in err or "line 2" in err, err
    assert not Home.from_env().tables.exists()  # nothing ran


def test_failing_gate_exits_1(home, prompts_file, capsys):
    with FakeLLMServer(judge_fn=lambda info: "no idea") as server:
        config = write_config(prompts_file.parent / "pipeline.yaml", server.openai_base_url, prompts_file)
        assert main(["run", "--config", str(config)]) == 1
    assert "failed check: preference_pairs:preference_pairs_gate" in capsys.readouterr().err


def test_a_blocked_batch_has_its_audit_and_says_why(home, prompts_file, capsys):
    """A position-biased judge (first shown always wins): no pair is consistent, the gate blocks publishing; the
    message says so in the user's terms and the batch's own audit is there anyway."""
    first_wins = lambda info: {"preference": "A", "confidence": 0.9, "reasoning": "The first."}  # noqa: E731
    with FakeLLMServer(judge_fn=first_wins) as server:
        config = write_config(prompts_file.parent / "pipeline.yaml", server.openai_base_url, prompts_file)
        assert main(["run", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert "pairs 0 < gates.min_pairs 1" in err
    assert "position consistency 0 %: every verdict flipped with the order" in err
    report = Home.from_env().reports / "batches" / "prompts"
    assert f"this batch's audit (made whether or not it was published): {report / 'audit.md'}" in err
    audit = json.loads((report / "audit.json").read_text())
    assert audit["position_bias"]["consistency_rate"] == 0.0 and audit["pairs"]["kept"] == 0
    assert audit["flags"][0].startswith("batch 'prompts' not published: pairs 0 < gates.min_pairs 1")
    assert not (Home.from_env().exports / "preference_pairs.jsonl").exists()
    rollup = json.loads((Home.from_env().reports / "audit.json").read_text())  # written though no batch published
    assert rollup["batches"]["by_batch"] == [audit["batches"]["by_batch"][0]]
    assert rollup["batches"]["by_batch"][0]["status"] == "blocked"


def test_a_dead_endpoint_is_named_before_anything_is_spent(home, prompts_file, capsys):
    config = write_config(prompts_file.parent / "pipeline.yaml", "http://127.0.0.1:9/v1", prompts_file)
    assert main(["run", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "http://127.0.0.1:9/v1" in err and "Traceback" not in err
    assert not Home.from_env().tables.exists()


def test_a_step_failure_is_summed_up_by_its_root_cause_and_endpoint(home, prompts_file, capsys):
    """An endpoint that fails every call after the preflight: the summary gives the SDK's error and where, in one
    line, not Dagster's wrapper and 120 lines of log."""
    with FakeLLMServer(fail_plan=[503] * 200) as server:
        config = write_config(prompts_file.parent / "pipeline.yaml", server.openai_base_url, prompts_file,
                              max_retries=0)
        assert main(["run", "--config", str(config)]) == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("  candidates:")]
    assert len(lines) == 1, lines
    assert f"at {server.openai_base_url}" in lines[0] and "Error occurred while executing" not in lines[0]


def test_code_location_loads_every_asset(home):
    from pref_pipeline.definitions import defs

    assert not home.exists()  # importing the code location reads no file and creates no folder
    keys = {key.to_user_string() for key in defs().resolve_asset_graph().get_all_asset_keys()}
    assert keys == ASSET_KEYS


def test_tables_and_files_land_in_the_home_the_definitions_are_given(home, prompts_file, tmp_path):
    """build_definitions(config, home) puts everything a run writes under that home, whatever
    PREF_PIPELINE_HOME says (the resources carry the home; nothing reads the environment)."""
    import dagster as dg

    from pref_pipeline.definitions import build_definitions

    given = Home.at(tmp_path / "given-home")
    with FakeLLMServer() as server:
        config = load_config(write_config(prompts_file.parent / "pipeline.yaml", server.openai_base_url, prompts_file))
        definitions = build_definitions(config, given)
        instance = dg.DagsterInstance.ephemeral()
        instance.add_dynamic_partitions("prompt_batches", ["prompts"])
        result = definitions.resolve_job_def("preference_pipeline").execute_in_process(
            instance=instance, partition_key="prompts", raise_on_error=False)
    assert result.success
    for path in (given.tables / "preference_pairs", given.exports / "preference_pairs.jsonl",
                 given.exports / "batches" / "prompts" / "preference_pairs.jsonl", given.reports / "audit.json",
                 given.reports / "batches" / "prompts" / "audit.json"):
        assert path.exists(), path
    assert any(given.cache.iterdir())  # the response cache too
    assert not home.exists()  # PREF_PIPELINE_HOME (the fixture's) was never touched


@pytest.mark.parametrize("command", [
    [str(BIN / "dg"), "check", "defs"],
    [str(BIN / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
])
def test_dg_and_dagster_load_the_code_location(command, home, tmp_path):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


def test_a_bad_configuration_is_the_code_locations_error_without_stack_frames(home, tmp_path, monkeypatch):
    """The error the UI shows for the code location (what the gRPC server serializes) is the configuration's
    message, naming the file and key with its "did you mean", and no frames (tests/test_ui.py reads it over
    GraphQL from a real `dagster dev`)."""
    from dagster._utils.error import serializable_error_info_from_exc_info

    from pref_pipeline.definitions import defs

    config = tmp_path / "bad.yaml"
    config.write_text("generators:\n  - model: openai:x\n    temprature: 0.5\n")
    monkeypatch.setenv("PREF_PIPELINE_CONFIG", str(config))
    with pytest.raises(Exception) as raised:
        defs()
    shown = serializable_error_info_from_exc_info((raised.type, raised.value, raised.tb))
    assert shown.stack == [] and shown.cause is None and shown.cls_name == "ConfigError"
    assert f"invalid configuration in {config}" in shown.message
    assert "generators[0].temprature: unknown key; did you mean `temperature`?" in shown.message
    assert "PREF_PIPELINE_CONFIG" in shown.message


def test_estimate_reads_the_configuration_the_environment_names(home, prompts_file, capsys, monkeypatch):
    """Without --config, `estimate` (like `run` and the code location) reads PREF_PIPELINE_CONFIG rather than
    estimating the embedded default; --config still wins."""
    config = write_config(prompts_file.parent / "pipeline.yaml", "http://127.0.0.1:9/v1", prompts_file)
    monkeypatch.setenv("PREF_PIPELINE_CONFIG", str(config))
    assert main(["estimate", "--json"]) == 0
    captured = capsys.readouterr()
    assert "openai:judge" in captured.out and "local:smollm2-135m" not in captured.out
    assert f"configuration {config} (from PREF_PIPELINE_CONFIG" in captured.err
    default = prompts_file.parent / "default.yaml"
    default.write_text("{}\n")
    assert main(["estimate", "--json", "--config", str(default)]) == 0
    assert "openai:judge" not in capsys.readouterr().out
