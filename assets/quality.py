"""Data quality in Dagster: the GX gates as blocking checks, quarantine, judgment history and the audit.

A thin layer over ``pref_pipeline.gates``, ``filters``, ``store`` and ``audit``:

- ``prompts_gate``, ``candidates_gate``, ``judgments_gate``, ``preference_pairs_gate``: one Great
  Expectations suite per stage, run as blocking checks (ERROR severity): a failing suite stops the
  downstream steps of the run. The failed expectations, the dataset-level figures and sample
  offending rows are the check's metadata; the rows it rejects are added to ``quarantine``.
- ``quarantine``: an output of ``preference_pairs`` (see ``QUARANTINE_OUT`` and ``filter_batch``):
  every comparison that gave no pair and every pair a filter dropped, with stage and reason.
- ``judgment_history``: append-only record of every verdict of every judge version.
- ``audit_report``: the audit over every stored batch, with plots shown in the UI.
- ``prepare_export``: what the export runs before writing (the gate again, with the dataset-level
  bounds; then the optional length rebalancing and recency weight).
"""

import time
import warnings

import dagster as dg
import pandas as pd

from assets.partitions import BATCH_COLUMN, PARTITION_METADATA, PROMPT_BATCHES
from pref_pipeline import audit as audit_lib
from pref_pipeline import gates, store
from pref_pipeline.config import PipelineConfig
from pref_pipeline.export import RECENCY_COLUMN, with_recency_weight
from pref_pipeline.filters import filter_pairs, reason_counts, rebalance_length
from pref_pipeline.judging.pairwise import fingerprint_for
from pref_pipeline.paths import Home

GROUP = "preference_data"
SAMPLE_ROWS = 5
SAMPLE_CHARS = 80

QUARANTINE_OUT = dg.AssetOut(
    kinds={"python", "duckdb"}, metadata=PARTITION_METADATA,
    description="Every row the pipeline did not publish, with its stage and reason: comparisons that gave no pair "
    "(tie, inconsistent, unparseable, error, judges_disagree), pairs dropped by the filters, failed generation calls, "
    "and rows rejected by a failing gate or the export's length rebalancing. The original row is kept as JSON.")

SHOWN_COLUMNS = {
    "prompts": ["prompt_id", "category", "prompt"],
    "candidates": ["candidate_id", "prompt_id", "generator_label", "text", "error"],
    "judgments": ["judgment_id", "comparison_id", "order", "preference", "confidence", "parse_status"],
    "preference_pairs": ["pair_id", "prompt", "chosen", "rejected", "confidence"],
}


def _short(value):
    if isinstance(value, str) and len(value) > SAMPLE_CHARS:
        return value[:SAMPLE_CHARS] + "…"
    return value


def table_md(frame: pd.DataFrame, columns: list[str], rows: int = SAMPLE_ROWS) -> str:
    shown = frame[[c for c in columns if c in frame.columns]].head(rows).copy()
    if shown.empty:
        return "(no rows)"
    for column in shown.columns:
        shown[column] = shown[column].map(_short)
    return shown.to_markdown(index=False)


# --------------------------------------------------------------------------- pieces pipeline.py calls

def filter_batch(config: PipelineConfig, prompts: pd.DataFrame, candidates: pd.DataFrame, pairs: pd.DataFrame,
                 comparisons: pd.DataFrame):
    """Filters before the gate: (kept pairs, quarantine rows). Tag both with the batch afterwards."""
    result = filter_pairs(pairs, comparisons, prompts, candidates, config.filters)
    return result.pairs, result.quarantine


def quarantine_metadata(quarantine: pd.DataFrame) -> dict:
    return {
        "dagster/row_count": len(quarantine),
        "by_reason": dg.MetadataValue.json(reason_counts(quarantine)),
        "preview": dg.MetadataValue.md(table_md(quarantine, ["stage", "reason", "detail", "item_id"])),
    }


