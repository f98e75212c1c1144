"""``pref-pipeline``: run the whole pipeline headless through Dagster and say where the results are.

Exit codes: 0 success, 1 a step or a blocking check failed, 2 bad configuration or input, 130 stopped (Ctrl-C,
SIGTERM). ``run`` prints its progress and a summary; Dagster's event log goes to ``<home>/logs/run-<time>.log``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from pref_pipeline.config import CONFIG_ENV, ConfigError, PipelineConfig, load_config
from pref_pipeline.paths import Home, OldLayoutError


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _report(what: str, outcome, audit_md: Path | None = None) -> int:
    """Print how a run ended when it did not succeed (its failed steps by root cause, its failed checks); 1 if it
    did not, else 0. A check that only warns (``judge_is_current`` while other batches wait for their turn) does
    not fail a run; a blocking check that fails is a gate stopping the batch, said as such, not as a crash."""
    if outcome.success and not outcome.failed_checks:
        return 0
    _say(f"{what}: BLOCKED by a gate, not published" if outcome.blocked else f"{what}: FAILED")
    for step_key, cause in outcome.step_failures:
        _say(f"  {step_key}: {cause}")
    for check in outcome.failed_checks:
        _say(f"  failed check: {check}")
    if audit_md is not None and audit_md.exists():
        _say(f"  this batch's audit (made whether or not it was published): {audit_md}")
    return 1


class _Progress:
    """What ``run`` prints while it goes (the methods of ``runs.RunListener``): each batch as it starts and ends."""

    def __init__(self, home: Home):
        self.home = home
        self.failed = self.blocked = self.awaiting_label = 0

    def batch_started(self, batch: str, number: int, total: int) -> None:
        _say(f"batch {batch!r} ({number} of {total}): running")

    def batch_finished(self, batch: str, outcome) -> None:
        if _report(f"batch {batch!r}", outcome, self.home.batch_reports(batch) / "audit.md"):
            self.blocked += outcome.blocked
            self.failed += not outcome.blocked
        else:
            published = f"{outcome.published} pair(s) published" if outcome.published is not None else "done"
            waiting = f"; {outcome.awaiting_label} comparison(s) await human labels" if outcome.awaiting_label else ""
            _say(f"batch {batch!r}: {published}{waiting}")
        self.awaiting_label += outcome.awaiting_label

    def rollup_started(self, dataset: bool) -> None:
        _say("roll-up: " + ("the combined dataset and " if dataset else "") + "the audit over every batch")


class InputError(Exception):
    """Bad configuration or input: printed as ``error: ...`` and exit code 2."""


def cli_home(args: argparse.Namespace) -> Home:
    """``--home`` when given, else ``PREF_PIPELINE_HOME`` (default ``./.pref_pipeline``)."""
    return Home.at(args.home) if getattr(args, "home", None) else Home.from_env()


def load_cli_config(args: argparse.Namespace, *, check_prompts: bool = False,
                    on_loaded: Callable[[PipelineConfig], None] | None = None) -> PipelineConfig:
    """The configuration of a command: ``--config``, else the file ``PREF_PIPELINE_CONFIG`` names (as the code
    location reads it), else the embedded default; ``check_prompts`` runs the preflight: prompt files read, and
    for ``run`` keys and endpoints checked, before anything is spent. ``on_loaded`` gets the configuration before
    the preflight (to start what can go on meanwhile)."""
    path = args.config
    if path is None and os.environ.get(CONFIG_ENV):  # as the code location reads it: not the default silently
        path = Path(os.environ[CONFIG_ENV])
        print(f"note: configuration {path} (from {CONFIG_ENV}; --config overrides it)", file=sys.stderr)
    try:
        config = load_config(path)
        if on_loaded is not None:
            on_loaded(config)
        if check_prompts:  # files, prompt rows, keys, endpoints: every problem before any call (preflight.py)
            from pref_pipeline.preflight import check_ready

            for note in check_ready(config, will_call=args.command == "run"):
                print(f"note: {note}", file=sys.stderr)
    except ConfigError as exc:
        raise InputError(str(exc)) from exc
    return config


def _run(args: argparse.Namespace) -> int:
    home = cli_home(args)
    from pref_pipeline.table_files import check_layout

    check_layout(home)  # a home of the old single-file layout: a clear error before anything runs
    config = load_cli_config(args, check_prompts=True, on_loaded=_start_forkserver if args.parallel > 1 else None)
    home = home.ensure()
    progress = args.progress if args.progress is not None else sys.stderr.isatty()  # a tqdm bar per LLM step

    from pref_pipeline.runs import BatchOutcome, RunLog, run_batches  # late: `--help` and config errors stay fast

    log = RunLog.under(home, verbose=args.verbose)
    source = "embedded default" if args.config is None else args.config
    _say(f"pref-pipeline: running {source} -> {home.location}")
    if not args.verbose:
        _say(f"pref-pipeline: Dagster's event log: {log.path} (--verbose shows it here)")
    listener = _Progress(home)
    run = run_batches(config, home, progress=progress, parallel=args.parallel, log=log, listener=listener)
    if run.interrupted is not None:
        done = [batch for batch, outcome in run.outcomes().items() if outcome.success and batch != run.interrupted]
        _say(f"pref-pipeline: stopped during batch {run.interrupted!r}; no later batch was started"
             + (f" (finished: {', '.join(done)})" if done else "") + ". Nothing half-written was published. "
             "Run the same command again to resume: every answer already paid for comes from the response cache.")
        return 130
    failed = listener.failed
    if run.rollup is not None:
        failed += _report("roll-up (combined dataset and audit)", BatchOutcome.of(run.rollup))
    if listener.blocked:
        _say(f"pref-pipeline: {listener.blocked} of {len(run.batches)} batch(es) blocked by a gate: their pairs were "
             "not exported (the report says why)")
    if failed:
        _say(f"pref-pipeline: {failed} run(s) FAILED; a failed batch's pairs were not exported")
    if listener.awaiting_label:
        from pref_pipeline.quarantine import TO_LABEL_COMMAND

        _say(f"pref-pipeline: {listener.awaiting_label} comparison(s) await human labels (not a failure); "
             f"`{TO_LABEL_COMMAND}` writes them to label, and the next run makes pairs of what people labelled")
    _summary(home, run.log)
    return 1 if failed or listener.blocked else 0


def _start_forkserver(config: PipelineConfig) -> None:
    """Batches in parallel fork from a forkserver that imports the pipeline (seconds): started before the
    preflight and before this process imports Dagster, it is ready that much sooner."""
    from pref_pipeline.batches import discover_batches
    from pref_pipeline.preload import start_forkserver

    if len(discover_batches(config)) > 1:
        start_forkserver(config, "pref_pipeline.runs")


def _summary(home: Home, log: Path | None) -> None:
    """Where the dataset, the report, the tables and the event log are; the audit's warnings."""
    audit_path, dataset = home.reports / "audit.json", home.exports / "preference_pairs.jsonl"
    audit = json.loads(audit_path.read_text()) if audit_path.exists() else {}
    if dataset.exists():
        human = (audit.get("export") or {}).get("human_share") or {}
        mixed = (f", plus {human['pairs']} human-annotated from export.human_sets: {human['share']:.1%} of the dataset"
                 if human.get("pairs") else "")
        print(f"dataset: {dataset} ({audit.get('pairs', {}).get('kept', '?')} pairs{mixed})")
        print(f"         {home.exports / 'preference_pairs.parquet'}")
    if (home.exports / "hf" / "README.md").exists():
        print(f"         {home.exports / 'hf'} (datasets.load_dataset loads it; `pref-pipeline publish --repo ORG/NAME`"
              " uploads it)")
    if audit_path.exists():
        print(f"report:  {home.reports / 'audit.md'}")
        print(f"         {audit_path}")
    print(f"tables:  {home.tables}")
    if log is not None:
        print(f"log:     {log}")
    for flag in audit.get("flags", []):
        print(f"warning: {flag}")


