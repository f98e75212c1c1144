"""Judge calibration in Dagster: how often the configured judges agree with people on known-answer sets.

``judge_calibration`` (not partitioned, no inputs) judges the human-labelled sets shipped in
``pref_pipeline/data/human_prefs`` (or the files given in its run config) with the configured judges and
panel, through ``known_answers.calibrate`` (what ``pref-pipeline review known-answer`` runs), and writes
``reports/known_answers.json``. It makes LLM calls (four per labelled pair and judge), so it is opt-in:
not in the ``preference_pipeline`` job nor in ``pref-pipeline run``; launch the ``calibrate_judges``
job or materialize the asset from the UI, naming the sets in its run config (``sets`` is required, so
"Materialize all" cannot spend on it by accident: Dagster asks for the config before launching).
"""


import time
from pathlib import Path

import dagster as dg
from pydantic import Field

from assets.resources import LLMCalls, PipelineHome
from pref_pipeline.config import PipelineConfig
from pref_pipeline.known_answers import DEFAULT_SETS, run_calibration

GROUP = "judge_calibration"
ASSET = "judge_calibration"


SHIPPED = "shipped"  # in ``sets``: the known-answer sets shipped with the project


class CalibrationConfig(dg.Config):
    """Which known-answer files to judge and how many records of each. ``sets`` has no default: the asset makes
    LLM calls, so a run must name what it spends them on (Dagster asks for it before launching, "Materialize
    all" included)."""

    sets: list[str] = Field(description=f"known-answer files to judge (JSON/JSONL); {SHIPPED!r} for the sets "
                            "shipped in pref_pipeline/data/human_prefs. Four LLM calls per labelled pair and judge.")
    limit: int | None = Field(default=None, description="at most this many records of each set")


def chosen_sets(named: list[str]) -> list[Path]:
    """The files a run named, checked before any call: a clear ``Failure`` when none is named or one is missing."""
    if not named:
        raise dg.Failure(description=f"judge_calibration makes LLM calls (four per labelled pair and judge), so it "
                         f"runs only on sets named in its run config: ops: {{judge_calibration: {{config: {{sets: "
                         f"[{SHIPPED!r}]}}}}}} for the shipped ones, or file paths. Nothing was called.")
    paths = [p for name in named for p in ([p for p in DEFAULT_SETS if p.exists()] if name == SHIPPED else [Path(name)])]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise dg.Failure(description=f"judge_calibration: no such known-answer file: {', '.join(missing)}. Nothing "
                         "was called.")
    return paths


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
        sets = chosen_sets(config.sets)
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
