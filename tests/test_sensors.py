"""Sensors and the schedule, evaluated with Dagster's own contexts against a real instance; the runs they request
are executed with the in-process fake as the models."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import pytest

from assets.partitions import PROMPT_BATCHES
from pref_pipeline.judging import judge_code_version
from pref_pipeline.config import parse_config
from pref_pipeline.definitions import build_definitions
from pref_pipeline.paths import SCHEMA, Home
from sensors.judge_change import build_judge_change_sensor, last_judge_version
from sensors.judge_staleness import build_judge_staleness_sensor
from sensors.prompt_batches import build_prompt_batches_sensor
from sensors.schedules import build_refresh_schedule
from pref_pipeline.table_files import connect as connect_tables
from tests.fakes import JudgeInfo
from tests.fakes.in_process import FakeLLM
from tests.helpers import definitions, materialize, pipeline_config, two_generators, write_prompts


def write_questions(path: Path, *prompts: str) -> Path:
    return write_prompts(path, [{"prompt": p} for p in prompts])


DEFS = build_definitions(parse_config({}), Home.at('unused-home'))  # the jobs and partitions the run requests are resolved against


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
    write_questions(folder / "week-1.jsonl", "What is DPO?", "Explain RLHF briefly.")
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

    write_questions(folder / "week-1.jsonl", "What is DPO?", "Explain RLHF in one paragraph.")
    write_questions(folder / "week 2.csv.tmp", "ignored: not a prompt file suffix")
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
    """One batch materialized with the in-process fake in a persistent instance."""
    def config_with(criteria: str):
        return pipeline_config(prompts_file, generators=two_generators((0.3, 0.9)),
                               judges=[{"model": "openai:judge", "criteria": criteria}])

    fake = FakeLLM()
    instance = dg.DagsterInstance.ephemeral()
    original = config_with("helpfulness_and_clarity")
    result = materialize(original, instance=instance, fake=fake)
    assert result.success
    return instance, original, config_with, fake


def test_judge_change_sensor_unchanged_then_changed(judged_batch):
    instance, original, config_with, _ = judged_batch
    unchanged = tick(build_judge_change_sensor(lambda: original), instance, None)
    assert not unchanged.run_requests and "up to date" in unchanged.skip_message

    changed_config = config_with("harmlessness")
    changed = tick(build_judge_change_sensor(lambda: changed_config), instance, None)
    [request] = changed.run_requests
    fingerprint = judge_code_version(changed_config)
    assert fingerprint != judge_code_version(original)
    assert request.partition_key == "prompts"
    assert request.run_key == f"rejudge:prompts:1:{judge_code_version(original)}->{fingerprint}"
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


def generation_calls(fake: FakeLLM) -> int:
    return sum(1 for r in fake.requests if r["path"].endswith("/chat/completions")
               and not str(r["body"]["model"]).startswith("judge"))


def shorter_wins(info: JudgeInfo) -> dict:
    """A second judge model that prefers the shorter response: every decisive verdict flips."""
    a, b = len(info.response_a), len(info.response_b)
    preference = "A" if a < b else "B" if b < a else "tie"
    return {"preference": preference, "confidence": 0.8, "reasoning": "The shorter response is more concise."}


def test_backfill_after_a_judge_change_reports_drift(judged_batch, home):
    """The sensor's rejudge run re-asks only the judge, keeps the old verdicts, and the audit shows the flips."""
    instance, original, config_with, fake = judged_batch
    home_paths = Home.from_env()
    with connect_tables(home_paths) as con:
        old = con.execute(f"SELECT count(*) FILTER (WHERE preference IN ('A', 'B')), count(*) "
                          f"FROM {SCHEMA}.judgment_history").fetchone()
    n_old_decisive, n_old = old
    assert n_old == 3 * 2  # three prompts, one comparison each, both orders

    fake.set_judge_fn(shorter_wins)
    new_config = original.model_copy(update={"judges": [original.judges[0].model_copy(update={"model": "openai:judge-2"})]})
    new_fp, old_fp = judge_code_version(new_config), judge_code_version(original)
    [request] = tick(build_judge_change_sensor(lambda: new_config), instance, None).run_requests
    assert request.tags["pref_pipeline/judge_model"] == "openai:judge-2"

    generations_before = generation_calls(fake)
    job = definitions(new_config, fake).resolve_job_def("rejudge")
    result = job.execute_in_process(instance=instance, partition_key=request.partition_key, tags=request.tags)
    assert result.success
    assert generation_calls(fake) == generations_before  # candidates come from storage, only the judge is asked
    assert sum(1 for r in fake.requests if (r["body"] or {}).get("model") == "judge-2") == n_old

    record = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("judgments"), asset_partitions=["prompts"]), limit=1).records[0]
    assert record.asset_materialization.tags["dagster/code_version"] == new_fp
    assert not tick(build_judge_change_sensor(lambda: new_config), instance, None).run_requests

    with connect_tables(home_paths) as con:
        versions = dict(con.execute(f"SELECT judge_fingerprint, count(*) FROM {SCHEMA}.judgment_history "
                                    "GROUP BY ALL").fetchall())
    assert versions == {old_fp: n_old, new_fp: n_old}  # old verdicts kept beside the new ones

    audit = json.loads((Home.from_env().reports / "audit.json").read_text())
    [transition] = audit["drift"]["transitions"]
    assert (transition["from"], transition["to"]) == (old_fp, new_fp)
    assert (transition["from_model"], transition["to_model"]) == ("openai:judge", "openai:judge-2")
    assert transition["n"] == n_old_decisive and transition["flip_rate"] == 1.0
    assert sorted(c["category"] for c in transition["by_category"]) == ["advice", "coding", "factual"]
    assert all(c["flip_rate"] == 1.0 for c in transition["by_category"])
    assert [v["judge_model"] for v in audit["drift"]["versions"]] == ["openai:judge", "openai:judge-2"]

    # The same figures as numeric metadata, which the UI plots over materializations: drift and each judge's.
    def latest_metadata(asset: str) -> dict:
        [record] = instance.fetch_materializations(dg.AssetKey(asset), limit=1).records
        return {key: value.value for key, value in record.asset_materialization.metadata.items()}

    report = latest_metadata("audit_report")
    assert report["drift.latest_flip_rate.openai:judge-2"] == 1.0
    assert report["position_bias.consistency_rate.openai:judge-2"] == audit["position_bias"]["by_judge"][0][
        "consistency_rate"]
    assert isinstance(report["position_bias.first_position_win_rate.openai:judge-2"], float)
    batch = latest_metadata("batch_audit")
    assert isinstance(batch["position_bias.consistency_rate.openai:judge-2"], float)


