"""Judge calibration in Dagster: how often the configured judges agree with people on known-answer sets.

``judge_calibration`` (not partitioned, no inputs) judges the human-labelled sets shipped in
``pref_pipeline/data/human_prefs`` (or the files given in its run config) with the configured judges and
panel, through ``known_answers.calibrate`` (what ``pref-pipeline review known-answer`` runs), and writes
``reports/known_answers.json``. It makes LLM calls (four per labelled pair and judge), so it is opt-in:
not in the ``preference_pipeline`` job nor in ``pref-pipeline run``; launch the ``calibrate_judges``
job or materialize the asset from the UI.
"""


import time
from pathlib import Path

import dagster as dg

from assets.resources import LLMCalls, PipelineHome
from pref_pipeline.config import PipelineConfig
from pref_pipeline.known_answers import DEFAULT_SETS, run_calibration

GROUP = "judge_calibration"
ASSET = "judge_calibration"


class CalibrationConfig(dg.Config):
    """Which known-answer files to judge (default: the shipped sets) and how many records of each."""

    sets: list[str] = []
    limit: int | None = None


def build_calibration_assets(pipeline_config: PipelineConfig) -> list:
    @dg.asset(
        name=ASSET,
        group_name=GROUP,
        kinds={"python", "file"},
        description="Agreement of the configured judges (and panel) with human labels on known-answer sets: "
        "overall, by category and by source; reports/known_answers.json. Makes LLM calls: opt-in "
        "(job calibrate_judges), not part of preference_pipeline.",
    )
    def judge_calibration(context: dg.AssetExecutionContext, config: CalibrationConfig, home: PipelineHome,
                          llm: LLMCalls) -> dg.MaterializeResult:
        started = time.perf_counter()
        sets = [Path(p) for p in config.sets] or [p for p in DEFAULT_SETS if p.exists()]
        calibration = run_calibration(pipeline_config, sets, llm.settings(), home.paths().reports, config.limit,
                                      logger=context.log)
        overall = calibration.overall
        by_set = {name: {"records": f["records"], "n_compared": f["human"]["n_compared"],
                         "agreement_rate": f["human"]["agreement_rate"],
                         "most_divergent_category": f["human"]["most_divergent_category"]}
                  for name, f in calibration.by_set.items()}
        return dg.MaterializeResult(metadata={
            "agreement.overall": overall["agreement_rate"],
            "agreement.n_compared": overall["n_compared"],
            "agreement.overall_ci95": dg.MetadataValue.json(overall["agreement_ci95"]),
            "agreement.by_category": dg.MetadataValue.json(overall["by_category"]),
            "most_divergent_category": overall["by_category"][0]["category"] if overall["by_category"] else None,
            "by_set": dg.MetadataValue.json(by_set),
            "judges": dg.MetadataValue.json([j.model for j in pipeline_config.judges]),
            "report": dg.MetadataValue.path(str(calibration.path)),
            "seconds": round(time.perf_counter() - started, 3),
        })

    return [judge_calibration]


calibration_job = dg.define_asset_job(
    "calibrate_judges",
    selection=dg.AssetSelection.assets(ASSET),
    description="Judge the known-answer sets with the configured judges and report agreement with people "
    "(LLM calls: four per labelled pair and judge).",
)
