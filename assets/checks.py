"""The Great Expectations gates as blocking asset checks: one suite per stage (``pref_pipeline.gates``).

A failing suite on prompts, candidates or judgments stops the steps after it in the run. Checks only
check: they return a result whose metadata names the failed expectations, the dataset-level figures and
sample offending rows; the rows stay in their stage's table as evidence. The pairs gate is evaluated by
the pairs step itself (``PAIRS_GATE`` in its ``check_specs``), because the rows it rejects belong in
``quarantine``, which that step owns; it does not stop the run's roll-ups: the batch's
``batch_published`` partition fails with the cause instead (``assets/publishing.py``).
"""


import time
import warnings

import dagster as dg
import pandas as pd

from assets.metadata import table_md
from assets.partitions import PROMPT_BATCHES
from pref_pipeline import gates
from pref_pipeline.config import PipelineConfig
from pref_pipeline.generation import asks_judges
from pref_pipeline.quarantine import BATCH_REJECTED

SHOWN_COLUMNS = {
    "prompts": ["prompt_id", "category", "prompt"],
    "candidates": ["candidate_id", "prompt_id", "generator_label", "text", "error"],
    "judgments": ["judgment_id", "comparison_id", "order", "preference", "confidence", "parse_status"],
    "preference_pairs": ["pair_id", "prompt", "chosen", "rejected", "confidence"],
}

with warnings.catch_warnings():  # a check per prompt batch (partition) is a Dagster 1.13 preview
    warnings.simplefilter("ignore", dg.PreviewWarning)
    PAIRS_GATE = dg.AssetCheckSpec(
        "preference_pairs_gate", asset="preference_pairs", partitions_def=PROMPT_BATCHES,
        description="GX suite on the pairs of one batch: required fields, unique pair ids, chosen differs from "
        "rejected, confidence in [0, 1], decisive verdicts, at least gates.min_pairs pairs; and, when configured, "
        "position consistency above gates.min_position_consistency and the share of longer-chosen pairs within "
        "0.5 ± gates.max_length_bias. Evaluated per batch (partition). A failing batch is not exported: its pairs "
        f"go to quarantine ({BATCH_REJECTED}) and its batch_published partition fails with the cause, until a run "
        "of the batch passes. Not blocking in Dagster's sense, so the roll-ups over the batches that passed still "
        "run.")


def gate_check_result(stage: str, frame: pd.DataFrame, gate: gates.GateResult, *, check_name: str | None = None,
                      quarantined: int | None = None, cause: str | None = None,
                      seconds: float | None = None) -> dg.AssetCheckResult:
    """The check result of one gate: pass/fail (ERROR severity) and what a person needs to see why; ``cause``
    says it in the user's terms (``pref_pipeline.diagnosis``) ahead of the expectations' names."""
    metadata: dict = {"evaluated": gate.evaluated, "figures": dg.MetadataValue.json(gate.figures)}
    if seconds is not None:  # the suite's own time (the first gate of a process also imports GX)
        metadata["seconds"] = round(seconds, 3)
    description = gate.summary()
    if not gate.success and cause:
        description = f"{stage}: {cause} ({description.removeprefix(f'{stage}: ')})"
        metadata["cause"] = cause
    if not gate.success:
        ids = gate.failing_ids()
        id_column = gates.ID_COLUMNS[stage]
        if id_column in frame.columns and ids:
            offending, shown = frame[frame[id_column].astype(str).isin(ids)], "rows named by the failed expectations"
        else:  # only table-level expectations failed (row count, a bound): show the batch they judged
            offending, shown = frame, "first rows of the rejected batch (the failed expectations are table-level)"
        metadata.update({
            "failures": dg.MetadataValue.md("\n".join(f"- {line}" for line in gates.describe_failures(gate))),
            "failed_expectations": dg.MetadataValue.json(gate.failures),
            "sample_rows": dg.MetadataValue.md(table_md(offending, SHOWN_COLUMNS[stage])),
            "sample_rows_are": shown,
            "rejected_ids": dg.MetadataValue.json(sorted(ids)[:gates.SAMPLE_IDS]),
        })
        if quarantined is not None:
            metadata["quarantined_rows"] = quarantined
    extra = {"check_name": check_name, "asset_key": stage} if check_name else {}
    return dg.AssetCheckResult(passed=gate.success, severity=dg.AssetCheckSeverity.ERROR,
                               description=description, metadata=metadata, **extra)


def timed_gate(stage: str, frame: pd.DataFrame, validate) -> dg.AssetCheckResult:
    """Validate one stage's frame and report it, with the time the suite took."""
    started = time.perf_counter()
    gate = validate(frame)
    return gate_check_result(stage, frame, gate, seconds=time.perf_counter() - started)


def stage_check(asset: str, description: str):
    """A blocking check of one prompt batch (partition); partitioned checks are a Dagster 1.13 preview."""
    def decorate(fn):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", dg.PreviewWarning)
            return dg.asset_check(asset=asset, blocking=True, partitions_def=PROMPT_BATCHES,
                                  description=description)(fn)
    return decorate


def build_stage_checks(config: PipelineConfig) -> list:
    """The gates on prompts, candidates and judgments (the pairs gate is part of the pairs step)."""
    spec = config.gates

    @stage_check("prompts", "GX suite on prompts: columns, ids unique and present, prompt text not empty, "
                 "at least gates.min_prompts rows.")
    def prompts_gate(prompts: pd.DataFrame) -> dg.AssetCheckResult:
        return timed_gate("prompts", prompts, lambda frame: gates.validate_prompts(frame, spec))

    @stage_check("candidates", "GX suite on candidates: columns and types, unique ids, a text for every call that "
                 "did not fail, at least gates.min_candidates rows.")
    def candidates_gate(candidates: pd.DataFrame) -> dg.AssetCheckResult:
        return timed_gate("candidates", candidates, lambda frame: gates.validate_candidates(frame, spec))

    @stage_check("judgments", "GX suite on judgments: unique ids, verdicts in {A, B, tie}, orders in {xy, yx}, "
                 "confidence in [0, 1], a verdict wherever parsing succeeded, at least gates.min_judgments rows.")
    def judgments_gate(judgments: pd.DataFrame) -> dg.AssetCheckResult:
        # When no configured strategy asks the judges (all labels by construction), no verdict is expected.
        judged = spec if asks_judges(config) else spec.model_copy(update={"min_judgments": 0})
        return timed_gate("judgments", judgments, lambda frame: gates.validate_judgments(frame, judged))

    return [prompts_gate, candidates_gate, judgments_gate]
