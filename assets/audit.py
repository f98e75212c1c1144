"""The audit in Dagster: the verdict history, each batch's own report, and the report over every batch.

``judgment_history`` appends every verdict of every judge version (the drift figures read it);
``audit_report`` (not partitioned: a roll-up over every stored batch) writes ``reports/audit.json``,
``audit.md`` and the plots, and shows the report on its page in the UI. Each batch's own report
(``batch_audit``) is written by the pairs step (``assets/pipeline.py``), published or not.
"""


import time

import dagster as dg
import pandas as pd

from assets.metadata import human_agreement_tables, plot_entries, plotted_figures, quarantine_by_kind, strategy_table
from assets.partitions import PROMPT_BATCHES
from assets.resources import PipelineHome
from pref_pipeline import audit as audit_lib
from pref_pipeline import store
from pref_pipeline.config import PipelineConfig
from pref_pipeline.human_sets import HumanSetError
from pref_pipeline.judging import fingerprint_for
from pref_pipeline.pairing import human_share

GROUP = "preference_data"
EVERY_BATCH = dg.AllPartitionMapping()


def build_audit_assets(config: PipelineConfig) -> list:
    band = config.audit.length_bias_band
    slots = {fingerprint_for(judge): index for index, judge in enumerate(config.judges)}

    @dg.asset(
        group_name=GROUP,
        kinds={"python", "parquet"},
        partitions_def=PROMPT_BATCHES,
        description="Append-only record of every verdict of every judge version (judgment_id + judge_fingerprint), "
        "with its category, timestamps and a recency weight: the audit's drift figures come from it.",
    )
    def judgment_history(context: dg.AssetExecutionContext, home: PipelineHome, prompts: pd.DataFrame,
                         judgments: pd.DataFrame) -> dg.MaterializeResult:
        started = time.perf_counter()
        appended, total = store.append_judgment_history(
            home.paths(), judgments, prompts, run_id=context.run_id,
            half_life_days=config.audit.recency_half_life_days, slots=slots)
        return dg.MaterializeResult(metadata={
            "appended": appended, "already_recorded": len(judgments) - appended, "total_rows": total,
            "table": f"pref.{store.HISTORY_TABLE}", "seconds": round(time.perf_counter() - started, 3),
        })

    @dg.asset(
        group_name=GROUP,
        kinds={"duckdb", "file"},
        deps=[dg.AssetDep(name, partition_mapping=EVERY_BATCH) for name in
              ("judgment_history", "batch_audit", "preference_pairs_export")],
        description="The audit over every batch stored so far: length bias with intervals and a length-controlled "
        "view, position bias, judge and human agreement, drift between judge versions, quarantine; "
        "reports/audit.json, audit.md and plots.",
    )
    def audit_report(context: dg.AssetExecutionContext, home: PipelineHome) -> dg.MaterializeResult:
        started = time.perf_counter()
        paths = home.paths()
        try:
            share = human_share(config, paths)
        except HumanSetError as exc:
            raise dg.Failure(description=f"export.human_sets: {exc}") from None
        figures, json_path, md_path = audit_lib.report_home(paths, band=band, plots=config.audit.plots,
                                                            human_share=share)
        images = {}
        if config.audit.plots:
            from pref_pipeline.audit.plots import PLOTS, data_uri

            images = {name: data_uri(paths.reports / f"{name}.png") for name in PLOTS
                      if (paths.reports / f"{name}.png").exists()}
        for flag in figures["flags"]:
            context.log.warning(flag)
        return dg.MaterializeResult(metadata={
            **plotted_figures(audit_lib.headline_figures(figures)),  # per judge and drift too: plots over time
            "report": dg.MetadataValue.md(audit_lib.render_markdown(figures, images)),
            "length_bias.pct_longer_chosen": figures["length_bias"]["pct_longer_chosen"],
            "length_bias.flagged": figures["length_bias"]["flagged"],
            "position_bias.consistency_rate": figures["position_bias"]["consistency_rate"],
            "position_bias.first_position_win_rate": figures["position_bias"]["first_position_win_rate"],
            "pairs.kept": figures["pairs"]["kept"],
            "pairs.quarantined": figures["pairs"]["quarantined"],
            "export.human_share": figures["export"]["human_share"]["share"],
            **human_agreement_tables(figures),
            "pairs.quarantined_by_kind": quarantine_by_kind(figures),  # what the count is made of
            "flags": dg.MetadataValue.json(figures["flags"]),
            "left_out_batches": dg.MetadataValue.json(
                {b["batch"]: b.get("why") for b in (figures.get("batches") or {}).get("by_batch") or []
                 if b["status"] == "blocked"}),
            "strategies": strategy_table(figures),
            **plot_entries(images),
            "audit_json": dg.MetadataValue.path(str(json_path)),
            "audit_md": dg.MetadataValue.path(str(md_path)),
            "seconds": round(time.perf_counter() - started, 3),
        })

    return [judgment_history, audit_report]
