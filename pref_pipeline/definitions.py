"""The Dagster code location: what ``workspace.yaml``, ``dagster dev`` and ``dg`` load.

The configuration comes from ``PREF_PIPELINE_CONFIG`` (a YAML file); unset, the embedded offline
default. The CLI builds the same definitions for the file it is given.
"""

from __future__ import annotations

import os

import dagster as dg

from assets import build_pipeline_assets
from assets.jobs import pipeline_job, rejudge_job
from assets.partitions import PROMPT_BATCHES
from assets.storage import PipelineIOManager
from pref_pipeline.batches import discover_batches
from pref_pipeline.config import PipelineConfig, load_config
from pref_pipeline.paths import SCHEMA, Home
from sensors import build_automation


def config_from_env() -> PipelineConfig:
    """The configuration named by ``PREF_PIPELINE_CONFIG`` (unset: the embedded default), read now."""
    return load_config(os.environ.get("PREF_PIPELINE_CONFIG"))


def build_definitions(config: PipelineConfig, home: Home | None = None) -> dg.Definitions:
    home = (home or Home.from_env()).ensure()
    sensors, schedules = build_automation(config, config_from_env)
    return dg.Definitions(
        assets=build_pipeline_assets(config),
        jobs=[pipeline_job, rejudge_job],
        sensors=sensors,
        schedules=schedules,
        resources={"io_manager": PipelineIOManager(database=str(home.database), schema=SCHEMA)},
    )


def run_batches(config: PipelineConfig, home: Home) -> dict[str, dg.ExecuteInProcessResult]:
    """Materialize every asset for every prompt batch, headless, one run per batch.

    Uses the instance of ``DAGSTER_HOME`` when set (runs then show in the UI), else a throwaway one.
    """
    defs = build_definitions(config, home)
    instance = dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()
    job = defs.resolve_implicit_global_asset_job_def()
    batches = list(discover_batches(config))
    instance.add_dynamic_partitions(PROMPT_BATCHES.name, batches)
    return {
        batch: job.execute_in_process(instance=instance, partition_key=batch, raise_on_error=False)
        for batch in batches
    }


defs = build_definitions(config_from_env())
