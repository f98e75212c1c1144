"""Dagster assets and checks: a thin layer over ``pref_pipeline``.

- ``pipeline.py``: prompts -> candidates -> judgments -> preference_pairs (+ comparisons, quarantine)
- ``checks.py``: the GX gates as blocking checks
- ``publishing.py``: each batch's export, whether the batch is published (``batch_published``) and the combined
  dataset
- ``audit.py``: verdict history, each batch's audit and the audit over every batch
- ``resources.py``: where a run writes, its tables' IO manager and its LLM call session; ``storage.py``: the IO
  manager's tables, Parquet files per batch under the home
- ``staleness.py``: the ``judge_is_current`` check on judgments and everything downstream
- ``partitions.py``, ``jobs.py``: prompt batches and the jobs sensors launch
"""

from pref_pipeline.config import PipelineConfig


def build_pipeline_assets(config: PipelineConfig) -> list:
    """Every asset and check for one configuration."""
    from assets.audit import build_audit_assets
    from assets.checks import build_stage_checks
    from assets.pipeline import build_chain_assets
    from assets.publishing import build_publishing_assets
    from assets.staleness import build_judge_current_check

    built = [*build_chain_assets(config), *build_stage_checks(config), *build_publishing_assets(config),
             *build_audit_assets(config)]
    return [*built, build_judge_current_check(config, built)]


__all__ = ["build_pipeline_assets"]
