"""Running the pipeline headless: one Dagster run per prompt batch, then the roll-up run.

What ``pref-pipeline run`` does (``cli.py`` only parses, prints and exits): build the code location's
definitions for a configuration and a home (``definitions.build_definitions``), open the Dagster instance,
execute the ``preference_pipeline`` job once per batch (in this process, or ``parallel`` at a time in processes
of their own), then the roll-ups over every batch. A run's outcome is read from Dagster's result: the failed
steps by their root cause, the failed blocking checks, whether a Ctrl-C or SIGTERM stopped it. Dagster's event
log goes to a file under the home (``RunLog``), and to the terminal only when asked.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import dagster as dg
from filelock import FileLock

from assets.partitions import PROMPT_BATCHES
from pref_pipeline.batches import discover_batches
from pref_pipeline.config import PipelineConfig
from pref_pipeline.definitions import build_definitions
from pref_pipeline.paths import Home
from pref_pipeline.preload import start_forkserver
from pref_pipeline.quarantine import AWAITING_LABEL

ROLLUPS = ("preference_dataset", "audit_report")  # not partitioned: built once over every batch
OPT_IN = ("judge_calibration",)  # not partitioned, its own LLM calls: never part of a run (job calibrate_judges)
DATASET, AUDIT = dg.AssetKey("preference_dataset"), dg.AssetKey("audit_report")
EXPORT = dg.AssetKey("preference_pairs_export")
COMPARISONS = dg.AssetKey("comparisons")
CHECK_FAILED = "DagsterAssetCheckFailedError"  # how Dagster fails a step whose blocking check failed
PUBLISHED_STEP = "batch_published"  # fails, with the cause, for a batch a gate left unpublished
LOG_FORMAT = "%(asctime)s - %(name)s - %(levelname)s - %(message)s"  # as Dagster's console logger writes it
LOG_DATE_FORMAT = "%Y-%m-%d %H:%M:%S %z"


# --------------------------------------------------------------------------- the event log

class _AppendToFile(logging.Handler):
    """Appends each record to a file, opened and closed per record: no file stays open after a run, and the
    processes of batches run in parallel append to the same log."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = path

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            with self.path.open("a", encoding="utf-8") as out:
                out.write(line + "\n")
        except Exception:  # a log that cannot be written must not fail the run
            self.handleError(record)


@dataclass(frozen=True)
class RunLog:
    """Where the Dagster event log of a ``pref-pipeline run`` goes: a file under the home, always; the terminal
    too when ``verbose`` (Dagster's own console logger, as a run without loggers of its own has)."""

    path: Path
    verbose: bool = False

    @classmethod
    def under(cls, home: Home, verbose: bool = False) -> RunLog:
        """A new log file, ``<home>/logs/run-<time>.log``."""
        home.logs.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        path = home.logs / f"run-{stamp}.log"
        return cls(path if not path.exists() else home.logs / f"run-{stamp}-{os.getpid()}.log", verbose)

    def handler(self) -> logging.Handler:
        handler = _AppendToFile(self.path)
        handler.setFormatter(logging.Formatter(LOG_FORMAT, LOG_DATE_FORMAT))
        return handler

    def file_logger(self) -> dg.LoggerDefinition:
        def make(_context) -> logging.Logger:
            logger = logging.Logger("dagster", logging.DEBUG)  # not registered: one per run, gone with it
            logger.addHandler(self.handler())
            return logger

        return dg.LoggerDefinition(make, description=f"Dagster's event log, appended to {self.path}")

    def loggers(self) -> dict[str, dg.LoggerDefinition]:
        """The jobs' loggers (``build_definitions(loggers=...)``)."""
        return {"file": self.file_logger(), "console": dg.colored_console_logger}

    def run_config(self) -> dict:
        """The loggers a run uses: only those a run config names are started."""
        loggers: dict = {"file": {}}
        if self.verbose:
            loggers["console"] = {"config": {"log_level": "DEBUG"}}
        return {"loggers": loggers}

    @contextlib.contextmanager
    def python_logs(self) -> Iterator[None]:
        """While it lasts, what Dagster logs through Python's ``dagster`` logger outside a run's event log (e.g.
        that ``DAGSTER_HOME`` has no ``dagster.yaml``), which would otherwise reach stderr, goes to the file."""
        if self.verbose:
            yield
            return
        logger, handler = logging.getLogger("dagster"), self.handler()
        logger.addHandler(handler)
        try:
            yield
        finally:
            logger.removeHandler(handler)

    def telemetry_notice(self, instance: dg.DagsterInstance) -> None:
        """Dagster prints a notice about its telemetry on stderr the first time an instance that has telemetry on
        is used (``dagster_shared.telemetry``, when it writes the instance's telemetry id; a throwaway instance
        has none). A quiet run writes that id now, and the notice goes to this log instead of the terminal."""
        if self.verbose or not instance.telemetry_enabled:
            return
        from dagster_shared.telemetry import get_or_set_instance_id

        with self.path.open("a", encoding="utf-8") as log, contextlib.redirect_stderr(log):
            get_or_set_instance_id()