def test_prompt_file_changed_back_runs_again(tmp_path):
    """A -> B -> A: every change is a run with a key never used before (Dagster drops a repeated key)."""
    folder = tmp_path / "incoming"
    folder.mkdir()
    config = parse_config({"prompt_folder": str(folder)})
    sensor = build_prompt_batches_sensor(lambda: config)
    instance = dg.DagsterInstance.ephemeral()
    keys, cursor = [], None
    for content in ("What is DPO?", "What is PPO?", "What is DPO?"):
        write_questions(folder / "week-1.jsonl", content)
        result = call(sensor, instance, cursor)
        [request] = result.run_requests
        keys.append(request.run_key)
        cursor = result.cursor
        instance.add_dynamic_partitions(PROMPT_BATCHES.name, ["week-1"])
    assert len(set(keys)) == 3 and keys[0].split(":")[-1] == keys[2].split(":")[-1]  # same content, new key
    assert not call(sensor, instance, cursor).run_requests  # unchanged since: nothing to do


def test_a_missing_prompt_file_makes_no_partition(tmp_path):
    config = parse_config({"prompts": [{"path": str(tmp_path / "gone.jsonl")}]})
    result = call(build_prompt_batches_sensor(lambda: config), dg.DagsterInstance.ephemeral(), None)
    assert not result.run_requests and not result.dynamic_partitions_requests
    assert "missing" in result.skip_reason.skip_message and "gone.jsonl" in result.skip_reason.skip_message


def test_turning_the_prompt_sensor_on_does_not_rerun_done_batches(judged_batch, prompts_file):
    """An empty cursor (a sensor just turned on): a batch whose stored prompts were made from the same file is
    done; after the file changes, it runs."""
    instance, original, _, _ = judged_batch
    sensor = build_prompt_batches_sensor(lambda: original)
    first = call(sensor, instance, None)
    assert not first.run_requests and "no new or changed" in first.skip_reason.skip_message
    write_questions(prompts_file, "A new question?")
    [request] = call(sensor, instance, first.cursor).run_requests
    assert request.partition_key == "prompts"


