"""The pipeline's chain as Dagster assets, one prompt batch (partition) at a time.

prompts -> candidates -> judgments -> preference_pairs (+ comparisons, quarantine)

A thin layer: each asset calls one function of ``pref_pipeline`` and describes what it made. Tables
are stored by the IO manager (``assets/storage.py``); LLM calls go through the ``llm`` resource.
The pairs gate runs inside the step that owns the ``quarantine`` table, so the rows it rejects are
kept with their reason by that table's one writer; its result is the per-batch
``preference_pairs_gate`` check, and ``batch_published`` (``assets/publishing.py``) fails for a batch it blocks.
"""


import time

import dagster as dg
import pandas as pd

from assets.checks import PAIRS_GATE, gate_check_result
from assets.column_schema import column_schema_metadata
from assets.metadata import plot_entries, plotted_figures, preview, quarantine_by_kind, strategy_table, table_md, tag_batch
from assets.partitions import PROMPT_BATCHES
from assets.resources import LLMCalls, PipelineHome
from pref_pipeline import audit as audit_lib
from pref_pipeline.accounting import usage_metadata
from pref_pipeline.batches import BUILTIN_BATCH, UnknownBatch, discover_batches, load_batch
from pref_pipeline.config import PipelineConfig, generator_label
from pref_pipeline.generation import generate_candidates
from pref_pipeline.judging import judge_code_version
from pref_pipeline.judgments import judge_comparisons
from pref_pipeline.locks import batch_step_lock
from pref_pipeline import store
from pref_pipeline.human_pairs import LABELS_DIGEST
from pref_pipeline.pairing import PAIRS_TABLE, make_pairs
from pref_pipeline.quarantine import AWAITING_LABEL, TO_LABEL_COMMAND, reason_counts

GROUP = "preference_data"


def stored_table(name: str) -> dict:
    """Definition metadata of a stored table: its columns (from ``pref_pipeline.schema``) for the asset page's
    Columns tab."""
    return column_schema_metadata(name)


QUARANTINE_OUT = dg.AssetOut(
    kinds={"python", "parquet"}, metadata=stored_table("quarantine"),
    description="Every row the pipeline did not publish, with its stage and reason: comparisons that gave no pair "
    "(tie, inconsistent, unparseable, error, judges_disagree), pairs dropped by the filters, failed generation calls, "
    "pairs of a batch the pairs gate rejected, and pairs the export's length rebalancing leaves out. The original "
    "row is kept as JSON.")


def quarantine_metadata(quarantine: pd.DataFrame) -> dict:
    return {
        "dagster/row_count": len(quarantine),
        "by_reason": dg.MetadataValue.json(reason_counts(quarantine)),
        "preview": dg.MetadataValue.md(table_md(quarantine, ["stage", "reason", "detail", "item_id"])),
    }


def partition_names_hint(config: PipelineConfig) -> str:
    """What to type in "Add a partition": the batch names the configuration has now (a partition is a batch)."""
    names = sorted(discover_batches(config))
    shown = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
    return (f"A partition is a prompt batch, named after a prompt file in prompt_folder (its name without the "
            f"extension), a source's batch, or {BUILTIN_BATCH} for the built-in set; when these definitions were "
            f"loaded the valid names were: {shown} (Reload definitions after adding a file).")


def batch_plots(figures: dict, folder) -> dict[str, str]:
    """This batch's audit plots (``audit.plots``), written beside its audit.json: name -> ``data:`` URI."""
    from pref_pipeline.audit.plots import data_uri, make_plots

    return {name: data_uri(path) for name, path in make_plots(figures, folder).items()}


