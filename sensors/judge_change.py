"""A sensor that re-judges every batch when the judge configuration changes.

The judge panel's fingerprint (model, prompt template, criteria, sampling of every judge;
``pref_pipeline.judging.judge_code_version``) is the ``judgments`` asset's code version, which
Dagster records on each materialization. When the configured fingerprint differs from the one a
batch was last judged with, the sensor requests the ``rejudge`` job for that batch once. The cursor
counts the requests per batch and the run key names the count and the change (old -> new), so a
judge switched back to an earlier one (v2 -> v3 -> v2) is re-judged again instead of the request
being dropped as a repeated key. Old verdicts stay in the judgment history for the drift figures.
"""

import json
from collections.abc import Callable

import dagster as dg

from assets.jobs import rejudge_job
from assets.partitions import PROMPT_BATCHES
from pref_pipeline.config import PipelineConfig
from pref_pipeline.judging import judge_code_version

JUDGMENTS = dg.AssetKey("judgments")


def last_judge_version(instance: dg.DagsterInstance, batch: str) -> str | None:
    """The judge fingerprint of a batch's latest judgments, or None if never judged."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=JUDGMENTS, asset_partitions=[batch]), limit=1
    ).records
    return records[0].asset_materialization.tags.get("dagster/code_version") if records else None


def build_judge_change_sensor(load_config: Callable[[], PipelineConfig]) -> dg.SensorDefinition:
    @dg.sensor(
        name="judge_change_sensor",
        job=rejudge_job,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="Re-judges every batch (judgments and downstream) when the judge fingerprint changes.",
    )
    def judge_change_sensor(context: dg.SensorEvaluationContext):
        config = load_config()  # the file as it is now, not as the code location loaded it
        fingerprint = judge_code_version(config)
        judges = "+".join(spec.model for spec in config.judges)
        requested: dict[str, dict] = json.loads(context.cursor) if context.cursor else {}
        run_requests, waiting = [], []
        for batch in context.instance.get_dynamic_partitions(PROMPT_BATCHES.name):
            version = last_judge_version(context.instance, batch)
            if version is None or version == fingerprint:
                continue
            state = requested.get(batch, {})
            if state.get("fingerprint") == fingerprint:
                waiting.append(batch)  # requested already; its run has not stored new verdicts yet
                continue
            count = state.get("requests", 0) + 1
            requested[batch] = {"fingerprint": fingerprint, "requests": count}
            run_requests.append(dg.RunRequest(
                partition_key=batch,
                run_key=f"rejudge:{batch}:{count}:{version}->{fingerprint}",
                tags={"pref_pipeline/judge_model": judges, "pref_pipeline/judge_fingerprint": fingerprint,
                      "pref_pipeline/previous_judge_fingerprint": version},
            ))
        cursor = json.dumps(requested, sort_keys=True)
        if not run_requests:
            reason = (f"re-judging of {len(waiting)} batch(es) already requested for judge {fingerprint}"
                      if waiting else f"every judged batch is up to date with judge {fingerprint}")
            return dg.SensorResult(skip_reason=reason, cursor=cursor)
        context.log.info(f"judge changed to {fingerprint} ({judges}): requesting re-judging of "
                         f"{len(run_requests)} batch(es)")
        return dg.SensorResult(run_requests=run_requests, cursor=cursor)

    return judge_change_sensor
