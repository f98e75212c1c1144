"""``pref-pipeline review export|import|push|pull|known-answer``: the commands of human review."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path

from pref_pipeline import store, table_files
from pref_pipeline.paths import SCHEMA, Home
from pref_pipeline.review import label_studio
from pref_pipeline.review.labels import ReviewError, reviewer_agreement
from pref_pipeline.review.selection import STRATEGIES, SelectionError, select_items
from pref_pipeline.review.sheet import export_sheet, import_sheet


def has_tables(home: Home) -> bool:
    """Whether the pipeline stored anything in the home (``OldLayoutError`` for a home of the old layout)."""
    table_files.check_layout(home)
    return home.tables.exists()


def _home(args: argparse.Namespace) -> Home:
    """``--home`` when given, else ``PREF_PIPELINE_HOME`` (the CLI reads the environment, not the core)."""
    return Home.at(args.home) if getattr(args, "home", None) else Home.from_env()


def _fail(message: str, code: int = 2) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def _sample_size(args: argparse.Namespace) -> int | None:
    """``--sample`` / ``-n``, else ``audit.review_sample_size`` of the configuration (20); None: a config error."""
    if args.sample is not None:
        return args.sample
    from pref_pipeline.config import ConfigError, load_config

    try:
        return load_config(args.config).audit.review_sample_size
    except ConfigError as exc:
        _fail(str(exc))
        return None


def _what(args: argparse.Namespace) -> str:
    return "comparisons awaiting labels" if args.to_label else f"{args.strategy} sample"


def _export(args: argparse.Namespace) -> int:
    home = _home(args)
    n = None if args.to_label else _sample_size(args)
    if n is None and not args.to_label:
        return 2
    if not has_tables(home):
        return _fail(f"no pipeline tables at {home.tables}; run the pipeline first")
    path = args.out or home.root / "reviews" / f"review-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.csv"
    try:
        exported = export_sheet(home, path, to_label=args.to_label, sample=n, strategy=args.strategy, seed=args.seed)
    except SelectionError as exc:
        return _fail(str(exc))
    sheet = exported.sheet
    if sheet.empty:
        return _fail("no comparisons await labels" if args.to_label else "no kept pairs to review", 1)
    per_category = ", ".join(f"{c} {k}" for c, k in sheet["category"].value_counts().sort_index().items())
    noun = "comparisons" if args.to_label or args.strategy != "random" else "pairs"
    print(f"review sheet: {path} ({len(sheet)} {noun}: {per_category}; {_what(args)}; export {exported.export_id})")
    print(f"blinded: responses in random order as A/B; the key is {exported.key_path} (do not give it to reviewers)")
    print("fill human_preference with A, B or tie; then: pref-pipeline review import " + str(path))
    return 0


def _import(args: argparse.Namespace) -> int:
    home = _home(args)
    if not has_tables(home):
        return _fail(f"no pipeline tables at {home.tables}")
    try:
        result = import_sheet(home, args.file, args.labeller)
    except ReviewError as exc:
        return _fail(str(exc))
    counts = ", ".join(f"{k} {v}" for k, v in sorted(result.by_label.items())) or "none"
    print(f"imported {result.imported} label(s) ({counts}); {result.blank} blank row(s) skipped")
    _print_reviewers(home)
    print(f"stored under {home.tables} as table {SCHEMA}.{store.HUMAN_LABELS_TABLE}; the next run uses them and the "
          "next audit reports agreement")
    return 0


def _print_reviewers(home: Home, source: str = "review") -> None:
    stored = store.read_table(home, store.HUMAN_LABELS_TABLE)
    comparisons = store.read_table(home, "comparisons")
    for entry in reviewer_agreement(stored, source, comparisons) if stored is not None else []:
        kappa = "n/a" if entry["kappa"] is None else f"{entry['kappa']:.2f}"
        print(f"reviewers {entry['labeller_a']} and {entry['labeller_b']}: {entry['n']} shared comparison(s), agree on "
              f"{entry['observed_agreement']:.0%}, Cohen's kappa {kappa}")


def _push(args: argparse.Namespace) -> int:
    home = _home(args)
    to_label = args.to_label or args.sample is None
    if not has_tables(home):
        return _fail(f"no pipeline tables at {home.tables}; run the pipeline first")
    try:
        server = label_studio.Server.from_env()
        items = select_items(home, to_label=to_label, sample=args.sample, strategy=args.strategy, seed=args.seed)
        if items.empty:
            return _fail("no comparisons await labels" if to_label else "nothing to review", 1)
        result = label_studio.push(home, server, items, args.project, args.seed)
    except ReviewError as exc:
        return _fail(str(exc))
    print(f"Label Studio project {args.project!r} ({'created' if result.created else 'updated'}): {result.project_url}")
    print(f"sent {result.sent} task(s) ({'comparisons awaiting labels' if to_label else args.strategy + ' sample'}); "
          f"{result.already_sent} already there; blinding key kept at {result.key_path}")
    print("when annotated: pref-pipeline review pull" + (f" --project {args.project!r}"
                                                         if args.project != label_studio.DEFAULT_PROJECT else ""))
    return 0


def _pull(args: argparse.Namespace) -> int:
    home = _home(args)
    if not has_tables(home):
        return _fail(f"no pipeline tables at {home.tables}")
    try:
        result = label_studio.pull(home, label_studio.Server.from_env(), args.project)
    except ReviewError as exc:
        return _fail(str(exc))
    counts = ", ".join(f"{k} {v}" for k, v in sorted(result.by_label.items())) or "none"
    print(f"pulled {result.imported} new label(s) ({counts}) from project {result.project_id}; {result.unchanged} "
          f"unchanged, {result.skipped} skipped or empty annotation(s) not labels")
    _print_reviewers(home, label_studio.LABEL_STUDIO_SOURCE)
    return 0


def _add_selection(parser: argparse.ArgumentParser, sample_help: str) -> None:
    parser.add_argument("--to-label", action="store_true",
                        help="the comparisons awaiting labels (status awaiting_label, e.g. the human_ranked strategy's)")
    parser.add_argument("--sample", "-n", dest="sample", type=int, default=None, metavar="N", help=sample_help)
    parser.add_argument("--strategy", choices=STRATEGIES, default="random",
                        help="random: kept pairs at random within each category (the seed's exercise); uncertain: "
                        "where the judges disagreed, were inconsistent or least confident, plus a random share")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the sample and of the A/B order")
    parser.add_argument("--home", type=str, default=None, help="overrides PREF_PIPELINE_HOME")


def add_review_parser(commands) -> None:
    """``pref-pipeline review ...``, added to the CLI's subcommands."""
    review = commands.add_parser("review", help="human review: choose comparisons to label, a CSV sheet or Label "
                                 "Studio, and the labels back")
    actions = review.add_subparsers(dest="review_command", required=True)
    export = actions.add_parser("export", help="write comparisons to label as a blinded CSV sheet (default: 20 kept "
                                "pairs at random by category)")
    _add_selection(export, "items in the sample (default: audit.review_sample_size, 20)")
    export.add_argument("--out", type=Path, default=None, help="the CSV file (default: reviews/review-<time>.csv)")
    export.add_argument("--config", type=Path, default=None, help="a YAML configuration file (for the sample size)")
    export.set_defaults(func=_export)
    imp = actions.add_parser("import", help="read a filled-in sheet into the human_labels table")
    imp.add_argument("file", type=Path, help="the filled-in CSV sheet (its key file beside it)")
    imp.add_argument("--labeller", default=None, help="who labelled (unless the sheet's labeller column says)")
    imp.add_argument("--home", type=str, default=None, help="overrides PREF_PIPELINE_HOME")
    imp.set_defaults(func=_import)
    push = actions.add_parser("push", help="send comparisons to a Label Studio project as blinded pairwise tasks "
                              f"(server: {label_studio.URL_ENV}, {label_studio.KEY_ENV})")
    _add_selection(push, "a sample of N comparisons instead of those awaiting labels")
    push.add_argument("--project", default=label_studio.DEFAULT_PROJECT, help="the project's title (found or created)")
    push.set_defaults(func=_push)
    pull = actions.add_parser("pull", help="read the Label Studio project's annotations into human_labels")
    pull.add_argument("--project", default=label_studio.DEFAULT_PROJECT, help="the project's title")
    pull.add_argument("--home", type=str, default=None, help="overrides PREF_PIPELINE_HOME")
    pull.set_defaults(func=_pull)
    from pref_pipeline.known_answers import add_known_answer_parser

    add_known_answer_parser(actions)
