"""Two runs at once on one home (the same batch, different batches, a fresh DAGSTER_HOME), through the real CLI
in two processes, against one local server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from tests import cli_runs
from tests.cli_runs import assert_outputs_whole, cli_env, exported_pairs, prompt_rows, start_run, tables
from tests.fakes import FakeLLMServer
from tests.helpers import BIN, ROOT, SAMPLE_PROMPTS, two_generators, write_config_file, write_prompts


def write_config(folder: Path, base_url: str) -> Path:
    write_prompts(folder / "prompts.jsonl", SAMPLE_PROMPTS)
    return write_config_file(folder / "pipeline.yaml", ["prompts.jsonl"], base_url,
                             generators=two_generators((0.3, 0.9)), judges=[{"model": "openai:judge"}])


def test_the_same_batch_started_twice_at_once_pays_once(home, tmp_path):
    """Both runs finish; the second waits for the first's calls and takes them from the cache."""
    with FakeLLMServer(latency_s=0.3) as server:
        config = write_config(tmp_path, server.openai_base_url)
        env = {**os.environ, "PREF_PIPELINE_HOME": str(home)}
        runs = [subprocess.Popen([str(BIN / "pref-pipeline"), "run", "--config", str(config)], cwd=ROOT, env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        outputs = [run.communicate(timeout=600) for run in runs]
        paid = server.count("/chat/completions")
    assert [run.returncode for run in runs] == [0, 0], [err[-3000:] for _, err in outputs]
    # One run: 3 prompts x 2 candidates, then 3 comparisons x 2 orders. Nothing was asked twice.
    assert paid == 3 * 2 + 3 * 2
    rows = (home / "exports" / "preference_pairs.jsonl").read_text().splitlines()
    assert len(rows) == len({json.loads(row)["pair_id"] for row in rows}) > 0  # no duplicated pair


@pytest.mark.slow
def test_two_runs_of_different_batches_at_once_on_a_fresh_dagster_home(home, tmp_path):
    """Both finish, on one home and one DAGSTER_HOME created by neither: no row lost or duplicated (each batch's
    tables are Parquet files of their own: neither run waits for the other's writes)."""
    dagster_home = tmp_path / "dagster_home"  # fresh: the runs race to create its storage
    per_batch = 12
    with FakeLLMServer(latency_s=0.05) as server:
        configs = []
        for batch in ("a", "b"):
            write_prompts(tmp_path / f"{batch}.jsonl", prompt_rows(per_batch, tag=batch))
            configs.append(cli_runs.write_config(tmp_path / f"{batch}.yaml", server.openai_base_url,
                                                 [f"{batch}.jsonl"]))
        env = cli_env(home, DAGSTER_HOME=str(dagster_home))
        runs = [start_run(config, env) for config in configs]
        outputs = [run.communicate(timeout=600) for run in runs]
        paid = server.count("/chat/completions")
    assert [run.returncode for run in runs] == [0, 0], [err[-3000:] for _, err in outputs]
    assert not any("Traceback" in err for _, err in outputs)
    assert paid == 2 * (per_batch * 2 + per_batch * 2)  # each batch paid once

    data = tables(home)
    for name, per in (("prompts", per_batch), ("candidates", 2 * per_batch), ("judgments", 2 * per_batch),
                      ("comparisons", per_batch), ("judgment_history", 2 * per_batch)):
        counts = data[name]["batch_id"].value_counts().to_dict()
        assert counts == {"a": per, "b": per}, (name, counts)
    assert data["judgments"]["judgment_id"].is_unique and data["candidates"]["candidate_id"].is_unique
    pairs = exported_pairs(home)
    stored = data["preference_pairs"]
    assert sorted(p["pair_id"] for p in pairs) == sorted(stored["pair_id"])  # the roll-up has both batches
    assert stored["pair_id"].is_unique and set(stored["batch_id"]) == {"a", "b"}
    audit = json.loads((home / "reports" / "audit.json").read_text())
    assert audit["pairs"]["kept"] == len(stored)  # the last roll-up's report read both batches
    assert_outputs_whole(home)

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        assert sorted(instance.get_dynamic_partitions("prompt_batches")) == ["a", "b"]
        statuses = [r.status for r in instance.get_runs()]
    assert statuses == [dg.DagsterRunStatus.SUCCESS] * 4  # each batch's run and each roll-up


def test_many_processes_opening_a_fresh_dagster_home_at_once(tmp_path):
    """What `pref-pipeline run` does first with DAGSTER_HOME set (open_instance), in four processes that start
    at the same instant on a DAGSTER_HOME no one has used: each opens it and adds its partition."""
    dagster_home = tmp_path / "fresh"
    script = (
        "import sys, time\n"
        "from pref_pipeline.runs import open_instance\n"
        "start = float(sys.argv[1])\n"
        "while time.time() < start: pass\n"
        "open_instance(lambda instance: instance.add_dynamic_partitions('prompt_batches', [sys.argv[2]]))\n"
        "print('opened')\n"
    )
    start = time.time() + 12  # after every process has imported Dagster
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "PYTHONPATH": str(ROOT)}
    processes = [subprocess.Popen([sys.executable, "-c", script, str(start), name], env=env, cwd=ROOT,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for name in ("a", "b", "c", "d")]
    outputs = [p.communicate(timeout=120) for p in processes]
    assert [p.returncode for p in processes] == [0] * 4, [err[-2000:] for _, err in outputs]
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        assert sorted(instance.get_dynamic_partitions("prompt_batches")) == ["a", "b", "c", "d"]


def _batches_run_together(instance: dg.DagsterInstance, batch_runs: list) -> bool:
    """Whether at least two batch runs were executing at the same moment (from the instance's run records)."""
    spans = sorted((record.start_time, record.end_time) for record in instance.get_run_records()
                   if record.dagster_run.run_id in batch_runs)
    return any(later_start < earlier_end for (_, earlier_end), (later_start, _) in zip(spans, spans[1:]))


def test_parallel_runs_three_batches_two_at_a_time_on_a_fresh_dagster_home(home, tmp_path):
    """`pref-pipeline run --parallel 2` over three batches on a DAGSTER_HOME no one has used: every batch
    succeeds, two run at once, each is paid for once, and no row is lost or duplicated; the roll-up runs in one of
    the batches' forked processes (which have GX, statsmodels and matplotlib imported), not in the parent."""
    dagster_home = tmp_path / "dagster_home"
    per_batch, names = 4, ("a", "b", "c")
    with FakeLLMServer(latency_s=0.3) as server:
        for batch in names:
            write_prompts(tmp_path / f"{batch}.jsonl", prompt_rows(per_batch, tag=batch))
        config = cli_runs.write_config(tmp_path / "pipeline.yaml", server.openai_base_url,
                                       [f"{batch}.jsonl" for batch in names])
        done = subprocess.run([str(BIN / "pref-pipeline"), "run", "--config", str(config), "--no-progress",
                               "--parallel", "2"], cwd=ROOT, env=cli_env(home, DAGSTER_HOME=str(dagster_home)),
                              capture_output=True, text=True, timeout=600)
        paid = server.count("/chat/completions")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert paid == len(names) * (per_batch * 2 + per_batch * 2)  # each batch paid once

    data = tables(home)
    for name, per in (("prompts", per_batch), ("candidates", 2 * per_batch), ("judgments", 2 * per_batch)):
        counts = data[name]["batch_id"].value_counts().to_dict()
        assert counts == dict.fromkeys(names, per), (name, counts)
    stored = data["preference_pairs"]
    assert stored["pair_id"].is_unique and set(stored["batch_id"]) == set(names)
    assert sorted(p["pair_id"] for p in exported_pairs(home)) == sorted(stored["pair_id"])
    assert_outputs_whole(home)

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        assert sorted(instance.get_dynamic_partitions("prompt_batches")) == list(names)
        runs = instance.get_runs()
        assert [r.status for r in runs] == [dg.DagsterRunStatus.SUCCESS] * 4  # three batches, then the roll-up
        batch_runs = [r.run_id for r in runs if r.tags.get("dagster/partition") in names]
        assert len(batch_runs) == 3 and _batches_run_together(instance, batch_runs)
        pids = {r.run_id: next(e.dagster_event.pid for e in instance.all_logs(r.run_id)
                               if e.dagster_event and e.dagster_event.event_type_value == "PIPELINE_START")
                for r in runs}
        [rollup] = [r.run_id for r in runs if r.job_name == "publish_dataset"]
        assert pids[rollup] in {pids[run_id] for run_id in batch_runs}


@pytest.mark.slow
def test_two_parallel_runs_of_the_same_batches_at_once_pay_once(home, tmp_path):
    """Two `run --parallel 2` of one configuration (batches a and b) started together: each batch is made by
    one of them while the other waits for it (batch_step_lock) and then takes its answers from the cache."""
    per_batch = 3
    with FakeLLMServer(latency_s=0.3) as server:
        for batch in ("a", "b"):
            write_prompts(tmp_path / f"{batch}.jsonl", prompt_rows(per_batch, tag=batch))
        config = cli_runs.write_config(tmp_path / "pipeline.yaml", server.openai_base_url, ["a.jsonl", "b.jsonl"])
        command = [str(BIN / "pref-pipeline"), "run", "--config", str(config), "--no-progress", "--parallel", "2"]
        env = cli_env(home, DAGSTER_HOME=str(tmp_path / "dagster_home"))
        runs = [subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True) for _ in range(2)]
        outputs = [run.communicate(timeout=600) for run in runs]
        paid = server.count("/chat/completions")
    assert [run.returncode for run in runs] == [0, 0], [err[-3000:] for _, err in outputs]
    assert paid == 2 * (per_batch * 2 + per_batch * 2)  # each batch once, though each was run twice
    stored = tables(home)["preference_pairs"]
    assert stored["pair_id"].is_unique and set(stored["batch_id"]) == {"a", "b"}
    assert sorted(p["pair_id"] for p in exported_pairs(home)) == sorted(stored["pair_id"])