def _run_config(log: RunLog | None) -> dict | None:
    return log.run_config() if log is not None else None


# --------------------------------------------------------------------------- what a run's result says

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


def _error_chain(error) -> Iterator:
    while error is not None:
        yield error
        error = getattr(error, "cause", None)


def _failed_by_a_check(error) -> bool:
    """Whether a step failed only because one of its blocking checks did (the check's result says why)."""
    return any(e.cls_name == CHECK_FAILED for e in _error_chain(error))


def _awaiting_label(result: dg.ExecuteInProcessResult) -> int:
    """The batch's comparisons that wait for people (the pairs step's ``comparisons`` metadata; 0 if it did not run)."""
    for event in result.get_asset_materialization_events():
        if event.asset_key == COMPARISONS:
            count = event.materialization.metadata.get(AWAITING_LABEL)
            return int(count.value) if count is not None else 0
    return 0


def _published(result: dg.ExecuteInProcessResult) -> int | None:
    """The pairs the batch's export wrote (None when it did not run)."""
    for event in result.get_asset_materialization_events():
        if event.asset_key == EXPORT:
            count = event.materialization.metadata.get("dagster/row_count")
            return int(count.value) if count is not None else None
    return None


@dataclass(frozen=True)
class BatchOutcome:
    """What a batch's run came to: whether it succeeded, the steps that failed (by their root cause), the
    blocking checks that failed, whether a stop interrupted it, and the pairs it published. Picklable: a batch
    run in another process (``--parallel``) returns it."""

    success: bool
    step_failures: tuple[tuple[str, str], ...] = ()  # (step key, the innermost cause in one line); not a step
    #                                                  failed by its blocking check (failed_checks says why)
    failed_checks: tuple[str, ...] = ()  # "asset:check: description" of every failed ERROR check
    interrupted: bool = False
    published: int | None = None  # pairs the batch's export wrote (None: the export did not run)
    awaiting_label: int = 0  # comparisons that wait for people (``human_ranked``, not yet labelled)

    @property
    def blocked(self) -> bool:
        """A gate stopped the batch: a blocking check failed, and nothing else did."""
        return not self.success and not self.interrupted and bool(self.failed_checks) and not self.step_failures

    @classmethod
    def of(cls, result: dg.ExecuteInProcessResult | BatchOutcome) -> BatchOutcome:
        if isinstance(result, BatchOutcome):
            return result
        failed = [event for event in result.all_events if event.is_step_failure and event.step_failure_data
                  and not _failed_by_a_check(event.step_failure_data.error)]
        failures = tuple((e.step_key, root_cause(e.step_failure_data.error)) for e in failed
                         if e.step_key != PUBLISHED_STEP)
        checks = failed_checks(result)
        if not checks:  # not published for another reason than a check (length rebalancing left too few pairs)
            checks = [f"{PUBLISHED_STEP}: {root_cause(e.step_failure_data.error)}" for e in failed
                      if e.step_key == PUBLISHED_STEP]
        return cls(result.success, failures, tuple(checks), was_interrupted(result), _published(result),
                   _awaiting_label(result))


@dataclass
class PipelineRun:
    """The runs of one ``pref-pipeline run``: one per prompt batch, then the roll-up run (the audit over every
    batch, always, and the combined dataset when a batch succeeded; None when a stop ended the run first). A
    batch run in another process (``parallel`` above 1) is known by its ``BatchOutcome``."""

    batches: dict[str, dg.ExecuteInProcessResult | BatchOutcome] = field(default_factory=dict)
    rollup: dg.ExecuteInProcessResult | BatchOutcome | None = None
    interrupted: str | None = None  # the batch a Ctrl-C or SIGTERM stopped; later batches were not started
    log: Path | None = None  # the event log's file, when the run wrote one

    @property
    def success(self) -> bool:
        return all(r.success for r in self.batches.values()) and (self.rollup is None or self.rollup.success)

    def outcomes(self) -> dict[str, BatchOutcome]:
        return {batch: BatchOutcome.of(result) for batch, result in self.batches.items()}


class RunListener:
    """What a caller hears of a run while it goes (the CLI prints it). Every method does nothing here."""

    def batch_started(self, batch: str, number: int, total: int) -> None:
        """A batch's run starts (``number`` of ``total``)."""

    def batch_finished(self, batch: str, outcome: BatchOutcome) -> None:
        """A batch's run ended."""

    def rollup_started(self, dataset: bool) -> None:
        """The roll-up run starts: the audit over every batch, and the combined dataset when ``dataset``."""


