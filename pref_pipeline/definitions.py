"""The Dagster code location: what ``workspace.yaml``, ``dagster dev`` and ``dg`` load.

The configuration comes from ``PREF_PIPELINE_CONFIG`` (a YAML file); unset, the embedded offline
default. The CLI builds the same definitions for the file it is given.
"""

from __future__ import annotations

import os

import dagster as dg

from assets import build_pipeline_assets
from assets.storage import PipelineIOManager
from pref_pipeline.config import PipelineConfig, load_config
from pref_pipeline.paths import SCHEMA, Home


def build_definitions(config: PipelineConfig, home: Home | None = None) -> dg.Definitions:
    home = (home or Home.from_env()).ensure()
    return dg.Definitions(
        assets=build_pipeline_assets(config),
        resources={"io_manager": PipelineIOManager(database=str(home.database), schema=SCHEMA)},
    )


defs = build_definitions(load_config(os.environ.get("PREF_PIPELINE_CONFIG")))
