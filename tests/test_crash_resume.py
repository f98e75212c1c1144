"""A crash, through the real CLI: the run's whole process group SIGKILLed in the middle of candidates, the
next run SIGKILLed in the middle of judgments, and a third run completes. It makes the same dataset as an
uninterrupted run (same pair ids, same rows in every table), pays at most 5 % more calls in total, and
after each kill nothing published is half-written and the DuckDB file opens with every table whole."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from tests.cli_runs import (
    assert_outputs_whole, cli_env, exported_pairs, prompt_rows, record_figures, run_cli, start_run, tables,
    write_config,
)
from tests.fakes import FakeLLMServer
from tests.helpers import write_prompts

pytestmark = pytest.mark.slow

PER_BATCH = 50  # two batches: 2 x (50 prompts x 2 candidates + 50 comparisons x 2 orders) = 400 calls


def asked(server: FakeLLMServer, batch: str, *, judge: bool) -> int:
    """Requests about a batch's prompts so far: generation ones, or judge ones."""
    marker = f"[{batch}]"
    with server._lock:
        bodies = [json.dumps(r["body"]) for r in server.requests]
    return sum(1 for b in bodies if marker in b and ("<response_a>" in b) == judge)


def kill_when(server: FakeLLMServer, run: subprocess.Popen, batch: str, *, judge: bool, after: int) -> None:
    """SIGKILL the run's process group once ``after`` requests of that kind were made for ``batch``."""
    deadline = time.monotonic() + 180
    while asked(server, batch, judge=judge) < after:
        assert run.poll() is None, f"the run ended before the kill: {run.communicate()[1][-3000:]}"
        assert time.monotonic() < deadline, "the run never got there"
        time.sleep(0.01)
    os.killpg(run.pid, signal.SIGKILL)
    run.communicate(timeout=60)
    assert run.returncode == -signal.SIGKILL


def row_counts(data: dict) -> dict[str, int]:
    return {name: len(frame) for name, frame in sorted(data.items())}


def test_killed_twice_then_resumed_makes_the_same_dataset_for_at_most_5_percent_more_calls(tmp_path):
    with FakeLLMServer(latency_s=0.1) as server:
        for batch in ("a", "b"):
            write_prompts(tmp_path / f"{batch}.jsonl", prompt_rows(PER_BATCH, tag=batch))
        config = write_config(tmp_path / "pipeline.yaml", server.openai_base_url, ["a.jsonl", "b.jsonl"])

        reference_home = tmp_path / "uninterrupted"
        reference = run_cli(config, cli_env(reference_home))
        assert reference.returncode == 0, reference.stderr[-3000:]
        uninterrupted_calls = server.count("/chat/completions")
        assert uninterrupted_calls == 2 * (PER_BATCH * 2 + PER_BATCH * 2)
        server.reset()

        home = tmp_path / "crashed"
        env = cli_env(home)
        kill_when(server, start_run(config, env), "a", judge=False, after=PER_BATCH)  # half of a's candidates
        paid_first = server.count("/chat/completions")
        whole_after_first = assert_outputs_whole(home)
        tables(home)  # opens, every table reads

        kill_when(server, start_run(config, env), "b", judge=True, after=PER_BATCH // 2)  # a quarter into b's verdicts
        paid_second = server.count("/chat/completions") - paid_first
        whole_after_second = assert_outputs_whole(home)
        assert whole_after_second["jsonl"] >= 1  # batch a was published on its own before the kill
        data = tables(home)
        batch_a = {name: int((frame["batch_id"] == "a").sum()) for name, frame in data.items()
                   if "batch_id" in frame.columns}
        assert batch_a["prompts"] == PER_BATCH and batch_a["candidates"] == 2 * PER_BATCH
        assert batch_a["judgments"] == 2 * PER_BATCH and batch_a["comparisons"] == PER_BATCH
        assert int((data["candidates"]["batch_id"] == "b").sum()) == 2 * PER_BATCH
        assert not (data["judgments"]["batch_id"] == "b").any()  # the killed step stored nothing
        assert not (home / "exports" / "preference_pairs.jsonl").exists()  # no roll-up of a half-made dataset

        resumed = run_cli(config, env)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        paid_total = server.count("/chat/completions")

    assert sorted(p["pair_id"] for p in exported_pairs(home)) == sorted(p["pair_id"] for p in
                                                                         exported_pairs(reference_home))
    assert {p["pair_id"]: (p["chosen"], p["rejected"]) for p in exported_pairs(home)} == \
        {p["pair_id"]: (p["chosen"], p["rejected"]) for p in exported_pairs(reference_home)}
    crashed_rows = row_counts(tables(home))
    reference_rows = row_counts(tables(reference_home))
    assert crashed_rows == reference_rows  # no row lost, none duplicated
    for name, frame in tables(home).items():
        key = next((c for c in ("pair_id", "judgment_id", "candidate_id", "comparison_id", "prompt_id")
                    if c in frame.columns and name != "quarantine"), None)
        if key and name not in ("judgment_history",):
            assert not frame.duplicated([key, "batch_id"] if "batch_id" in frame.columns else [key]).any(), name
    assert_outputs_whole(home)
    assert paid_total <= 1.05 * uninterrupted_calls
    record_figures("crash_resume", {
        "uninterrupted_calls": uninterrupted_calls,
        "calls_paid_first_run_killed_in_candidates": paid_first,
        "calls_paid_second_run_killed_in_judgments": paid_second,
        "calls_paid_resuming_run": paid_total - paid_first - paid_second,
        "calls_paid_in_total": paid_total,
        "extra_calls_pct": round(100 * (paid_total - uninterrupted_calls) / uninterrupted_calls, 2),
        "pairs": len(exported_pairs(home)),
        "rows_by_table": crashed_rows,
        "rows_lost": sum(reference_rows.values()) - sum(crashed_rows.values()),
        "files_checked_whole_after_kills": [whole_after_first, whole_after_second],
    })
