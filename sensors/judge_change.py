"""A sensor that re-judges every batch when the judge configuration changes.

The judge fingerprint (model, prompt template, criteria, sampling) is the ``judgments`` asset's code
version, which Dagster records on each materialization. When the configured fingerprint differs
from the one a batch was last judged with, the sensor requests the ``rejudge`` job for that batch,
once per (fingerprint, batch) thanks to the run key. Old verdicts stay in the judgment history, so
the audit can report drift between the old and the new judge.
"""

from collections.abc import Callable

import dagster as dg

from assets.jobs import rejudge_job
from assets.partitions import PROMPT_BATCHES
from assets.pipeline import judge_code_version
from pref_pipeline.config import PipelineConfig

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
        stale = [
            batch for batch in context.instance.get_dynamic_partitions(PROMPT_BATCHES.name)
            if (version := last_judge_version(context.instance, batch)) is not None and version != fingerprint
        ]
        if not stale:
            return dg.SkipReason(f"every judged batch is up to date with judge {fingerprint}")
        context.log.info(f"judge changed to {fingerprint} ({judges}): re-judging {len(stale)} batch(es)")
        return [
            dg.RunRequest(
                partition_key=batch,
                run_key=f"rejudge:{fingerprint}:{batch}",
                tags={"pref_pipeline/judge_model": judges, "pref_pipeline/judge_fingerprint": fingerprint},
            )
            for batch in stale
        ]

    return judge_change_sensor
