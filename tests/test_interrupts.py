"""Ctrl-C and SIGTERM during a run of several prompt batches, through the real CLI in its own process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.cli_runs import cli_env, prompt_rows
from tests.cli_runs import write_config as write_batches_config
from tests.fakes import FakeLLMServer
from tests.helpers import BIN, ROOT, two_generators, write_config_file, write_prompts


def write_config(folder: Path, base_url: str) -> Path:
    """Two batches of six prompts (a: the seasons, b: volcanoes), every generator one request at a time."""
    for batch, topic in (("a", "seasons"), ("b", "volcanoes")):
        write_prompts(folder / f"{batch}.jsonl", [{"prompt": f"Question {i} about {topic}?"} for i in range(6)])
    return write_config_file(folder / "pipeline.yaml", ["a.jsonl", "b.jsonl"], base_url,
                             generators=two_generators((None, None), max_concurrency=1),
                             judges=[{"model": "openai:judge"}])


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
