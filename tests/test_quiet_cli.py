"""``pref-pipeline run`` in its own process, as a person at a terminal sees it: its progress and summary only.

Dagster's event log goes to ``<home>/logs/run-<time>.log`` (the path is printed), ``--verbose`` streams it too. A
gate that blocks a batch is an expected outcome: no stack trace, no telemetry banner, exit code 1, the batch
named with why, and the audit over every batch written anyway.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.cli_runs import cli_env, prompt_rows, run_cli, write_config
from tests.helpers import BIN, ROOT, write_prompts
from tests.fakes import FakeLLMServer

NOISE = ("Traceback", "Stack Trace", "Welcome to Dagster", "Telemetry:", "dagster - DEBUG", "dagster - ERROR",
         "No dagster instance configuration file")


def first_shown_wins(info):
    """A position-biased judge: the response shown first always wins, so no verdict survives both orders."""
    return {"preference": "A", "confidence": 0.9, "reasoning": "The first one."}


def blocked_setup(tmp_path: Path, server: FakeLLMServer) -> Path:
    prompts = write_prompts(tmp_path / "prompts.jsonl", prompt_rows(3))
    return write_config(tmp_path / "pipeline.yaml", server.openai_base_url, [prompts.name])


def log_path(stdout: str) -> Path:
    [path] = re.findall(r"^log: +(\S+)$", stdout, flags=re.MULTILINE)
    return Path(path)


@pytest.mark.parametrize("dagster_home", [False, True], ids=["throwaway_instance", "new_dagster_home"])
def test_a_blocked_batch_is_reported_quietly_with_its_cause_and_the_rollup_audit(tmp_path, dagster_home):
    home = tmp_path / "home"
    extra = {"DAGSTER_HOME": str(tmp_path / "dagster_home")} if dagster_home else {}
    with FakeLLMServer(judge_fn=first_shown_wins) as server:
        result = run_cli(blocked_setup(tmp_path, server), cli_env(home, **extra))
    shown = result.stdout + result.stderr
    assert result.returncode == 1, shown[-3000:]
    assert not [noise for noise in NOISE if noise in shown], shown
    # Which batch, and why, in the user's terms; where its own audit is.
    assert "batch 'prompts': BLOCKED by a gate, not published" in result.stderr
    assert "pairs 0 < gates.min_pairs 1" in result.stderr and "position consistency 0 %" in result.stderr
    assert str(home / "reports" / "batches" / "prompts" / "audit.md") in result.stderr
    assert "1 of 1 batch(es) blocked by a gate" in result.stderr
    # The audit over every batch is written though no batch was published, and names the blocked one.
    audit = json.loads((home / "reports" / "audit.json").read_text())
    [batch] = audit["batches"]["by_batch"]
    assert batch["batch"] == "prompts" and batch["status"] == "blocked" and "pairs 0 < gates.min_pairs 1" in batch["why"]
    assert audit["flags"][0].startswith("batch 'prompts' not published: pairs 0 < gates.min_pairs 1")
    assert f"report:  {home / 'reports' / 'audit.md'}" in result.stdout
    assert not (home / "exports" / "preference_pairs.jsonl").exists()
    # Dagster's event log is in the file the summary names, under the home: the failed step, the failed check.
    log = log_path(result.stdout)
    assert log.parent == home / "logs" and log.name.startswith("run-")
    text = log.read_text(encoding="utf-8")
    assert "RUN_START" in text and "ASSET_CHECK_EVALUATION" in text and "STEP_FAILURE" in text
    if dagster_home:  # Dagster's notices about a new DAGSTER_HOME are in the log, not on the terminal
        assert "Welcome to Dagster" in text and "No dagster instance configuration file" in text


def test_verbose_streams_the_event_log_to_the_terminal_too(tmp_path):
    home = tmp_path / "home"
    with FakeLLMServer(judge_fn=first_shown_wins) as server:
        config = blocked_setup(tmp_path, server)
        result = subprocess.run([str(BIN / "pref-pipeline"), "run", "--config", str(config), "--no-progress",
                                 "--verbose"], cwd=ROOT, env=cli_env(home), capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "dagster - DEBUG" in result.stderr and "RUN_START" in result.stderr and "STEP_FAILURE" in result.stderr
    assert "batch 'prompts': BLOCKED by a gate, not published" in result.stderr  # the summary as without it
    assert "RUN_START" in log_path(result.stdout).read_text(encoding="utf-8")  # and the file is written all the same


def test_a_good_run_prints_its_progress_and_where_things_are(tmp_path):
    home = tmp_path / "home"
    with FakeLLMServer() as server:
        prompts = write_prompts(tmp_path / "prompts.jsonl", prompt_rows(3))
        result = run_cli(write_config(tmp_path / "pipeline.yaml", server.openai_base_url, [prompts.name]),
                         cli_env(home))
    assert result.returncode == 0, result.stderr[-3000:]
    assert not [noise for noise in NOISE if noise in result.stdout + result.stderr]
    kept = json.loads((home / "reports" / "audit.json").read_text())["pairs"]["kept"]
    assert f"batch 'prompts': {kept} pair(s) published" in result.stderr
    assert "roll-up: the combined dataset and the audit over every batch" in result.stderr
    assert f"dataset: {home / 'exports' / 'preference_pairs.jsonl'} ({kept} pairs)" in result.stdout
    assert log_path(result.stdout).exists()


def test_a_batch_that_only_waits_for_people_exits_0_and_says_what_to_do(tmp_path):
    """A human_ranked batch asks no judge: every comparison waits for a label. Not a failure, not a blocked gate: the
    run exits 0, says how many wait and the command that writes them to label."""
    home = tmp_path / "home"
    prompts = write_prompts(tmp_path / "prompts.jsonl", prompt_rows(3))
    with FakeLLMServer() as server:
        config = write_config(tmp_path / "pipeline.yaml", server.openai_base_url, [prompts.name],
                              extra="candidates_per_prompt: 2\nstrategies:\n  - method: human_ranked\n")
        result = run_cli(config, cli_env(home))
        models = [(r.get("body") or {}).get("model") for r in server.requests]
    shown = result.stdout + result.stderr
    assert result.returncode == 0, shown[-3000:]
    assert not [noise for noise in NOISE if noise in shown], shown
    assert "batch 'prompts': 0 pair(s) published; 3 comparison(s) await human labels" in result.stderr
    assert ("3 comparison(s) await human labels (not a failure); `pref-pipeline review export --to-label --out FILE` "
            "writes them to label") in result.stderr
    assert "BLOCKED" not in shown and "FAILED" not in shown
    assert sorted(models) == ["gen-a", "gen-a", "gen-a", "gen-b", "gen-b", "gen-b"]  # samples only: no judge asked
    audit = json.loads((home / "reports" / "audit.json").read_text())
    assert audit["pairs"]["awaiting_label"] == 3 and audit["pairs"]["kept"] == 0
