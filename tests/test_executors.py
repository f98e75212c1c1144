"""`executor: multiprocess`: each step in its own process, forked from a forkserver that imported the code
location and the heavy libraries once (the default, `in_process`, is what every other test runs); and
`executor: dask`: each step a task on a real `distributed` cluster of worker processes."""

from __future__ import annotations
import json
import os

import dagster as dg
import pytest

from pref_pipeline.paths import Home
from tests.dagster_dev import pipeline_job_from_env
from tests.fakes import FakeLLMServer
from tests.helpers import two_generators, write_config_file

pytestmark = pytest.mark.slow


def test_multiprocess_executor_runs_every_step_in_a_forked_process(home, prompts_file, tmp_path, monkeypatch):
    from pref_pipeline.preload import STEP_PRELOAD

    with FakeLLMServer() as server:
        config = write_config_file(tmp_path / "pipeline.yaml", [prompts_file], server.openai_base_url,
                                   generators=two_generators((0.3, 0.9)), judges=[{"model": "openai:judge"}],
                                   executor="multiprocess")
        monkeypatch.setenv("PREF_PIPELINE_CONFIG", str(config))
        job = pipeline_job_from_env()
        assert job.executor_def.name == "multiprocess"
        (tmp_path / "dagster_home").mkdir()
        with dg.DagsterInstance.from_config(str(tmp_path / "dagster_home")) as instance:
            instance.add_dynamic_partitions("prompt_batches", ["prompts"])
            result = dg.execute_job(dg.reconstructable(pipeline_job_from_env), instance=instance,
                                    tags={"dagster/partition": "prompts"})
            assert result.success
            logs = instance.all_logs(result.run_id)
    started = {e.step_key for e in logs if e.dagster_event and e.dagster_event.event_type_value == "STEP_WORKER_STARTED"}
    assert {"prompts", "candidates", "judgments", "preference_pairs", "audit_report"} <= started
    run_pid = next(e.dagster_event.pid for e in logs if e.dagster_event and e.dagster_event.event_type_value == "PIPELINE_START")
    step_pids = {e.dagster_event.pid for e in logs if e.dagster_event and e.dagster_event.event_type_value == "STEP_START"}
    assert run_pid not in step_pids and len(step_pids) == len(started)  # a process per step
    assert "pref_pipeline.definitions" in STEP_PRELOAD and "great_expectations" in STEP_PRELOAD
    assert (Home.from_env().exports / "preference_pairs.jsonl").read_text().strip()


def dask_pipeline_job():
    """The same job as ``pipeline_job_from_env``, under its own name: Dagster caches a reconstructable job's
    definition per target in the process, so the multiprocess test's job would otherwise be reused here."""
    return pipeline_job_from_env()


def _pairs(home) -> set[tuple[str, str, str, str]]:
    rows = (Home.at(home).exports / "preference_pairs.jsonl").read_text().splitlines()
    return {(p["pair_id"], p["prompt"], p["chosen"], p["rejected"]) for p in map(json.loads, rows)}


def test_dask_executor_runs_a_batch_on_a_local_cluster_with_the_same_pairs_as_in_process(home, prompts_file,
                                                                                          tmp_path, monkeypatch):
    """A batch through dagster-dask's executor against a LocalCluster of two worker processes (started here on
    127.0.0.1, reached by its address as a remote scheduler would be): every step runs in a worker process, the
    resources and the IO manager work there, and the pairs are those an in-process run of the same batch makes."""
    from distributed import Client, LocalCluster

    from pref_pipeline.config import load_config
    from pref_pipeline.runs import run_batches

    with FakeLLMServer() as server:
        models = {"generators": two_generators((0.3, 0.9)), "judges": [{"model": "openai:judge"}]}
        in_process = write_config_file(tmp_path / "in_process.yaml", [prompts_file], server.openai_base_url, **models)
        baseline = run_batches(load_config(in_process), Home.at(tmp_path / "in_process_home"))
        assert baseline.success

        config = tmp_path / "pipeline.yaml"
        monkeypatch.setenv("PREF_PIPELINE_CONFIG", str(config))  # before the workers start: they inherit it
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=None) as cluster, Client(cluster) as client:
            write_config_file(config, [prompts_file], server.openai_base_url, **models, executor="dask",
                              dask={"address": cluster.scheduler_address})
            job = dask_pipeline_job()
            assert job.executor_def.name == "dask"
            (tmp_path / "dagster_home").mkdir()
            with dg.DagsterInstance.from_config(str(tmp_path / "dagster_home")) as instance:
                instance.add_dynamic_partitions("prompt_batches", ["prompts"])
                result = dg.execute_job(dg.reconstructable(dask_pipeline_job), instance=instance,
                                        tags={"dagster/partition": "prompts"})
                assert result.success
                logs = instance.all_logs(result.run_id)
            worker_pids = set(client.run(os.getpid).values())
    step_pids = {e.dagster_event.pid for e in logs if e.dagster_event and e.dagster_event.event_type_value == "STEP_START"}
    steps = {e.step_key for e in logs if e.dagster_event and e.dagster_event.event_type_value == "STEP_SUCCESS"}
    assert {"prompts", "candidates", "judgments", "preference_pairs", "audit_report"} <= steps
    assert step_pids and step_pids <= worker_pids and os.getpid() not in step_pids  # every step on a worker
    pairs = _pairs(home)
    assert pairs and pairs == _pairs(tmp_path / "in_process_home")