def _estimate(args: argparse.Namespace) -> int:
    config = load_cli_config(args, check_prompts=True)
    from pref_pipeline.estimate import estimate_run, render_estimate

    estimate = estimate_run(config, cli_home(args))
    print(json.dumps(estimate, indent=2) if args.json else render_estimate(estimate))
    return 0


def _publish(args: argparse.Namespace) -> int:
    from pref_pipeline.hf_dataset import FOLDER, PublishError, publish

    folder = cli_home(args).exports / FOLDER
    try:
        url = publish(folder, args.repo, private=args.private)
    except PublishError as exc:
        raise InputError(str(exc)) from exc
    except Exception as exc:  # noqa: BLE001 - the Hub client's HTTP and network errors: said in one line
        print(f"pref-pipeline: publishing {folder} to {args.repo} failed: {type(exc).__name__}: "
              f"{' '.join(str(exc).split())[:600]}", file=sys.stderr)
        return 1
    print(f"published {folder} -> {url}")
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more: {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pref-pipeline", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="materialize every asset headless (embedded default without --config)")
    run.add_argument("--config", type=Path, default=None, help="a YAML configuration file")
    run.add_argument("--home", type=str, default=None, help="overrides PREF_PIPELINE_HOME for this run")
    run.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                     help="progress bars for the LLM calls on stderr (default: when stderr is a terminal)")
    run.add_argument("--verbose", action="store_true",
                     help="stream Dagster's event log to stderr as well (it is always written to <home>/logs/)")
    run.add_argument("--parallel", type=_positive, default=1, metavar="N",
                     help="run N prompt batches at once, each in its own process (default 1); they share the "
                     "models' rpm/tpm budgets")
    run.set_defaults(func=_run)
    estimate = commands.add_parser("estimate", help="dry run: the LLM calls, tokens and cost a run would spend "
                                   "(nothing is called; cached answers count as free)")
    estimate.add_argument("--config", type=Path, default=None, help="a YAML configuration file")
    estimate.add_argument("--home", type=str, default=None, help="overrides PREF_PIPELINE_HOME (whose cache is read)")
    estimate.add_argument("--json", action="store_true", help="print the estimate as JSON")
    estimate.set_defaults(func=_estimate)
    publish = commands.add_parser("publish", help="upload exports/hf (the Hugging Face dataset folder a run writes) "
                                  "to a Hub dataset repository; the token comes from HF_TOKEN")
    publish.add_argument("--repo", required=True, metavar="ORG/NAME", help="the dataset repository (created if needed)")
    publish.add_argument("--private", action="store_true", help="create the repository private")
    publish.add_argument("--home", type=str, default=None, help="overrides PREF_PIPELINE_HOME (whose exports/hf is sent)")
    publish.set_defaults(func=_publish)
    from pref_pipeline.review import add_review_parser  # `review export` / `review import FILE`

    add_review_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # SIGTERM stops a run like Ctrl-C does (Dagster maps the two together while it executes; this covers the
    # moments around its runs), so a stop request is never swallowed and always ends with the resume message.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.getsignal(signal.SIGINT))
    try:
        return args.func(args)
    except (InputError, OldLayoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pref-pipeline: stopped. Run the same command again to resume (answers already paid for are cached).",
              file=sys.stderr)
        return 130
    finally:
        # Out of the interpreter's last collection at exit, which would walk every object the run left (~0.1 s
        # after a run): they are freed with the process.
        gc.freeze()


if __name__ == "__main__":
    sys.exit(main())
