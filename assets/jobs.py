"""Jobs the CLI, the sensors and the schedule launch."""

import dagster as dg

from assets.partitions import PROMPT_BATCHES

ROLLUPS = dg.AssetSelection.assets("preference_dataset", "audit_report")
# Opt-in assets the pipeline job leaves out: judge_calibration makes LLM calls of its own (job calibrate_judges).
OPT_IN = dg.AssetSelection.assets("judge_calibration")

REJUDGE_JOB, REBUILD_JOB, ROLLUP_JOB = "rejudge", "rebuild_from_judgments", "publish_dataset"

pipeline_job = dg.define_asset_job(
    "preference_pipeline",
    selection=dg.AssetSelection.all() - OPT_IN,
    partitions_def=PROMPT_BATCHES,
    description="Every asset for one prompt batch, prompts to export, then the dataset and the audit over every "
    "batch.",
)

rejudge_job = dg.define_asset_job(
    REJUDGE_JOB,
    selection=dg.AssetSelection.assets("judgments").downstream(),
    partitions_def=PROMPT_BATCHES,
    description="Judge a batch's stored candidates again (after a judge change) and rebuild everything downstream.",
)

rebuild_job = dg.define_asset_job(
    REBUILD_JOB,
    selection=dg.AssetSelection.assets("judgments").downstream(include_self=False),
    partitions_def=PROMPT_BATCHES,
    description="Rebuild everything below judgments for a batch from its stored verdicts and the human labels stored "
    "now (no LLM call): what a judge_is_current warning 'made before the batch's latest verdicts' asks for, e.g. "
    "after a judgments-only backfill, and what human_labels_sensor launches when people labelled the batch.",
)

rollup_job = dg.define_asset_job(
    ROLLUP_JOB,
    selection=ROLLUPS,
    description="Rebuild the combined dataset and the audit over every batch from what is stored.",
)