def prepare_export(context: dg.AssetExecutionContext, config: PipelineConfig, pairs: pd.DataFrame,
                   judgments: pd.DataFrame | None) -> tuple[pd.DataFrame, dict]:
    """Validate once more (row-level and dataset-level gates); rebalance lengths and add ``recency_weight``
    if configured (``export.rebalance_length``, ``export.recency_half_life_days``).

    Raises ``dg.Failure`` when the gate fails, so a failing batch never replaces the last good export.
    Returns the pairs to write and metadata for the export.
    """
    gate = gates.validate_pairs(pairs, config.gates, judgments)
    if not gate.success:
        raise dg.Failure(description=f"not exported: {gate.summary()}", metadata={
            "failed_expectations": dg.MetadataValue.json(gate.failures),
            "failures": dg.MetadataValue.md("\n".join(f"- {line}" for line in gates.describe_failures(gate))),
        })
    metadata: dict = {"gate": gate.summary()}
    if config.export.rebalance_length:
        pairs, dropped = rebalance_length(pairs)
        if len(pairs) < config.gates.min_pairs:
            raise dg.Failure(description=f"not exported: length rebalancing left {len(pairs)} pair(s), fewer than "
                             f"gates.min_pairs = {config.gates.min_pairs}")
        if len(dropped):
            if context.has_partition_key:
                dropped = dropped.assign(**{BATCH_COLUMN: context.partition_key})
            store.append_quarantine(Home.from_env().ensure().database, dropped)
        share = audit_lib.longer_chosen_share(pairs)
        metadata.update({"rebalanced_away": len(dropped), "pct_longer_chosen_after_rebalance": share})
        context.log.info(f"length rebalancing: {len(dropped)} pair(s) left out of the export (kept in quarantine)")
    half_life = config.export.recency_half_life_days
    if half_life:
        # Age counted from the newest verdict stored in any batch (or this batch's newest, if later).
        newest = store.newest_verdict(Home.from_env().ensure().database)
        pairs = with_recency_weight(pairs, half_life, newest)
        metadata.update({"recency_half_life_days": half_life,
                         "recency_reference": str(newest) if newest is not None else "newest pair of the batch",
                         "recency_weight_min": float(pairs[RECENCY_COLUMN].min()) if len(pairs) else None})
    return pairs, metadata


# --------------------------------------------------------------------------- checks and assets

def _gate_result(stage: str, frame: pd.DataFrame, gate: gates.GateResult, context) -> dg.AssetCheckResult:
    metadata: dict = {"evaluated": gate.evaluated, "figures": dg.MetadataValue.json(gate.figures)}
    if not gate.success:
        rejected = gates.gate_quarantine(stage, frame, gate)
        if context.has_partition_key:
            rejected = rejected.assign(**{BATCH_COLUMN: context.partition_key})
        store.append_quarantine(Home.from_env().ensure().database, rejected)
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
            "quarantined_rows": len(rejected),
        })
    return dg.AssetCheckResult(passed=gate.success, severity=dg.AssetCheckSeverity.ERROR,
                               description=gate.summary(), metadata=metadata)


def gate_check(asset: str, description: str, **kwargs):
    """A blocking check of one prompt batch (partition); partitioned checks are a Dagster 1.13 preview."""
    def decorate(fn):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", dg.PreviewWarning)
            return dg.asset_check(asset=asset, blocking=True, partitions_def=PROMPT_BATCHES, description=description,
                                  **kwargs)(fn)
    return decorate


