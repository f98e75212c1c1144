"""The pipeline as Dagster assets: a thin layer over ``pref_pipeline``'s plain functions.

prompts -> candidates -> judgments -> preference_pairs (+ comparisons) -> preference_pairs_export
                                                                       -> audit_report
Tables are stored in one DuckDB database by the DuckDB IO manager; the export and the report are
files under ``PREF_PIPELINE_HOME``. ``build_pipeline_assets`` takes the run's configuration so the
judge's fingerprint can be the ``judgments`` code version (the UI then shows stale verdicts).
"""


import time

import dagster as dg
import pandas as pd

from pref_pipeline import audit as audit_lib
from pref_pipeline.accounting import usage_metadata
from pref_pipeline.config import PipelineConfig, generator_label
from pref_pipeline.batches import discover_batches
from pref_pipeline.export import export_batch
from pref_pipeline.gates import validate_pairs
from pref_pipeline.generation import generate_candidates
from pref_pipeline.judging.batch import judge_candidates
from pref_pipeline.judging.pairwise import fingerprint_for
from pref_pipeline.pairs import build_preference_pairs
from pref_pipeline.paths import Home
from pref_pipeline.sources import load_prompts

from assets.partitions import BATCH_COLUMN, PARTITION_METADATA, PROMPT_BATCHES
from assets.quality import QUARANTINE_OUT, build_quality_assets, filter_batch, prepare_export, quarantine_metadata
from assets.storage import read_tables

GROUP = "preference_data"
PREVIEW_ROWS = 5
PREVIEW_CHARS = 80


def preview(frame: pd.DataFrame, columns: list[str]) -> dg.MetadataValue:
    """A few rows, long text shortened, as Markdown for the asset page."""
    shown = frame[columns].head(PREVIEW_ROWS).copy()
    for column in shown.columns:
        if shown[column].dtype == object:
            shown[column] = shown[column].map(
                lambda v: (v[:PREVIEW_CHARS] + "…" if isinstance(v, str) and len(v) > PREVIEW_CHARS else v)
            )
    return dg.MetadataValue.md(shown.to_markdown(index=False) if len(shown) else "(no rows)")


def judge_code_version(config: PipelineConfig) -> str:
    """Changes whenever any judge's identity (model, template, criteria, sampling) changes."""
    return "+".join(fingerprint_for(spec) for spec in config.judges)


def tag_batch(frame: pd.DataFrame, context: dg.AssetExecutionContext) -> pd.DataFrame:
    """Every stored row says which prompt batch (partition) it belongs to."""
    return frame.assign(**{BATCH_COLUMN: context.partition_key})


