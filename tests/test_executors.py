"""`executor: multiprocess`: each step in its own process, forked from a forkserver that imported the code
location and the heavy libraries once (the default, `in_process`, is what every other test runs)."""

from __future__ import annotations


import dagster as dg
import pytest

from pref_pipeline.paths import Home
from tests.dagster_dev import pipeline_job_from_env
from tests.fakes import FakeLLMServer

pytestmark = pytest.mark.slow


def test_multiprocess_executor_runs_every_step_in_a_forked_process(home, prompts_file, tmp_path, monkeypatch):
    from pref_pipeline.definitions import STEP_PRELOAD

    with FakeLLMServer() as server:
        url = server.openai_base_url
        config = tmp_path / "pipeline.yaml"
        config.write_text(f"prompts: [{{path: {prompts_file}}}]\n"
                          f"generators:\n  - {{model: 'openai:gen-a', base_url: '{url}', temperature: 0.3}}\n"
                          f"  - {{model: 'openai:gen-b', base_url: '{url}', temperature: 0.9}}\n"
                          f"judges:\n  - {{model: 'openai:judge', base_url: '{url}'}}\n"
                          "executor: multiprocess\n")
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
