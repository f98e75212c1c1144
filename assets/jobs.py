"""Jobs the CLI, the sensors and the schedule launch."""

import dagster as dg

from assets.partitions import PROMPT_BATCHES

ROLLUPS = dg.AssetSelection.assets("preference_dataset", "audit_report")
# Opt-in assets the pipeline job leaves out: judge_calibration makes LLM calls of its own (job calibrate_judges).
OPT_IN = dg.AssetSelection.assets("judge_calibration")

pipeline_job = dg.define_asset_job(
    "preference_pipeline",
    selection=dg.AssetSelection.all() - OPT_IN,
    partitions_def=PROMPT_BATCHES,
    description="Every asset for one prompt batch, prompts to export, then the dataset and the audit over every "
    "batch.",
)

rejudge_job = dg.define_asset_job(
    "rejudge",
    selection=dg.AssetSelection.assets("judgments").downstream(),
    partitions_def=PROMPT_BATCHES,
    description="Judge a batch's stored candidates again (after a judge change) and rebuild everything downstream.",
)

# The pairs step's outputs (one multi-asset) and what is made from them: what new human labels change.
PAIRS_STEP = dg.AssetSelection.assets("preference_pairs", "comparisons", "quarantine", "batch_audit")
relabel_job = dg.define_asset_job(
    "relabel",
    selection=PAIRS_STEP.downstream(),
    partitions_def=PROMPT_BATCHES,
    description="Rebuild a batch's pairs from its stored candidates and verdicts with the human labels stored now "
    "(after people labelled its comparisons), and everything made from them; no LLM call.",
)

rollup_job = dg.define_asset_job(
    "publish_dataset",
    selection=ROLLUPS,
    description="Rebuild the combined dataset and the audit over every batch from what is stored.",
)