def build_chain_assets(config: PipelineConfig) -> list:
    """prompts, candidates, judgments and the pairs step, for one configuration."""

    @dg.multi_asset(
        group_name=GROUP,
        partitions_def=PROMPT_BATCHES,
        outs={
            "prompts": dg.AssetOut(kinds={"python", "parquet"}, metadata=stored_table("prompts"), description=(
                "Prompts of one batch (a configured source, a file in prompt_folder, or the built-in set), exact "
                f"repeats dropped. {partition_names_hint(config)}")),
            "rejected_prompts": dg.AssetOut(kinds={"python", "parquet"}, description=(
                "Rows of the batch's prompt files set aside under on_bad_rows: skip (invalid JSON, no prompt, "
                "wrong type, bad encoding...), with file, line and reason; the pairs step records them in "
                "quarantine.")),
        },
    )
    def prompts(context: dg.AssetExecutionContext):
        started = time.perf_counter()
        try:
            batch = load_batch(config, context.partition_key)
        except UnknownBatch as exc:
            raise dg.Failure(description=str(exc)) from None
        if batch.duplicates:
            context.log.warning(f"dropped {batch.duplicates} exact repeat prompt(s)")
        for warning in batch.warnings:
            context.log.warning(warning)
        yield dg.Output(batch.prompts, output_name="prompts", metadata={
            "dagster/row_count": len(batch.prompts),
            "duplicates_dropped": batch.duplicates,
            "categories": dg.MetadataValue.json(batch.prompts["category"].value_counts().to_dict()),
            "sources": dg.MetadataValue.json(sorted(batch.prompts["source"].unique().tolist())),
            "batch_fingerprint": batch.fingerprint,  # the prompt sensor's "already done" test
            "rejected_rows": len(batch.rejected),
            "preview": preview(batch.prompts, ["prompt_id", "category", "prompt"]),
            "seconds": round(time.perf_counter() - started, 3),
        })
        yield dg.Output(batch.rejected, output_name="rejected_prompts", metadata={
            "dagster/row_count": len(batch.rejected),
            "preview": preview(batch.rejected, ["source", "line", "reason", "detail"]),
        })

    @dg.asset(
        group_name=GROUP,
        kinds={"python", "parquet"},
        pool="llm",
        partitions_def=PROMPT_BATCHES,
        metadata=stored_table("candidates"),
        description="Candidate responses of every configured strategy (sampling: candidates_per_prompt per prompt, "
        "spread over the generators: sampling sweeps, system-prompt variants, strong vs weak models).",
    )
    def candidates(context: dg.AssetExecutionContext, llm: LLMCalls, prompts: pd.DataFrame) -> pd.DataFrame:
        started = time.perf_counter()
        with batch_step_lock(llm.home.paths(), context.partition_key, "candidates", context.log):
            generated = generate_candidates(prompts, config, llm.settings(), logger=context.log)
        frame = tag_batch(generated.candidates, context)
        ok = frame[frame["error"].isna()]
        context.add_output_metadata({
            "dagster/row_count": len(frame),
            "failed_calls": int(frame["error"].notna().sum()),
            "output_tokens": int(pd.to_numeric(ok["output_tokens"], errors="coerce").fillna(0).sum()),
            "by_strategy": dg.MetadataValue.json(frame["strategy"].value_counts().to_dict()),
            "by_role": dg.MetadataValue.json(frame["role"].value_counts().to_dict()),
            "by_generator": dg.MetadataValue.json(frame["generator_label"].value_counts().to_dict()),
            "generators": dg.MetadataValue.json([generator_label(g) for g in config.generators]),
            **usage_metadata(generated.usage),  # llm_calls, llm_cached_calls, tokens, llm_cost_usd, per model
            "preview": preview(frame, ["prompt_id", "generator_label", "text"]),
            "seconds": round(time.perf_counter() - started, 3),
        })
        return frame

    @dg.asset(
        group_name=GROUP,
        kinds={"python", "parquet"},
        pool="llm",
        partitions_def=PROMPT_BATCHES,
        metadata=stored_table("judgments"),
        code_version=judge_code_version(config),
        description="Verdicts on every comparison the strategies ask to judge, in both orders, by every judge, "
        "with the judge fingerprint, raw output and parse status of each.",
    )
    def judgments(context: dg.AssetExecutionContext, llm: LLMCalls, prompts: pd.DataFrame,
                  candidates: pd.DataFrame) -> pd.DataFrame:
        started = time.perf_counter()
        with batch_step_lock(llm.home.paths(), context.partition_key, "judgments", context.log):
            judged = judge_comparisons(prompts, candidates, config, llm.settings(), logger=context.log)
        frame = tag_batch(judged.judgments, context)
        context.add_output_metadata({
            "dagster/row_count": len(frame),
            "judges": dg.MetadataValue.json(sorted(frame["judge_model"].unique().tolist()) if len(frame) else []),
            "judge_fingerprints": judge_code_version(config),
            "parse_status": dg.MetadataValue.json(frame["parse_status"].value_counts(dropna=False).astype(int).to_dict()
                                                  if len(frame) else {}),
            "failed_calls": int(frame["error"].notna().sum()),
            **usage_metadata(judged.usage),  # llm_calls, llm_cached_calls, tokens, llm_cost_usd, per model
            "preview": preview(frame, ["comparison_id", "order", "preference", "confidence", "parse_status"]),
            "seconds": round(time.perf_counter() - started, 3),
        })
        return frame

    @dg.multi_asset(
        group_name=GROUP,
        partitions_def=PROMPT_BATCHES,
        outs={
            "preference_pairs": dg.AssetOut(kinds={"python", "parquet"}, metadata=stored_table("preference_pairs"), description=(
                "The dataset: (prompt, chosen, rejected) where every judge preferred the same response in both "
                "orders, with generation_method, judge_model_id, criteria and full provenance.")),
            "comparisons": dg.AssetOut(kinds={"python", "parquet"}, metadata=stored_table("comparisons"), description=(
                "Every judged comparison with its outcome (consistent, tie, inconsistent, unparseable, error, "
                "judges_disagree), or decided by construction or by people (human labels), or awaiting_label "
                "(waits for people): nothing is dropped without a trace.")),
            "quarantine": QUARANTINE_OUT,
            "batch_audit": dg.AssetOut(dagster_type=dg.Nothing, kinds={"duckdb", "file"}, description=(
                "This batch's own audit (reports/batches/{batch}/audit.json and audit.md): length and position "
                "bias, outcomes and quarantine of this batch alone. Written by the pairs step, so a batch the "
                "pairs gate blocks still has its audit, saying why.")),
        },
        check_specs=[PAIRS_GATE],
    )
    def preference_pairs(context: dg.AssetExecutionContext, home: PipelineHome, prompts: pd.DataFrame,
                         rejected_prompts: pd.DataFrame, candidates: pd.DataFrame, judgments: pd.DataFrame):
        """The pairs step (``pairing.make_pairs``): pairs, comparisons, quarantine, this batch's audit, and the
        pairs gate's verdict as this batch's check result."""
        batch = context.partition_key
        paths = home.paths()
        step = make_pairs(prompts, rejected_prompts, candidates, judgments, config, paths.batch_reports(batch),
                          batch=batch, human_labels=store.read_table(paths, store.HUMAN_LABELS_TABLE))
        if step.awaiting_label:
            context.log.info(f"{step.awaiting_label} comparison(s) await human labels: `{TO_LABEL_COMMAND}` writes "
                             "them to label; the next run of this batch makes pairs of what people labelled")
        if step.left_out:
            context.log.info(f"length rebalancing: {step.left_out} pair(s) left out of the export (in quarantine)")
        pairs, comparisons, quarantine, figures = step.pairs, step.comparisons, step.quarantine, step.audit
        yield dg.Output(pairs, output_name="preference_pairs", metadata={
            "dagster/row_count": len(pairs),
            "by_generation_method": dg.MetadataValue.json(pairs["generation_method"].value_counts().astype(int).to_dict()),
            "by_label_source": dg.MetadataValue.json(pairs["label_source"].value_counts().astype(int).to_dict()),
            "preview": preview(pairs, ["prompt", "chosen", "rejected", "confidence"]),
            "seconds": round(step.seconds, 3),
        })
        yield dg.Output(comparisons, output_name="comparisons", metadata={
            "dagster/row_count": len(comparisons),
            "by_status": dg.MetadataValue.json(comparisons["status"].value_counts().astype(int).to_dict()),
            AWAITING_LABEL: step.awaiting_label,  # the CLI's run reads it: how many wait for people
            "human_labelled": int((comparisons["n_human_labels"].fillna(0) > 0).sum()),
            LABELS_DIGEST: step.labels_digest,  # the human-label sensor's "already applied" test
        })
        yield dg.Output(quarantine, output_name="quarantine", metadata=quarantine_metadata(quarantine))
        yield dg.Output(None, output_name="batch_audit", metadata={
            **plotted_figures(audit_lib.headline_figures(figures)),  # per judge too: plots over re-runs
            "pairs.kept": figures["pairs"]["kept"],
            "published": step.published,
            AWAITING_LABEL: step.awaiting_label,
            "length_bias.pct_longer_chosen": figures["length_bias"]["pct_longer_chosen"],
            "position_bias.consistency_rate": figures["position_bias"]["consistency_rate"],
            "pairs.quarantined": figures["pairs"]["quarantined"],
            "pairs.quarantined_by_kind": quarantine_by_kind(figures),
            "flags": dg.MetadataValue.json(figures["flags"]),
            "strategies": strategy_table(figures),
            **plot_entries(batch_plots(figures, step.audit_json.parent) if config.audit.plots else {}),
            "audit_json": dg.MetadataValue.path(str(step.audit_json)),
            "audit_md": dg.MetadataValue.path(str(step.audit_md)),
        })
        yield gate_check_result(PAIRS_TABLE, pairs, step.gate, check_name=PAIRS_GATE.name, cause=step.cause,
                                seconds=step.gate_seconds, quarantined=step.quarantined_by_gate)

    return [prompts, candidates, judgments, preference_pairs]
