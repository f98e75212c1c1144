"""A sensor that keeps the ``judge_is_current`` checks true between runs (``assets/staleness.py``).

On by default, it launches nothing: at each tick it reads the judge configuration as the YAML says
now and reports the check on ``judgments`` and every asset below it when the answer changed or the
asset was materialized since the last answer, so a judge changed in the file shows as stale in the
graph, the catalog and each asset's page within a tick, without a run or a reload.
"""

from collections.abc import Callable

import dagster as dg
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)

from assets.staleness import CHECK_NAME, evaluate
from pref_pipeline.config import ConfigError, PipelineConfig


def as_evaluation(result: dg.AssetCheckResult, latest: dg.EventLogRecord) -> dg.AssetCheckEvaluation:
    """The check result as the event a sensor reports, aimed at the asset's latest materialization (so the UI
    counts it as that materialization's check, as it does for a check run with it)."""
    target = AssetCheckEvaluationTargetMaterializationData(storage_id=latest.storage_id, run_id=latest.run_id,
                                                           timestamp=latest.timestamp)
    return dg.AssetCheckEvaluation(asset_key=result.asset_key, check_name=CHECK_NAME, passed=result.passed,
                                   metadata=result.metadata, severity=result.severity,
                                   description=result.description, target_materialization_data=target)


def already_shown(record, result: dg.AssetCheckResult, latest: dg.EventLogRecord) -> bool:
    """Whether the check's latest evaluation already says this about the asset's latest materialization."""
    shown = record.event.asset_check_evaluation if record and record.event else None
    if shown is None or shown.passed != result.passed or shown.description != result.description:
        return False
    if record.run_id == latest.run_id:  # evaluated in the run that made it, as the UI counts it
        return True
    target = shown.target_materialization_data
    return target.storage_id == latest.storage_id if target else record.create_timestamp > latest.timestamp


def build_judge_staleness_sensor(load_config: Callable[[], PipelineConfig]) -> dg.SensorDefinition:
    @dg.sensor(
        name="judge_staleness_sensor",
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Marks judgments and everything downstream stale (check judge_is_current, WARN) when the "
        "configured judge differs from the one the stored verdicts came from. Launches no run.",
    )
    def judge_staleness_sensor(context: dg.SensorEvaluationContext):
        graph = context.repository_def.asset_graph
        checked = {key.asset_key: graph.get(key.asset_key).is_partitioned
                   for key in graph.asset_check_keys if key.name == CHECK_NAME}
        if not checked:
            return dg.SkipReason(f"no {CHECK_NAME} check in these definitions")
        try:
            config = load_config()  # the file as it is now, not as the code location loaded it
        except ConfigError as error:
            return dg.SkipReason(f"cannot read the configuration: {error}")
        results = evaluate(context.instance, config, checked)
        keys = [dg.AssetCheckKey(r.asset_key, CHECK_NAME) for r in results]
        shown = context.instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
        events = []
        for key, result in zip(keys, results, strict=True):
            latest = context.instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=key.asset_key), limit=1).records
            if latest and not already_shown(shown.get(key), result, latest[0]):  # never made: nothing to mark
                events.append(as_evaluation(result, latest[0]))
        if not events:
            return dg.SkipReason("the judge_is_current checks already say what is true")
        stale = sorted(e.asset_key.to_user_string() for e in events if not e.passed)
        context.log.info(f"judge_is_current: {len(events)} check(s) updated; stale: {', '.join(stale) or 'none'}")
        return dg.SensorResult(asset_events=events)

    return judge_staleness_sensor
