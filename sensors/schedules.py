"""The regular run: every known prompt batch on a cron schedule (``schedule.cron``, daily by default).

It is off until turned on in the UI. With the response cache, a batch whose inputs did not change
costs no LLM call; what it refreshes is whatever did change.
"""

import dagster as dg

from assets.jobs import pipeline_job
from assets.partitions import PROMPT_BATCHES
from pref_pipeline.config import PipelineConfig


def build_refresh_schedule(config: PipelineConfig) -> dg.ScheduleDefinition:
    @dg.schedule(
        name="refresh_schedule",
        job=pipeline_job,
        cron_schedule=config.schedule.cron,
        execution_timezone=config.schedule.timezone,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="Re-runs every prompt batch on a schedule (off by default).",
    )
    def refresh_schedule(context: dg.ScheduleEvaluationContext):
        batches = context.instance.get_dynamic_partitions(PROMPT_BATCHES.name)
        if not batches:
            return dg.SkipReason("no prompt batch yet: turn on prompt_batches_sensor or run pref-pipeline once")
        stamp = context.scheduled_execution_time.isoformat() if context.scheduled_execution_time else "now"
        return [dg.RunRequest(partition_key=batch, run_key=f"{stamp}:{batch}") for batch in batches]

    return refresh_schedule