def build_quality_assets(config: PipelineConfig) -> list:
    """The gates on every stage, judgment_history and audit_report, for one configuration."""
    spec = config.gates
    slots = {fingerprint_for(judge): index for index, judge in enumerate(config.judges)}

    @gate_check("prompts",
                description="GX suite on prompts: columns, ids unique and present, prompt text not empty, "
                    "at least gates.min_prompts rows.")
    def prompts_gate(context: dg.AssetCheckExecutionContext, prompts: pd.DataFrame) -> dg.AssetCheckResult:
        return _gate_result("prompts", prompts, gates.validate_prompts(prompts, spec), context)

    @gate_check("candidates",
                description="GX suite on candidates: columns and types, unique ids, a text for every call that "
                    "did not fail, at least gates.min_candidates rows.")
    def candidates_gate(context: dg.AssetCheckExecutionContext, candidates: pd.DataFrame) -> dg.AssetCheckResult:
        return _gate_result("candidates", candidates, gates.validate_candidates(candidates, spec), context)

    @gate_check("judgments",
                description="GX suite on judgments: unique ids, verdicts in {A, B, tie}, orders in {xy, yx}, "
                    "confidence in [0, 1], a verdict wherever parsing succeeded, at least gates.min_judgments rows.")
    def judgments_gate(context: dg.AssetCheckExecutionContext, judgments: pd.DataFrame) -> dg.AssetCheckResult:
        return _gate_result("judgments", judgments, gates.validate_judgments(judgments, spec), context)

    @gate_check("preference_pairs", additional_ins={"judgments": dg.AssetIn("judgments")},
                description="GX suite on the pairs: required fields, unique pair ids, chosen differs from "
                    "rejected, confidence in [0, 1], decisive verdicts, at least gates.min_pairs pairs; and, when "
                    "configured, position consistency above gates.min_position_consistency and the share of "
                    "longer-chosen pairs within 0.5 ± gates.max_length_bias.")
    def preference_pairs_gate(context: dg.AssetCheckExecutionContext, preference_pairs: pd.DataFrame,
                              judgments: pd.DataFrame) -> dg.AssetCheckResult:
        gate = gates.validate_pairs(preference_pairs, spec, judgments)
        return _gate_result("preference_pairs", preference_pairs, gate, context)

    @dg.asset(
        group_name=GROUP,
        kinds={"python", "duckdb"},
        partitions_def=PROMPT_BATCHES,
        description="Append-only record of every verdict of every judge version (judgment_id + judge_fingerprint), "
        "with its category, timestamps and a recency weight: the audit's drift figures come from it.",
    )
    def judgment_history(context: dg.AssetExecutionContext, prompts: pd.DataFrame,
                         judgments: pd.DataFrame) -> dg.MaterializeResult:
        started = time.perf_counter()
        appended, total = store.append_judgment_history(
            Home.from_env().ensure().database, judgments, prompts, run_id=context.run_id,
            half_life_days=config.audit.recency_half_life_days, slots=slots)
        return dg.MaterializeResult(metadata={
            "appended": appended, "already_recorded": len(judgments) - appended, "total_rows": total,
            "table": f"pref.{store.HISTORY_TABLE}", "seconds": round(time.perf_counter() - started, 3),
        })

    @dg.asset(
        group_name=GROUP,
        kinds={"duckdb", "file"},
        partitions_def=PROMPT_BATCHES,
        deps=["judgment_history", "preference_pairs_export"],  # after the export: it may leave pairs out
        description="The audit over every batch stored so far (this batch's own under reports/batches/{batch}/): "
        "length bias with intervals and a length-controlled view, position bias, judge and human agreement, drift "
        "between judge versions, quarantine; reports/audit.json, audit.md and plots.",
    )
    def audit_report(context: dg.AssetExecutionContext, preference_pairs: pd.DataFrame, judgments: pd.DataFrame,
                     comparisons: pd.DataFrame, quarantine: pd.DataFrame) -> dg.MaterializeResult:
        started = time.perf_counter()
        home = Home.from_env().ensure()
        band = config.audit.length_bias_band
        batch_figures = audit_lib.compute_audit(preference_pairs, judgments, comparisons, quarantine=quarantine,
                                                band=band)
        batch_folder = home.reports / "batches" / context.partition_key
        audit_lib.write_report(batch_figures, batch_folder, plots=False)
        figures = audit_lib.audit_database(home.database, band=band)
        json_path, md_path = audit_lib.write_report(figures, home.reports, plots=config.audit.plots)
        images = {}
        if config.audit.plots:
            from pref_pipeline.plots import PLOTS, data_uri

            images = {name: data_uri(home.reports / f"{name}.png") for name in PLOTS
                      if (home.reports / f"{name}.png").exists()}
        for flag in figures["flags"]:
            context.log.warning(flag)
        return dg.MaterializeResult(metadata={
            "report": dg.MetadataValue.md(audit_lib.render_markdown(figures, images)),
            "length_bias.pct_longer_chosen": figures["length_bias"]["pct_longer_chosen"],
            "length_bias.flagged": figures["length_bias"]["flagged"],
            "position_bias.consistency_rate": figures["position_bias"]["consistency_rate"],
            "position_bias.first_position_win_rate": figures["position_bias"]["first_position_win_rate"],
            "pairs.kept": figures["pairs"]["kept"],
            "pairs.quarantined": figures["pairs"]["quarantined"],
            "batch.pairs.kept": batch_figures["pairs"]["kept"],
            "flags": dg.MetadataValue.json(figures["flags"]),
            "audit_json": dg.MetadataValue.path(str(json_path)),
            "audit_md": dg.MetadataValue.path(str(md_path)),
            "batch_audit_json": dg.MetadataValue.path(str(batch_folder / "audit.json")),
            "seconds": round(time.perf_counter() - started, 3),
        })

    return [prompts_gate, candidates_gate, judgments_gate, preference_pairs_gate, judgment_history, audit_report]