INTERRUPTS = ("DagsterExecutionInterruptedError", "KeyboardInterrupt")
ROLLUP_STOPPED = BatchOutcome(False, (("run", "stopped (Ctrl-C or SIGTERM) during the roll-up"),), interrupted=True)


def was_interrupted(result: dg.ExecuteInProcessResult) -> bool:
    """Whether a Ctrl-C or SIGTERM (which Dagster maps to the same) stopped this run: Dagster turns the
    interrupt into a failed step or run rather than raising it."""
    for event in result.all_events:
        data = event.step_failure_data.error if event.is_step_failure and event.step_failure_data else None
        if data is None and event.is_run_failure and event.job_failure_data:
            data = event.job_failure_data.error
        if any(error.cls_name in INTERRUPTS for error in _error_chain(data)):
            return True
    return False


# --------------------------------------------------------------------------- running

def open_instance(setup: Callable[[dg.DagsterInstance], None] | None = None,
                  log: RunLog | None = None) -> dg.DagsterInstance:
    """The instance of ``DAGSTER_HOME`` (created if missing) when set, else a throwaway one; ``setup`` runs on it.

    Opening a persistent instance creates its SQLite storage on first use, and two processes doing that at
    once race (``table runs already exists``, an ``alembic_version`` UNIQUE constraint): so storage creation
    and ``setup`` (adding partitions: a check, then an insert) happen under a file lock in ``DAGSTER_HOME``;
    so does Dagster's telemetry notice, which goes to the run's ``log``.
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
        if log is not None:
            log.telemetry_notice(instance)
        if setup is not None:
            setup(instance)
    return instance


def per_batch_assets(definitions: dg.Definitions) -> list[dg.AssetKey]:
    """Every asset a batch's run materializes: all but the roll-ups and the opt-in assets."""
    graph = definitions.resolve_asset_graph()
    return [key for key in graph.get_all_asset_keys() if key.to_user_string() not in ROLLUPS + OPT_IN]


def run_one_batch(config: PipelineConfig, home: Home, batch: str, progress: bool = False,
                  log: RunLog | None = None) -> BatchOutcome:
    """One batch's run in a process of its own (``run_batches(parallel=N)``): on the instance of ``DAGSTER_HOME``,
    whose storage and partitions the parent created before starting any run (else a throwaway one)."""
    with log.python_logs() if log else contextlib.nullcontext():
        return _run_one_batch(config, home, batch, progress, log)


def _run_one_batch(config: PipelineConfig, home: Home, batch: str, progress: bool, log: RunLog | None
                   ) -> BatchOutcome:
    definitions = build_definitions(config, home, progress=progress, loggers=log.loggers() if log else None)
    # Present already in DAGSTER_HOME's instance (the parent added it); a throwaway instance needs it added.
    instance = open_instance(lambda instance: instance.add_dynamic_partitions(PROMPT_BATCHES.name, [batch]), log)
    try:
        result = definitions.resolve_job_def("preference_pipeline").execute_in_process(
            instance=instance, partition_key=batch, asset_selection=per_batch_assets(definitions),
            run_config=_run_config(log), raise_on_error=False)
    except KeyboardInterrupt:
        return BatchOutcome(False, interrupted=True)
    return BatchOutcome.of(result)


def run_rollup(config: PipelineConfig, home: Home, names: list[str], dataset: bool, progress: bool = False,
               log: RunLog | None = None) -> BatchOutcome:
    """The roll-up's run in a process of its own, after batches run in parallel: forked from the forkserver, which
    has GX, the audit's statistics and matplotlib imported, where this process would import them for it alone."""
    with log.python_logs() if log else contextlib.nullcontext():
        definitions = build_definitions(config, home, progress=progress, loggers=log.loggers() if log else None)
        instance = open_instance(lambda instance: instance.add_dynamic_partitions(PROMPT_BATCHES.name, names), log)
        try:
            return BatchOutcome.of(_rollup(definitions, instance, dataset, log))
        except KeyboardInterrupt:  # between Dagster's own checkpoints
            return ROLLUP_STOPPED


def _rollup(definitions: dg.Definitions, instance: dg.DagsterInstance, dataset: bool,
            log: RunLog | None) -> dg.ExecuteInProcessResult:
    """The audit over every batch, and the combined dataset when ``dataset``."""
    return definitions.resolve_job_def("publish_dataset").execute_in_process(
        instance=instance, asset_selection=[AUDIT, DATASET] if dataset else [AUDIT], run_config=_run_config(log),
        raise_on_error=False)