def build_pipeline_assets(config: PipelineConfig) -> list:
    """All assets and checks for one configuration, partitioned by prompt batch."""

    @dg.asset(
        group_name=GROUP,
        kinds={"python", "duckdb"},
        partitions_def=PROMPT_BATCHES,
        metadata=PARTITION_METADATA,
        description="Prompts of one batch (a configured source, a file in prompt_folder, or the built-in set), "
        "exact repeats dropped.",
    )
    def prompts(context: dg.AssetExecutionContext) -> pd.DataFrame:
        started = time.perf_counter()
        batches = discover_batches(config)
        if context.partition_key not in batches:
            raise dg.Failure(description=f"no prompt batch {context.partition_key!r} in the configuration "
                             f"(batches: {', '.join(sorted(batches))}); was its file removed?")
        loaded = load_prompts(batches[context.partition_key], config.max_prompts)
        frame = tag_batch(loaded.prompts, context)
        if len(loaded.duplicates):
            context.log.warning(f"dropped {len(loaded.duplicates)} exact repeat prompt(s)")
        context.add_output_metadata({
            "dagster/row_count": len(frame),
            "duplicates_dropped": len(loaded.duplicates),
            "categories": dg.MetadataValue.json(frame["category"].value_counts().to_dict()),
            "sources": dg.MetadataValue.json(sorted(frame["source"].unique().tolist())),
            "preview": preview(frame, ["prompt_id", "category", "prompt"]),
            "seconds": round(time.perf_counter() - started, 3),
        })
        return frame

    @dg.asset(
        group_name=GROUP,
        kinds={"python", "duckdb"},
        pool="llm",
        partitions_def=PROMPT_BATCHES,
        metadata=PARTITION_METADATA,
        description="Candidate responses: candidates_per_prompt per prompt, spread over the generators "
        "(sampling sweeps, system-prompt variants, strong vs weak models).",
    )
    def candidates(context: dg.AssetExecutionContext, prompts: pd.DataFrame) -> pd.DataFrame:
        started = time.perf_counter()
        frame = tag_batch(generate_candidates(prompts, config, logger=context.log), context)
        ok = frame[frame["error"].isna()]
        context.add_output_metadata({
            "dagster/row_count": len(frame),
            "failed_calls": int(frame["error"].notna().sum()),
            "output_tokens": int(ok["output_tokens"].fillna(0).sum()),
            "by_generator": dg.MetadataValue.json(frame["generator_label"].value_counts().to_dict()),
            "generators": dg.MetadataValue.json([generator_label(g) for g in config.generators]),
            **usage_metadata(frame),  # llm_calls, llm_cached_calls, tokens, llm_cost_usd, per model
            "preview": preview(frame, ["prompt_id", "generator_label", "text"]),
            "seconds": round(time.perf_counter() - started, 3),
        })
        return frame

    @dg.asset(
        group_name=GROUP,
        kinds={"python", "duckdb"},
        pool="llm",
        partitions_def=PROMPT_BATCHES,
        metadata=PARTITION_METADATA,
        code_version=judge_code_version(config),
        description="Pairwise verdicts: every pair of a prompt's candidates, in both orders, by every judge, "
        "with the judge fingerprint, raw output and parse status of each.",
    )
    def judgments(context: dg.AssetExecutionContext, prompts: pd.DataFrame, candidates: pd.DataFrame) -> pd.DataFrame:
        started = time.perf_counter()
        frame = tag_batch(judge_candidates(prompts, candidates, config, logger=context.log), context)
        context.add_output_metadata({
            "dagster/row_count": len(frame),
            "judges": dg.MetadataValue.json(sorted(frame["judge_model"].unique().tolist()) if len(frame) else []),
            "judge_fingerprints": judge_code_version(config),
            "parse_status": dg.MetadataValue.json(frame["parse_status"].value_counts(dropna=False).astype(int).to_dict()
                                                  if len(frame) else {}),
            "failed_calls": int(frame["error"].notna().sum()),
            **usage_metadata(frame),  # llm_calls, llm_cached_calls, tokens, llm_cost_usd, per model
            "preview": preview(frame, ["comparison_id", "order", "preference", "confidence", "parse_status"]),
            "seconds": round(time.perf_counter() - started, 3),
        })
        return frame

    @dg.multi_asset(
        group_name=GROUP,
        partitions_def=PROMPT_BATCHES,
        outs={
            "preference_pairs": dg.AssetOut(kinds={"python", "duckdb"}, metadata=PARTITION_METADATA, description=(
                "The dataset: (prompt, chosen, rejected) where every judge preferred the same response in both "
                "orders, with generation_method, judge_model_id, criteria and full provenance.")),
            "comparisons": dg.AssetOut(kinds={"python", "duckdb"}, metadata=PARTITION_METADATA, description=(
                "Every judged comparison with its outcome (consistent, tie, inconsistent, unparseable, error, "
                "judges_disagree): nothing is dropped without a trace.")),
            "quarantine": QUARANTINE_OUT,
        },
    )
    def preference_pairs(context: dg.AssetExecutionContext, prompts: pd.DataFrame, candidates: pd.DataFrame,
                         judgments: pd.DataFrame):
        result = build_preference_pairs(prompts, candidates, judgments)
        kept, quarantine = filter_batch(config, prompts, candidates, result.pairs, result.comparisons)
        result = type(result)(tag_batch(kept, context), tag_batch(result.comparisons, context))
        statuses = result.comparisons["status"].value_counts().astype(int).to_dict()
        yield dg.Output(result.pairs, output_name="preference_pairs", metadata={
            "dagster/row_count": len(result.pairs),
            "preview": preview(result.pairs, ["prompt", "chosen", "rejected", "confidence"]),
        })
        yield dg.Output(result.comparisons, output_name="comparisons", metadata={
            "dagster/row_count": len(result.comparisons),
            "by_status": dg.MetadataValue.json(statuses),
        })
        quarantine = tag_batch(quarantine, context)
        yield dg.Output(quarantine, output_name="quarantine", metadata=quarantine_metadata(quarantine))

    @dg.asset(
        group_name=GROUP,
        kinds={"python", "file"},
        partitions_def=PROMPT_BATCHES,
        description="The published dataset: exports/preference_pairs.jsonl and .parquet under PREF_PIPELINE_HOME, "
        "the union of every published batch (each also under exports/batches/{batch}/). Validated again before "
        "writing, so a failing batch never replaces the last good export.",
    )
    def preference_pairs_export(context: dg.AssetExecutionContext, preference_pairs: pd.DataFrame,
                                judgments: pd.DataFrame) -> dg.MaterializeResult:
        # The gates again (with the dataset-level bounds), then the optional length rebalancing (assets/quality.py).
        preference_pairs, quality = prepare_export(context, config, preference_pairs, judgments)
        paths = export_batch(preference_pairs, Home.from_env().ensure().exports, context.partition_key)
        return dg.MaterializeResult(metadata={
            **quality,
            "dagster/row_count": len(preference_pairs),
            "jsonl": dg.MetadataValue.path(str(paths["jsonl"])),
            "parquet": dg.MetadataValue.path(str(paths["parquet"])),
            "batch_jsonl": dg.MetadataValue.path(str(paths["batch_jsonl"])),
        })

    # The gates (blocking checks on every stage), judgment_history and audit_report: assets/quality.py.
    return [prompts, candidates, judgments, preference_pairs, preference_pairs_export, *build_quality_assets(config)]
