"""Dagster assets: thin wrappers that call into ``pref_pipeline``."""

from assets.pipeline import build_pipeline_assets

__all__ = ["build_pipeline_assets"]
