"""Judge calibration in Dagster: how often the configured judges agree with people on known-answer sets.

``judge_calibration`` (not partitioned, no inputs) judges the human-labelled sets shipped in
``pref_pipeline/data/human_prefs`` (or the files given in its run config) with the configured judges and
panel, through ``known_answers.calibrate`` (what ``pref-pipeline review known-answer`` runs), and writes
``reports/known_answers.json``. It makes LLM calls (four per labelled pair and judge), so it is opt-in:
not in the ``preference_pipeline`` job nor in ``pref-pipeline run``; launch the ``calibrate_judges``
job, naming the sets in its run config (``sets`` is required). The asset itself is declared without a
function (an ``AssetSpec``) and recorded by that job's op, so the graph cannot materialize it: "Materialize
all" on the global lineage leaves it out, and nothing spends on it by accident.
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


CALIBRATION = dg.AssetSpec(
    ASSET,
    group_name=GROUP,
    kinds={"python", "file"},
    description="Agreement of the configured judges (and panel) with human labels on known-answer sets: overall, by "
    "category and by source; reports/known_answers.json. Makes LLM calls, so it is not materialized from the graph "
    "(\"Materialize all\" leaves it out): launch the calibrate_judges job, naming the sets in its run config.",
)


def build_calibration_assets(pipeline_config: PipelineConfig) -> list:
    """The asset as the graph shows it: recorded by the ``calibrate_judges`` job, not materializable from the graph."""
    return [CALIBRATION]


def build_calibration_job(pipeline_config: PipelineConfig) -> dg.JobDefinition:
    """``calibrate_judges``: one op that judges the named sets and records ``judge_calibration``'s materialization."""

    @dg.op(name=ASSET, description="Judge the named known-answer sets and record the agreement on judge_calibration.")
    def judge_calibration(context: dg.OpExecutionContext, config: CalibrationConfig, home: PipelineHome,
                          llm: LLMCalls) -> None:
        started = time.perf_counter()
        sets = chosen_sets(config.sets)
        calibration = run_calibration(pipeline_config, sets, llm.settings(), home.paths().reports, config.limit,
                                      logger=context.log)
        overall = calibration.overall
        by_set = {name: {"records": f["records"], "n_compared": f["human"]["n_compared"],
                         "agreement_rate": f["human"]["agreement_rate"],
                         "most_divergent_category": f["human"]["most_divergent_category"]}
                  for name, f in calibration.by_set.items()}
        context.log_event(dg.AssetMaterialization(asset_key=ASSET, metadata={
            "agreement.overall": overall["agreement_rate"],
            "agreement.n_compared": overall["n_compared"],
            "agreement.overall_ci95": dg.MetadataValue.json(overall["agreement_ci95"]),
            "agreement.by_category": dg.MetadataValue.json(overall["by_category"]),
            "most_divergent_category": overall["by_category"][0]["category"] if overall["by_category"] else None,
            "by_set": dg.MetadataValue.json(by_set),
            "judges": dg.MetadataValue.json([j.model for j in pipeline_config.judges]),
            "report": dg.MetadataValue.path(str(calibration.path)),
            "seconds": round(time.perf_counter() - started, 3),
        }))

    @dg.job(name="calibrate_judges", description="Judge the known-answer sets named in the run config with the "
            "configured judges and record agreement with people on judge_calibration (LLM calls: four per labelled "
            "pair and judge).")
    def calibrate_judges():
        judge_calibration()

    return calibrate_judges
