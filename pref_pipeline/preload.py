"""What a process that runs pipeline steps imports ahead, and the forkserver that does it once for many processes.

Dagster's multiprocess executor forks every step from a forkserver that preloads these modules, and
``pref-pipeline run --parallel N`` forks every batch (and then the roll-up) from one: each process then starts with
the libraries imported instead of importing them itself (several seconds a process on 2 cores). No Dagster here,
so the CLI can start the forkserver before it imports Dagster itself.
"""

from __future__ import annotations

import multiprocessing
from multiprocessing import forkserver

from pref_pipeline.audit.length import FIT_MODULES
from pref_pipeline.audit.plots import PLOT_MODULES
from pref_pipeline.config import PipelineConfig

# What a step needs. GX is imported only by the gates, the audit's model and plot modules only by the audit: a
# process that runs one step may not need them all, but having them forked with the forkserver costs nothing.
# Not Dagster's instance storage (SQLAlchemy, alembic: ~0.5 s, imported by each process's first instance):
# preloaded, the forkserver was ready that much later for every batch, and 8 batches of 6 prompts at --parallel 4
# ended no sooner (four runs side by side; bench/bench_parallel.py measures the whole).
STEP_PRELOAD = ["pref_pipeline.definitions", "assets", "sensors", "pandas", "duckdb", "great_expectations",
                *FIT_MODULES, *PLOT_MODULES, "datasketch"]


def step_preload(config: PipelineConfig | None = None, *extra: str) -> list[str]:
    """``STEP_PRELOAD``, the SDKs of the providers the configuration's models use (every provider's when no
    configuration is given: ``anthropic`` alone takes about a second to import, wasted on a run that never calls
    it), ``extra``, and last ``pref_pipeline.preloaded``, which freezes what they left on the heap."""
    from pref_pipeline.providers import PROVIDERS

    used = PROVIDERS.values() if config is None else {PROVIDERS[spec.provider] for spec in config.model_specs()}
    return [*STEP_PRELOAD, *dict.fromkeys(module for provider in used for module in provider.sdk_modules), *extra,
            "pref_pipeline.preloaded"]


def start_forkserver(config: PipelineConfig, *extra: str):
    """The forkserver, started now (a no-op when it runs already): it imports ``step_preload(config)`` and
    ``extra`` (several seconds) on another core while this process goes on."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(step_preload(config, *extra))
    forkserver.ensure_running()
    return context