def test_judge_switched_back_is_rejudged(judged_batch):
    """v1 -> v2 -> v1: each change requests a run under a new key, and the batch ends judged by v1 again."""
    instance, original, config_with, fake = judged_batch
    other = config_with("harmlessness")
    cursor, keys = None, []
    for config in (other, original):
        sensor = build_judge_change_sensor(lambda config=config: config)
        result = tick(sensor, instance, cursor)
        [request] = result.run_requests
        keys.append(request.run_key)
        cursor = result.cursor
        # Requested again before the run stored its verdicts: not requested twice.
        assert not tick(sensor, instance, cursor).run_requests
        job = definitions(config, fake).resolve_job_def("rejudge")
        assert job.execute_in_process(instance=instance, partition_key=request.partition_key,
                                      tags={**request.tags, "dagster/run_key": request.run_key}).success
        assert last_judge_version(instance, "prompts") == judge_code_version(config)
    assert len(set(keys)) == 2 and all(key.startswith("rejudge:prompts:") for key in keys)
    assert not tick(build_judge_change_sensor(lambda: original), instance, cursor).run_requests


JUDGED = {"judgments", "judgment_history", "comparisons", "preference_pairs", "quarantine", "batch_audit",
          "preference_pairs_export", "preference_dataset", "audit_report"}


def staleness_tick(instance: dg.DagsterInstance, config) -> dict[str, dg.AssetCheckEvaluation]:
    """One tick of judge_staleness_sensor; its check evaluations are stored as the daemon stores them."""
    result = build_judge_staleness_sensor(lambda: config)(
        dg.build_sensor_context(instance=instance, definitions=build_definitions(config, Home.from_env())))
    events = result.asset_events if isinstance(result, dg.SensorResult) else []
    for event in events:
        instance.report_runless_asset_event(event)
    return {e.asset_key.to_user_string(): e for e in events}


def latest_checks(instance: dg.DagsterInstance) -> dict[str, dg.AssetCheckEvaluation]:
    keys = [dg.AssetCheckKey(dg.AssetKey(name), "judge_is_current") for name in JUDGED]
    records = instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
    return {key.asset_key.to_user_string(): record.event.asset_check_evaluation for key, record in records.items()}


def test_a_judge_change_marks_judgments_and_everything_downstream_stale(judged_batch):
    """judge_is_current on judgments and every asset below it: passes after the run, warns (naming the batch and the
    judge it was judged by) once the configured judge differs, stays stale downstream while only judgments are
    re-made, and passes again after the rejudge run; the sensor reports only what changed."""
    instance, original, config_with, fake = judged_batch
    assert set(latest_checks(instance)) == JUDGED  # evaluated at the end of the run
    assert all(e.passed for e in latest_checks(instance).values())
    assert staleness_tick(instance, original) == {}  # already says what is true

    changed = config_with("harmlessness")
    old_fp, new_fp = judge_code_version(original), judge_code_version(changed)
    marked = staleness_tick(instance, changed)
    assert set(marked) == JUDGED
    for name, evaluation in marked.items():
        assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN, name
        assert f"prompts (judged by {old_fp})" in evaluation.description
        assert f"configured judge {new_fp} (openai:judge)" in evaluation.description
    assert staleness_tick(instance, changed) == {}  # nothing new to say

    rejudge = definitions(changed, fake).resolve_job_def("rejudge")
    assert rejudge.execute_in_process(instance=instance, partition_key="prompts",
                                      asset_selection=[dg.AssetKey("judgments")]).success
    after_judgments = staleness_tick(instance, changed)
    assert latest_checks(instance)["judgments"].passed  # evaluated in that run
    assert set(after_judgments) == JUDGED - {"judgments"}
    for name, evaluation in after_judgments.items():
        assert not evaluation.passed, name
        assert "prompts (made before the batch's latest verdicts)" in evaluation.description or \
            "prompts (judged after this roll-up was made)" in evaluation.description, evaluation.description
        # The advice names the batch and what fixes it (not the judge sensor, which would launch nothing now).
        assert "the rebuild_from_judgments job for prompts" in evaluation.description, evaluation.description
        assert "judge_change_sensor" not in evaluation.description

    # Following it: the rebuild job for the batch (no LLM call), and every warning clears.
    calls = len(fake.requests)
    rebuild = definitions(changed, fake).resolve_job_def("rebuild_from_judgments")
    assert rebuild.execute_in_process(instance=instance, partition_key="prompts").success
    assert len(fake.requests) == calls
    assert all(e.passed for e in latest_checks(instance).values())
    assert staleness_tick(instance, changed) == {}
