"""Running the pipeline headless: one Dagster run per prompt batch, then the roll-up run.

What ``pref-pipeline run`` does (``cli.py`` only parses, prints and exits): build the code location's
definitions for a configuration and a home (``definitions.build_definitions``), open the Dagster instance,
execute the ``preference_pipeline`` job once per batch (in this process, or ``parallel`` at a time in processes
of their own), then the roll-ups over every batch. A run's outcome is read from Dagster's result: the failed
steps by their root cause, the failed blocking checks, whether a Ctrl-C or SIGTERM stopped it.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import forkserver
from pathlib import Path

import dagster as dg
from filelock import FileLock

from assets.partitions import PROMPT_BATCHES
from pref_pipeline.batches import discover_batches
from pref_pipeline.config import PipelineConfig
from pref_pipeline.definitions import STEP_PRELOAD, build_definitions
from pref_pipeline.paths import Home

ROLLUPS = ("preference_dataset", "audit_report")  # not partitioned: built once over every batch
OPT_IN = ("judge_calibration",)  # not partitioned, its own LLM calls: never part of a run (job calibrate_judges)


def failed_checks(result) -> list[str]:
    """``asset:check: description`` of every failed check of a run that fails it (severity ERROR)."""
    return [
        f"{e.asset_key.to_user_string()}:{e.check_name}: {e.description or ''}"
        for e in result.get_asset_check_evaluations()
        if not e.passed and e.severity.value == "ERROR"
    ]


def root_cause(error) -> str:
    """The innermost cause of a Dagster step error, in one line: the cause a person acts on (``Connection error.
    (openai:gen at http://...)``), not Dagster's ``Error occurred while executing op ...`` wrapper."""
    while getattr(error, "cause", None) is not None:
        error = error.cause
    message = " ".join(error.message.strip().split())
    name = error.cls_name or ""
    if message.startswith(f"{name}:"):
        return message if len(message) <= 600 else message[:600] + "…"
    text = f"{name}: {message}" if name else message
    return text if len(text) <= 600 else text[:600] + "…"


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
    """The forkserver the parallel batches fork from, started now: it imports the pipeline (``STEP_PRELOAD``
    and this module, whose ``run_one_batch`` each batch's process runs; several seconds) on another core while
    this process builds its definitions and instance."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([*STEP_PRELOAD, __name__])
    forkserver.ensure_running()
    return context


def _run_in_parallel(config: PipelineConfig, home: Home, names: list[str], parallel: int, progress: bool,
                     run: PipelineRun) -> None:
    """Run the batches ``parallel`` at a time, each in its own process (started from a forkserver that has
    imported the pipeline once). A Ctrl-C or SIGTERM stops them all and starts no other."""
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
