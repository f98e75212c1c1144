"""Sensors and the schedule, evaluated with Dagster's own contexts against a real instance."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import pytest

from assets.partitions import PROMPT_BATCHES
from assets.pipeline import build_pipeline_assets, judge_code_version
from assets.storage import PipelineIOManager
from pref_pipeline.config import parse_config
from pref_pipeline.definitions import build_definitions
from pref_pipeline.paths import SCHEMA, Home
from sensors.judge_change import build_judge_change_sensor
from sensors.prompt_batches import build_prompt_batches_sensor
from sensors.schedules import build_refresh_schedule
from tests.fakes import FakeLLMServer


def write_prompts(path: Path, *prompts: str) -> Path:
    path.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts), encoding="utf-8")
    return path


DEFS = build_definitions(parse_config({}))  # the jobs and partitions the run requests are resolved against


def tick(sensor: dg.SensorDefinition, instance: dg.DagsterInstance, cursor: str | None):
    """Evaluate a sensor as the daemon does, run requests resolved against the jobs and partitions."""
    with dg.partition_loading_context(dynamic_partitions_store=instance):
        return sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=cursor, definitions=DEFS))


def call(sensor: dg.SensorDefinition, instance: dg.DagsterInstance, cursor: str | None) -> dg.SensorResult:
    """The sensor's own answer, before Dagster resolves it (which, outside the daemon, cannot see
    partitions the same answer asks to add)."""
    result = sensor(dg.build_sensor_context(instance=instance, cursor=cursor, definitions=DEFS))
    return result if isinstance(result, dg.SensorResult) else dg.SensorResult(skip_reason=result)


def test_prompt_folder_sensor_new_unchanged_changed_files(tmp_path):
    folder = tmp_path / "incoming"
    folder.mkdir()
    write_prompts(folder / "week-1.jsonl", "What is DPO?", "Explain RLHF briefly.")
    config = parse_config({"prompt_folder": str(folder)})
    sensor = build_prompt_batches_sensor(lambda: config)
    instance = dg.DagsterInstance.ephemeral()

    first = call(sensor, instance, None)
    assert [r.partition_key for r in first.run_requests] == ["week-1"]
    assert [req.partition_keys for req in first.dynamic_partitions_requests] == [["week-1"]]
    instance.add_dynamic_partitions(PROMPT_BATCHES.name, ["week-1"])  # what the daemon does with the request

    unchanged = tick(sensor, instance, first.cursor)
    assert not unchanged.run_requests and "no new or changed" in unchanged.skip_message
    assert unchanged.cursor == first.cursor

    write_prompts(folder / "week-1.jsonl", "What is DPO?", "Explain RLHF in one paragraph.")
    write_prompts(folder / "week 2.csv.tmp", "ignored: not a prompt file suffix")
    (folder / "week-2.csv").write_text("prompt,category\nWhat is a reward model?,factual\n")
    changed = call(sensor, instance, first.cursor)
    keys = {r.partition_key: r for r in changed.run_requests}
    assert set(keys) == {"week-1", "week-2"}
    assert keys["week-1"].run_key != first.run_requests[0].run_key  # new content, new run key
    assert [req.partition_keys for req in changed.dynamic_partitions_requests] == [["week-2"]]


def test_prompt_batches_sensor_registers_the_builtin_batch():
    sensor = build_prompt_batches_sensor(lambda: parse_config({}))
    result = call(sensor, dg.DagsterInstance.ephemeral(), None)
    assert [r.partition_key for r in result.run_requests] == ["builtin"]
    assert [req.partition_keys for req in result.dynamic_partitions_requests] == [["builtin"]]


@pytest.fixture
def judged_batch(home, prompts_file):
    """One batch materialized through the fake server in a persistent instance."""
    with FakeLLMServer() as server:
        def config_with(criteria: str):
            return parse_config({
                "prompts": [{"path": str(prompts_file)}],
                "generators": [{"model": "openai:gen-a", "base_url": server.openai_base_url, "temperature": 0.3},
                               {"model": "openai:gen-b", "base_url": server.openai_base_url, "temperature": 0.9}],
                "judges": [{"model": "openai:judge", "base_url": server.openai_base_url, "criteria": criteria}],
            })

        instance = dg.DagsterInstance.ephemeral()
        instance.add_dynamic_partitions(PROMPT_BATCHES.name, ["prompts"])
        original = config_with("helpfulness_and_clarity")
        result = dg.materialize(
            build_pipeline_assets(original),
            resources={"io_manager": PipelineIOManager(database=str(Home.from_env().ensure().database), schema=SCHEMA)},
            instance=instance, partition_key="prompts", raise_on_error=False,
        )
        assert result.success
        yield instance, original, config_with


def test_judge_change_sensor_unchanged_then_changed(judged_batch):
    instance, original, config_with = judged_batch
    unchanged = tick(build_judge_change_sensor(lambda: original), instance, None)
    assert not unchanged.run_requests and "up to date" in unchanged.skip_message

    changed_config = config_with("harmlessness")
    changed = tick(build_judge_change_sensor(lambda: changed_config), instance, None)
    [request] = changed.run_requests
    fingerprint = judge_code_version(changed_config)
    assert fingerprint != judge_code_version(original)
    assert request.partition_key == "prompts"
    assert request.run_key == f"rejudge:{fingerprint}:prompts"
    assert request.tags["pref_pipeline/judge_model"] == "openai:judge"
    assert request.tags["pref_pipeline/judge_fingerprint"] == fingerprint


def test_refresh_schedule_requests_every_batch():
    config = parse_config({"schedule": {"cron": "0 6 * * 1"}})
    schedule = build_refresh_schedule(config)
    assert schedule.cron_schedule == "0 6 * * 1"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    with dg.instance_for_test() as instance:  # schedules reach the instance through its ref
        empty = schedule.evaluate_tick(dg.build_schedule_context(instance=instance, repository_def=DEFS.get_repository_def()))
        assert not empty.run_requests and "no prompt batch yet" in empty.skip_message

        instance.add_dynamic_partitions(PROMPT_BATCHES.name, ["a", "b"])
        when = datetime(2026, 11, 23, 6, 0, tzinfo=timezone.utc)
        with dg.partition_loading_context(dynamic_partitions_store=instance):
            data = schedule.evaluate_tick(dg.build_schedule_context(
                instance=instance, scheduled_execution_time=when, repository_def=DEFS.get_repository_def()))
    assert sorted(r.partition_key for r in data.run_requests) == ["a", "b"]
    assert all(r.run_key.startswith("2026-11-23T06:00:00") for r in data.run_requests)
