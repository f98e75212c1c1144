"""The Dagster code location: what ``workspace.yaml``, ``dagster dev`` and ``dg`` load.

The one core module that imports the Dagster layers (``assets/``, ``sensors/``), and only when the
definitions are built: importing it reads no file and creates no folder (``defs`` is lazy). The
configuration comes from ``PREF_PIPELINE_CONFIG`` (unset: the embedded offline default), the home
from ``PREF_PIPELINE_HOME``; the CLI builds the same definitions for the file and home it is given.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg

from pref_pipeline.config import ConfigError, PipelineConfig, load_config
from pref_pipeline.paths import Home
from pref_pipeline.runner import freeze_heap

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

CONFIG_ENV = "PREF_PIPELINE_CONFIG"
ROLLUPS = ("preference_dataset", "audit_report")  # not partitioned: built once over every batch
OPT_IN = ("judge_calibration",)  # not partitioned, its own LLM calls: never part of a run (job calibrate_judges)


def config_from_env() -> PipelineConfig:
    """The configuration named by ``PREF_PIPELINE_CONFIG`` (unset: the embedded default), read now."""
    return load_config(os.environ.get(CONFIG_ENV))


def build_definitions(config: PipelineConfig, home: Home, *, progress: bool = False) -> dg.Definitions:
    """Every asset, check, job, sensor and schedule of one configuration, writing under ``home``."""
    from assets import build_pipeline_assets
    from assets.calibration import build_calibration_assets, calibration_job
    from assets.jobs import pipeline_job, rejudge_job, rollup_job
    from assets.resources import pipeline_resources
    from sensors import build_automation

    sensors, schedules = build_automation(config, config_from_env)
    definitions = dg.Definitions(
        assets=[*build_pipeline_assets(config), *build_calibration_assets(config)],
        jobs=[pipeline_job, rejudge_job, rollup_job, calibration_job],
        sensors=sensors,
        schedules=schedules,
        resources=pipeline_resources(home, progress=progress),
        executor=executor_for(config),
    )
    freeze_heap()  # the libraries and definitions live as long as the process
    return definitions


def executor_for(config: PipelineConfig) -> dg.ExecutorDefinition:
    """The executor the configuration's ``executor`` names (what a launched run uses; ``pref-pipeline run``
    executes each run in its own process whatever it says)."""
    if config.executor == "multiprocess":
        return multiprocess_executor()
    if config.executor == "dask":
        return dask_executor(config)
    return dg.in_process_executor


def dask_executor(config: PipelineConfig) -> dg.ExecutorDefinition:
    """``executor: dask``: each step a task on the Dask cluster at ``dask.address``, or on a ``LocalCluster`` of
    ``dask.n_workers`` processes started for the run (dagster-dask's executor: ``assets/dask_executor.py``)."""
    try:
        from assets.dask_executor import pipeline_dask_executor
    except ImportError as exc:
        raise ConfigError("executor: dask needs dagster-dask: pip install 'pref-pipeline[distributed]'") from exc
    spec = config.dask
    return pipeline_dask_executor.configured({"address": spec.address} if spec.address else
                                             {"n_workers": spec.n_workers}, name="dask")


# What a step process needs, imported once by the forkserver that forks every step (instead of each step
# importing them: about 5 s a step on 2 cores). GX is imported only by the gates, but forking it costs nothing.
STEP_PRELOAD = ["pref_pipeline.definitions", "assets", "sensors", "pandas", "duckdb", "openai", "anthropic",
                "great_expectations", "statsmodels.api", "datasketch"]


def multiprocess_executor() -> dg.ExecutorDefinition:
    """Dagster's multiprocess executor (``executor: multiprocess``), starting steps from a forkserver."""
    return dg.multiprocess_executor.configured(
        {"start_method": {"forkserver": {"preload_modules": STEP_PRELOAD}}}, name="multiprocess")


def configuration_load_error(error: ConfigError) -> Exception:
    """The UI's code-location error for a configuration that cannot be used: the message alone.

    Dagster shows any other load error with the frames of its gRPC server, the code location loader
    and the YAML reader (about 40 lines) under it. A ``DagsterUserCodeProcessError`` holding exactly
    one error description is shown as that description (``serializable_error_info_from_exc_info``
    "hoists" it), so the UI and ``dagster dev``'s log show only which file and key are wrong.
    """
    from dagster._core.errors import DagsterUserCodeProcessError
    from dagster._utils.error import SerializableErrorInfo

    message = f"{error}\n(set by {CONFIG_ENV}; fix the file, then Reload the code location)"
    info = SerializableErrorInfo(message=message, stack=[], cls_name=type(error).__name__)
    return DagsterUserCodeProcessError(message, user_code_process_error_infos=[info])


@dg.definitions
def defs() -> dg.Definitions:
    try:
        config = config_from_env()
    except ConfigError as error:
        raise configuration_load_error(error) from None
    return build_definitions(config, Home.from_env())


@dataclass(frozen=True)
class BatchOutcome:
    """What is known of a batch's run that ran in another process (``--parallel``): picklable, and read by
    the CLI like a run's result (``success``; the failed steps with their root causes; failed checks)."""

    success: bool
    step_failures: tuple[tuple[str, str], ...] = ()  # (step key, the innermost cause in one line)
    failed_checks: tuple[str, ...] = ()  # "asset:check: description" of every failed ERROR check
    interrupted: bool = False

    @classmethod
    def of(cls, result: dg.ExecuteInProcessResult) -> BatchOutcome:
        from pref_pipeline.cli import failed_checks, root_cause

        failures = tuple((event.step_key, root_cause(event.step_failure_data.error)) for event in result.all_events
                         if event.is_step_failure and event.step_failure_data)
        return cls(result.success, failures, tuple(failed_checks(result)), was_interrupted(result))


@dataclass
class PipelineRun:
    """The runs of one ``pref-pipeline run``: one per prompt batch, then the roll-up run (None when no
    batch succeeded, since there is nothing new to roll up). A batch run in another process (``parallel``
    above 1) is known by its ``BatchOutcome``."""

    batches: dict[str, dg.ExecuteInProcessResult | BatchOutcome] = field(default_factory=dict)
    rollup: dg.ExecuteInProcessResult | None = None
    interrupted: str | None = None  # the batch a Ctrl-C or SIGTERM stopped; later batches were not started

    @property
    def success(self) -> bool:
        return all(r.success for r in self.batches.values()) and (self.rollup is None or self.rollup.success)


INTERRUPTS = ("DagsterExecutionInterruptedError", "KeyboardInterrupt")


def was_interrupted(result: dg.ExecuteInProcessResult) -> bool:
    """Whether a Ctrl-C or SIGTERM (which Dagster maps to the same) stopped this run: Dagster turns the
    interrupt into a failed step or run rather than raising it."""
    for event in result.all_events:
        data = event.step_failure_data.error if event.is_step_failure and event.step_failure_data else None
        if data is None and event.is_run_failure and event.job_failure_data:
            data = event.job_failure_data.error
        while data is not None:
            if data.cls_name in INTERRUPTS:
                return True
            data = data.cause
    return False


def open_instance(setup: Callable[[dg.DagsterInstance], None] | None = None) -> dg.DagsterInstance:
    """The instance of ``DAGSTER_HOME`` (created if missing) when set, else a throwaway one; ``setup`` runs on it.

    Opening a persistent instance creates its SQLite storage on first use, and two processes doing that at
    once race (``table runs already exists``, an ``alembic_version`` UNIQUE constraint): so storage creation
    and ``setup`` (adding partitions: a check, then an insert) happen under a file lock in ``DAGSTER_HOME``.
    """
    if not os.environ.get("DAGSTER_HOME"):
        instance = dg.DagsterInstance.ephemeral()
        if setup is not None:
            setup(instance)
        return instance
    from filelock import FileLock

    dagster_home = Path(os.environ["DAGSTER_HOME"]).expanduser()
    dagster_home.mkdir(parents=True, exist_ok=True)
    with FileLock(str(dagster_home / ".pref_pipeline-instance.lock")):
        instance = dg.DagsterInstance.get()
        if setup is not None:
            setup(instance)
    return instance


def per_batch_assets(definitions: dg.Definitions) -> list[dg.AssetKey]:
    """Every asset a batch's run materializes: all but the roll-ups and the opt-in assets."""
    graph = definitions.resolve_asset_graph()
    return [key for key in graph.get_all_asset_keys() if key.to_user_string() not in ROLLUPS + OPT_IN]


def run_one_batch(config: PipelineConfig, home: Home, batch: str, progress: bool = False) -> BatchOutcome:
    """One batch's run in a process of its own (``run_batches(parallel=N)``): on the instance of ``DAGSTER_HOME``,
    whose storage and partitions the parent created before starting any run (else a throwaway one)."""
    from assets.partitions import PROMPT_BATCHES

    definitions = build_definitions(config, home, progress=progress)
    # Present already in DAGSTER_HOME's instance (the parent added it); a throwaway instance needs it added.
    instance = open_instance(lambda instance: instance.add_dynamic_partitions(PROMPT_BATCHES.name, [batch]))
    try:
        result = definitions.resolve_job_def("preference_pipeline").execute_in_process(
            instance=instance, partition_key=batch, asset_selection=per_batch_assets(definitions),
            raise_on_error=False)
    except KeyboardInterrupt:
        return BatchOutcome(False, interrupted=True)
    return BatchOutcome.of(result)


def start_forkserver():
    """The forkserver the parallel batches fork from, started now: it imports the pipeline (``STEP_PRELOAD``,
    several seconds) on another core while this process builds its definitions and instance."""
    import multiprocessing
    from multiprocessing import forkserver

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(STEP_PRELOAD)
    forkserver.ensure_running()
    return context


def _run_in_parallel(config: PipelineConfig, home: Home, names: list[str], parallel: int, progress: bool,
                     run: PipelineRun) -> None:
    """Run the batches ``parallel`` at a time, each in its own process (started from a forkserver that has
    imported the pipeline once). A Ctrl-C or SIGTERM stops them all and starts no other."""
    import multiprocessing
    import signal
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    context = start_forkserver()
    executor = ProcessPoolExecutor(max_workers=min(parallel, len(names)), mp_context=context)
    waiting = list(names)
    running: dict = {}  # future -> batch; a batch is submitted only when a process is free, so a stop leaves none queued
    try:
        while waiting or running:
            while waiting and len(running) < parallel:
                batch = waiting.pop(0)
                running[executor.submit(run_one_batch, config, home, batch, progress)] = batch
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                batch = running.pop(future)
                try:
                    outcome = future.result()
                except Exception as exc:  # the batch's process died (killed, out of memory): that batch failed
                    outcome = BatchOutcome(False, (("run", f"{type(exc).__name__}: {exc}"),))
                run.batches[batch] = outcome
                if outcome.interrupted and run.interrupted is None:
                    run.interrupted = batch
            if run.interrupted is not None:
                raise KeyboardInterrupt
    except KeyboardInterrupt:
        for child in multiprocessing.active_children():  # the runs still going: stop them as Ctrl-C would
            try:
                os.kill(child.pid, signal.SIGINT)
            except (ProcessLookupError, TypeError):
                pass
        if run.interrupted is None:
            run.interrupted = next(iter(running.values()), waiting[0] if waiting else names[-1])
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def run_batches(config: PipelineConfig, home: Home, *, batches: Iterable[str] | None = None,
                progress: bool = False, parallel: int = 1) -> PipelineRun:
    """Materialize every asset for every prompt batch, headless: one run per batch, then one run of the
    roll-ups (the combined dataset and the audit over every batch) when at least one batch succeeded.

    ``parallel`` above 1 runs that many batches at once, each in its own process; the Dagster instance's
    storage and the batches' partitions are created here first, once, so the runs do not race to create
    them. Uses the instance of ``DAGSTER_HOME`` when set (runs then show in the UI), else a throwaway one
    (one per process when in parallel).
    """
    from assets.partitions import PROMPT_BATCHES
    from pref_pipeline.batches import discover_batches

    names = list(batches) if batches is not None else list(discover_batches(config))
    if parallel > 1 and len(names) > 1:
        start_forkserver()
    definitions = build_definitions(config, home, progress=progress)
    job = definitions.resolve_job_def("preference_pipeline")
    instance = open_instance(lambda instance: instance.add_dynamic_partitions(PROMPT_BATCHES.name, names))
    per_batch = per_batch_assets(definitions)
    run = PipelineRun()
    if parallel > 1 and len(names) > 1:
        _run_in_parallel(config, home, names, parallel, progress, run)
        if run.interrupted is not None:
            return run
        names = []
    for batch in names:
        try:
            result = job.execute_in_process(instance=instance, partition_key=batch, asset_selection=per_batch,
                                            raise_on_error=False)
        except KeyboardInterrupt:  # between Dagster's own checkpoints
            run.interrupted = batch
            return run
        run.batches[batch] = result
        if was_interrupted(result):
            run.interrupted = batch
            return run  # no later batch, no roll-up: stop means stop, nothing more is paid for
    if any(result.success for result in run.batches.values()):
        run.rollup = definitions.resolve_job_def("publish_dataset").execute_in_process(instance=instance,
                                                                                       raise_on_error=False)
    return run