def _forkserver(config: PipelineConfig):
    """The forkserver the parallel batches fork from (started early by the CLI, else now); it also imports this
    module, whose ``run_one_batch`` and ``run_rollup`` each forked process runs."""
    return start_forkserver(config, __name__)


def _run_in_parallel(config: PipelineConfig, home: Home, names: list[str], parallel: int, progress: bool,
                     run: PipelineRun, log: RunLog | None, listener: RunListener) -> None:
    """Run the batches ``parallel`` at a time, each in its own process (started from a forkserver that has
    imported the pipeline once), then the roll-up in another. A Ctrl-C or SIGTERM stops them all and starts no
    other."""
    executor = ProcessPoolExecutor(max_workers=min(parallel, len(names)), mp_context=_forkserver(config))
    waiting = list(names)
    running: dict = {}  # future -> batch; a batch is submitted only when a process is free, so a stop leaves none queued
    try:
        while waiting or running:
            while waiting and len(running) < parallel:
                batch = waiting.pop(0)
                listener.batch_started(batch, names.index(batch) + 1, len(names))
                running[executor.submit(run_one_batch, config, home, batch, progress, log)] = batch
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
                else:
                    listener.batch_finished(batch, outcome)
            if run.interrupted is not None:
                raise KeyboardInterrupt
        dataset = any(outcome.success for outcome in run.batches.values())  # else nothing new to publish
        listener.rollup_started(dataset)
        try:
            run.rollup = executor.submit(run_rollup, config, home, names, dataset, progress, log).result()
        except Exception as exc:  # the roll-up's process died: the roll-up failed
            run.rollup = BatchOutcome(False, (("run", f"{type(exc).__name__}: {exc}"),))
    except KeyboardInterrupt:
        for child in multiprocessing.active_children():  # the runs still going: stop them as Ctrl-C would
            try:
                os.kill(child.pid, signal.SIGINT)
            except (ProcessLookupError, TypeError):
                pass
        if run.batches.keys() == set(names) and run.interrupted is None:  # stopped during the roll-up: it failed
            run.rollup = ROLLUP_STOPPED
        elif run.interrupted is None:
            run.interrupted = next(iter(running.values()), waiting[0] if waiting else names[-1])
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def run_batches(config: PipelineConfig, home: Home, *, batches: Iterable[str] | None = None,
                progress: bool = False, parallel: int = 1, log: RunLog | None = None,
                listener: RunListener | None = None) -> PipelineRun:
    """Materialize every asset for every prompt batch, headless: one run per batch, then one run of the
    roll-ups: the audit over every batch, always (a batch a gate blocked is named there, with why), and the
    combined dataset when at least one batch succeeded.

    ``parallel`` above 1 runs that many batches at once, each in its own process; the Dagster instance's
    storage and the batches' partitions are created here first, once, so the runs do not race to create
    them. Uses the instance of ``DAGSTER_HOME`` when set (runs then show in the UI), else a throwaway one
    (one per process when in parallel). ``log``: where Dagster's event log goes (default: Dagster's console
    logger); ``listener`` hears each batch start and end.
    """
    with log.python_logs() if log else contextlib.nullcontext():
        return _run_batches(config, home, batches, progress, parallel, log, listener or RunListener())


def _run_batches(config: PipelineConfig, home: Home, batches: Iterable[str] | None, progress: bool, parallel: int,
                 log: RunLog | None, listener: RunListener) -> PipelineRun:
    names = list(batches) if batches is not None else list(discover_batches(config))
    if parallel > 1 and len(names) > 1:
        _forkserver(config)
    definitions = build_definitions(config, home, progress=progress, loggers=log.loggers() if log else None)
    job = definitions.resolve_job_def("preference_pipeline")
    instance = open_instance(lambda instance: instance.add_dynamic_partitions(PROMPT_BATCHES.name, names), log)
    per_batch = per_batch_assets(definitions)
    run = PipelineRun(log=log.path if log else None)
    if parallel > 1 and len(names) > 1:
        _run_in_parallel(config, home, names, parallel, progress, run, log, listener)
        return run
    for number, batch in enumerate(names, start=1):
        listener.batch_started(batch, number, len(names))
        try:
            result = job.execute_in_process(instance=instance, partition_key=batch, asset_selection=per_batch,
                                            run_config=_run_config(log), raise_on_error=False)
        except KeyboardInterrupt:  # between Dagster's own checkpoints
            run.interrupted = batch
            return run
        run.batches[batch] = result
        if was_interrupted(result):
            run.interrupted = batch
            return run  # no later batch, no roll-up: stop means stop, nothing more is paid for
        listener.batch_finished(batch, BatchOutcome.of(result))
    dataset = any(result.success for result in run.batches.values())  # else nothing new to publish
    listener.rollup_started(dataset)
    run.rollup = _rollup(definitions, instance, dataset, log)
    return run
