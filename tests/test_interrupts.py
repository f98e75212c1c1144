"""Ctrl-C and SIGTERM during a run of several prompt batches, through the real CLI in its own process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fakes import FakeLLMServer

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def write_config(folder: Path, base_url: str) -> Path:
    for batch, topic in (("a", "seasons"), ("b", "volcanoes")):
        (folder / f"{batch}.jsonl").write_text(
            "".join(json.dumps({"prompt": f"Question {i} about {topic}?"}) + "\n" for i in range(6)), encoding="utf-8")
    config = folder / "pipeline.yaml"
    config.write_text(
        "prompts:\n  - path: a.jsonl\n  - path: b.jsonl\n"
        f"generators:\n  - model: openai:gen-a\n    base_url: {base_url}\n    max_concurrency: 1\n"
        f"  - model: openai:gen-b\n    base_url: {base_url}\n    max_concurrency: 1\n"
        f"judges:\n  - model: openai:judge\n    base_url: {base_url}\n", encoding="utf-8")
    return config


def asked_about(server: FakeLLMServer, topic: str) -> int:
    return sum(1 for r in server.requests if topic in json.dumps(r["body"]))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_ends_every_remaining_batch_and_says_how_to_resume(signum, home, tmp_path):
    with FakeLLMServer(latency_s=0.4) as server:
        config = write_config(tmp_path, server.openai_base_url)
        env = {**os.environ, "PREF_PIPELINE_HOME": str(home)}
        run = subprocess.Popen([str(BIN / "pref-pipeline"), "run", "--config", str(config)], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        deadline = time.monotonic() + 120
        while asked_about(server, "seasons") < 3 and time.monotonic() < deadline and run.poll() is None:
            time.sleep(0.05)
        assert run.poll() is None, "the run ended before it could be stopped"
        run.send_signal(signum)
        _, err = run.communicate(timeout=120)
        time.sleep(1.0)  # anything still on its way would arrive now
        assert asked_about(server, "volcanoes") == 0  # batch b was never started: nothing paid for it
        paid_before = len(server.requests)

        assert run.returncode == 130, err[-3000:]
        assert "stopped during batch 'a'; no later batch was started" in err
        assert "Run the same command again to resume" in err
        assert not (home / "exports" / "preference_pairs.jsonl").exists()  # nothing half-published

        server.reset()
        again = subprocess.run([str(BIN / "pref-pipeline"), "run", "--config", str(config)], cwd=ROOT, env=env,
                               capture_output=True, text=True, timeout=600)
        assert again.returncode == 0, again.stderr[-3000:]
        # What the first run was answered is not paid again: the resumed run asks only for the rest.
        uninterrupted = 2 * (6 * 2 + 6 * 2)  # two batches: 6 prompts x 2 candidates, 6 comparisons x 2 orders
        assert paid_before + len(server.requests) <= uninterrupted + 2  # at most the calls in flight, twice
    assert (home / "exports" / "preference_pairs.jsonl").read_text().strip()


def test_a_stop_during_parallel_batches_stops_them_all_and_starts_no_other(home, tmp_path):
    """`run --parallel 2` over batches a, b, c: SIGTERM to the CLI (its own process only) while a and b run
    stops both batches' processes and never starts c; nothing is published; the command says how to resume."""
    from tests.cli_runs import cli_env, prompt_rows, write_config as write_batches_config, write_prompts

    with FakeLLMServer(latency_s=0.4) as server:
        for batch in ("a", "b", "c"):
            write_prompts(tmp_path / f"{batch}.jsonl", prompt_rows(6, tag=batch))
        config = write_batches_config(tmp_path / "pipeline.yaml", server.openai_base_url,
                                      ["a.jsonl", "b.jsonl", "c.jsonl"], concurrency=1)
        run = subprocess.Popen([str(BIN / "pref-pipeline"), "run", "--config", str(config), "--no-progress",
                                "--parallel", "2"], cwd=ROOT, env=cli_env(home), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
        deadline = time.monotonic() + 240
        while (asked_about(server, "[a]") < 2 or asked_about(server, "[b]") < 2) and time.monotonic() < deadline \
                and run.poll() is None:
            time.sleep(0.05)
        assert run.poll() is None, "the run ended before it could be stopped"
        run.send_signal(signal.SIGTERM)
        _, err = run.communicate(timeout=120)
        paid = len(server.requests)
        time.sleep(2.0)  # a batch process still running would go on asking now
        assert len(server.requests) == paid
    assert run.returncode == 130, err[-3000:]
    assert asked_about(server, "[c]") == 0  # never started
    assert "no later batch was started" in err and "Run the same command again to resume" in err
    assert not (home / "exports" / "preference_pairs.jsonl").exists()
    assert "Traceback" not in err
