"""Human review: a stratified sample of kept pairs as a CSV sheet, and the filled-in labels read back.

``pref-pipeline review export`` writes ``reviews/review-<time>.csv`` under ``PREF_PIPELINE_HOME``: one
row per sampled pair (stratified by category) with the prompt, the two responses as ``response_a`` and
``response_b`` and a blank ``human_preference`` column to fill with ``A``, ``B`` or ``tie``. The sheet is
blinded: the two responses are in random order and nothing on it says which one the judge chose (no
judge, no confidence). Which is which is in the key file beside it (``<sheet>.key.csv``), which the
reviewers are not given; ``pref-pipeline review import FILE`` reads the key, maps A/B back to the
judge's chosen/rejected, and stores the labels in the ``human_labels`` table, where the audit's
agreement figures (overall and by category) pick them up. When two reviewers fill copies of the same
sheet (each with their ``labeller``), the import reports their agreement (Cohen's kappa, statsmodels).

A sheet in the earlier, unblinded format (``chosen``/``rejected`` columns, labels ``chosen``,
``rejected`` or ``tie``) is still read.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from pref_pipeline import schema, store, table_files
from pref_pipeline.paths import SCHEMA, Home
from pref_pipeline.quarantine import PAIRS_GATE_STAGE

SHEET_COLUMNS = ["pair_id", "category", "prompt", "response_a", "response_b", "human_preference", "labeller", "notes"]
KEY_COLUMNS = ["pair_id", "response_a_is"]  # response_a_is: chosen or rejected (the judge's)
LABELS = ("chosen", "rejected", "tie")
BLIND_LABELS = ("a", "b", "tie")
REVIEW_SOURCE = "review"


class ReviewError(ValueError):
    """A sheet that cannot be imported; the message names the rows."""


def allocate(counts: dict[str, int], n: int) -> dict[str, int]:
    """How many pairs to draw from each category: proportional to its size (largest remainders), at least
    one from every category when ``n`` allows, never more than it has."""
    total = sum(counts.values())
    if n >= total:
        return dict(counts)
    categories = sorted(counts)
    take = {c: 0 for c in categories}
    if n >= len(categories):
        for c in categories:
            take[c] = 1
    remaining = n - sum(take.values())
    spare = {c: counts[c] - take[c] for c in categories}
    spare_total = sum(spare.values())
    if remaining and spare_total:
        quotas = {c: remaining * spare[c] / spare_total for c in categories}
        for c in categories:
            take[c] += min(spare[c], math.floor(quotas[c]))
        left = n - sum(take.values())
        by_remainder = sorted(categories, key=lambda c: (-(quotas[c] - math.floor(quotas[c])), c))
        for c in by_remainder:
            if left <= 0:
                break
            if take[c] < counts[c]:
                take[c] += 1
                left -= 1
    return take


def stratified_sample(pairs: pd.DataFrame, n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` pairs drawn at random within each category (see ``allocate``), sorted by category."""
    if pairs.empty:
        return pairs
    frame = pairs.assign(category=pairs["category"].fillna("uncategorized"))
    counts = frame["category"].value_counts().to_dict()
    take = allocate(counts, n)
    parts = [group.sample(n=take[category], random_state=seed) for category, group in frame.groupby("category", sort=True)
             if take.get(category)]
    return pd.concat(parts).sort_values(["category", "pair_id"]).reset_index(drop=True)


def kept_pairs(home: Home) -> pd.DataFrame:
    """Stored pairs, minus those of batches whose gate failed (they are not in the dataset)."""
    pairs = store.read_table(home, "preference_pairs")
    if pairs is None or pairs.empty:
        return pd.DataFrame(columns=SHEET_COLUMNS)
    quarantine = store.read_table(home, store.QUARANTINE_TABLE)
    if quarantine is not None and len(quarantine):
        rejected = set(quarantine.loc[quarantine["stage"] == PAIRS_GATE_STAGE, "item_id"].dropna())
        pairs = pairs[~pairs["pair_id"].isin(rejected)]
    return pairs


def key_path(sheet: Path) -> Path:
    """Where a sheet's key (which response is the judge's chosen one) is kept: ``<sheet>.key.csv``."""
    return sheet.with_name(sheet.stem + ".key.csv")


def review_sheet(pairs: pd.DataFrame, n: int = 20, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The blinded sheet and its key: the sample's responses in random order (seeded) as A/B."""
    import numpy as np

    sample = stratified_sample(pairs, n, seed).reset_index(drop=True)
    chosen_first = np.random.default_rng(seed).random(len(sample)) < 0.5
    sheet = pd.DataFrame({
        "pair_id": sample.get("pair_id", pd.Series(dtype=str)), "category": sample.get("category"),
        "prompt": sample.get("prompt"),
        "response_a": np.where(chosen_first, sample.get("chosen", ""), sample.get("rejected", "")) if len(sample) else [],
        "response_b": np.where(chosen_first, sample.get("rejected", ""), sample.get("chosen", "")) if len(sample) else [],
    }).reindex(columns=SHEET_COLUMNS)
    sheet["human_preference"] = ""
    sheet["labeller"] = ""
    sheet["notes"] = ""
    key = pd.DataFrame({"pair_id": sheet["pair_id"],
                        "response_a_is": np.where(chosen_first, "chosen", "rejected") if len(sample) else []},
                       columns=KEY_COLUMNS)
    return sheet, key


def export_review_sheet(home: Home, path: Path, n: int = 20, seed: int = 0) -> pd.DataFrame:
    sheet, key = review_sheet(kept_pairs(home), n, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.to_csv(path, index=False)
    key.to_csv(key_path(path), index=False)
    return sheet


@dataclass(frozen=True)
class ImportResult:
    imported: int
    blank: int
    by_label: dict[str, int]


def read_labels(path: Path, pairs: pd.DataFrame, labeller: str | None = None,
                now: datetime | None = None) -> tuple[pd.DataFrame, int]:
    """Validate a filled-in sheet against the stored pairs; (human_labels rows, blank rows skipped)."""
    try:
        sheet = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise ReviewError(f"{path}: cannot read the sheet as CSV ({exc})") from None
    missing = [c for c in ("pair_id", "human_preference") if c not in sheet.columns]
    if missing:
        raise ReviewError(f"{path}: missing column(s) {', '.join(missing)}")
    by_id = pairs.set_index("pair_id") if len(pairs) else pd.DataFrame()
    blinded = "response_a" in sheet.columns
    key: dict[str, str] = {}
    if blinded:
        try:
            key_frame = pd.read_csv(key_path(path), dtype=str, keep_default_na=False)
            key = dict(zip(key_frame["pair_id"], key_frame["response_a_is"]))
        except (OSError, KeyError, pd.errors.ParserError) as exc:
            raise ReviewError(f"{path}: a blinded sheet needs its key file {key_path(path)} ({exc})") from None
    labels, problems, blank = [], [], 0
    now = now or datetime.now(timezone.utc)
    for number, row in enumerate(sheet.to_dict(orient="records"), start=2):  # line 1 is the header
        value = str(row.get("human_preference", "")).strip().lower()
        if not value:
            blank += 1
            continue
        pair_id = str(row["pair_id"]).strip()
        if blinded:
            if value not in BLIND_LABELS:
                problems.append(f"line {number}: human_preference {row['human_preference']!r} is not one of A, B, tie")
                continue
            if pair_id not in key:
                problems.append(f"line {number}: pair {pair_id!r} is not in the sheet's key")
                continue
            a_is = key[pair_id]
            value = "tie" if value == "tie" else a_is if value == "a" else ("rejected" if a_is == "chosen" else "chosen")
        elif value not in LABELS:
            problems.append(f"line {number}: human_preference {row['human_preference']!r} is not one of "
                            f"{', '.join(LABELS)}")
            continue
        if pair_id not in by_id.index:
            problems.append(f"line {number}: pair {pair_id!r} is not in the stored pairs")
            continue
        pair = by_id.loc[pair_id]
        who = (str(row.get("labeller") or "").strip() or labeller or None)
        winner = {"chosen": pair["chosen_candidate_id"], "rejected": pair["rejected_candidate_id"]}.get(value)
        labels.append({
            "label_id": store.label_id(REVIEW_SOURCE, pair_id, who), "source": REVIEW_SOURCE,
            "comparison_id": "cmp-" + pair_id.removeprefix("pair-"), "pair_id": pair_id,
            "prompt_id": pair.get("prompt_id"), "category": pair.get("category"), "human_preference": value,
            "human_winner_id": winner, "labeller": who, "notes": str(row.get("notes") or "") or None,
            "labelled_at": now,
        })
    if problems:
        raise ReviewError(f"{path}: {len(problems)} row(s) cannot be imported (nothing was stored):\n  "
                          + "\n  ".join(problems[:20]))
    return pd.DataFrame(labels, columns=schema.names(store.HUMAN_LABELS_TABLE)), blank


def import_review_sheet(home: Home, path: Path, labeller: str | None = None) -> ImportResult:
    pairs = store.read_table(home, "preference_pairs")
    labels, blank = read_labels(path, pairs if pairs is not None else pd.DataFrame(columns=["pair_id"]), labeller)
    store.upsert_human_labels(home, labels)
    counts = labels["human_preference"].value_counts().to_dict() if len(labels) else {}
    return ImportResult(len(labels), blank, {k: int(v) for k, v in counts.items()})


def reviewer_agreement(labels: pd.DataFrame, comparisons: pd.DataFrame | None = None) -> list[dict]:
    """Cohen's kappa (statsmodels) between every two reviewers on the comparisons both labelled (review labels
    only): the audit's inter-annotator figure (``audit.agreement.labeller_agreement``)."""
    from pref_pipeline.audit.agreement import labeller_agreement

    return labeller_agreement(labels[labels["source"] == REVIEW_SOURCE], comparisons)


# --------------------------------------------------------------------------- CLI

def has_tables(home: Home) -> bool:
    """Whether the pipeline stored anything in the home (``OldLayoutError`` for a home of the old layout)."""
    table_files.check_layout(home)
    return home.tables.exists()


def _home(args: argparse.Namespace) -> Home:
    """``--home`` when given, else ``PREF_PIPELINE_HOME`` (the CLI reads the environment, not the core)."""
    return Home.at(args.home) if getattr(args, "home", None) else Home.from_env()


def _export(args: argparse.Namespace) -> int:
    home = _home(args)
    n = args.n
    if n is None:
        from pref_pipeline.config import ConfigError, load_config

        try:
            n = load_config(args.config).audit.review_sample_size
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    if not has_tables(home):
        print(f"error: no pipeline tables at {home.tables}; run the pipeline first", file=sys.stderr)
        return 2
    path = args.out or home.root / "reviews" / f"review-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.csv"
    sheet = export_review_sheet(home, path, n, args.seed)
    if sheet.empty:
        print("error: no kept pairs to review", file=sys.stderr)
        return 1
    per_category = ", ".join(f"{c} {k}" for c, k in sheet["category"].value_counts().sort_index().items())
    print(f"review sheet: {path} ({len(sheet)} pairs: {per_category})")
    print(f"blinded: responses in random order as A/B; the key is {key_path(path)} (do not give it to reviewers)")
    print("fill human_preference with A, B or tie; then: pref-pipeline review import " + str(path))
    return 0


def _import(args: argparse.Namespace) -> int:
    home = _home(args)
    if not has_tables(home):
        print(f"error: no pipeline tables at {home.tables}", file=sys.stderr)
        return 2
    try:
        result = import_review_sheet(home, args.file, args.labeller)
    except ReviewError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    counts = ", ".join(f"{k} {v}" for k, v in sorted(result.by_label.items())) or "none"
    print(f"imported {result.imported} label(s) ({counts}); {result.blank} blank row(s) skipped")
    stored = store.read_table(home, store.HUMAN_LABELS_TABLE)
    for entry in reviewer_agreement(stored, store.read_table(home, "comparisons")) if stored is not None else []:
        kappa = "n/a" if entry["kappa"] is None else f"{entry['kappa']:.2f}"
        print(f"reviewers {entry['labeller_a']} and {entry['labeller_b']}: {entry['n']} shared pair(s), agree on "
              f"{entry['observed_agreement']:.0%}, Cohen's kappa {kappa}")
    print(f"stored under {home.tables} as table {SCHEMA}.{store.HUMAN_LABELS_TABLE}; the next audit reports agreement")
    return 0


def add_review_parser(commands) -> None:
    """``pref-pipeline review export|import``, added to the CLI's subcommands."""
    review = commands.add_parser("review", help="human review: export a sheet of pairs to label, import the labels")
    actions = review.add_subparsers(dest="review_command", required=True)
    export = actions.add_parser("export", help="write a stratified sample of kept pairs as a CSV sheet to label")
    export.add_argument("--out", type=Path, default=None, help="the CSV file (default: reviews/review-<time>.csv)")
    export.add_argument("-n", type=int, default=None, help="pairs in the sample (default: audit.review_sample_size, 20)")
    export.add_argument("--seed", type=int, default=0, help="random seed of the sample")
    export.add_argument("--config", type=Path, default=None, help="a YAML configuration file (for the sample size)")
    export.add_argument("--home", type=str, default=None, help="overrides PREF_PIPELINE_HOME")
    export.set_defaults(func=_export)
    imp = actions.add_parser("import", help="read a filled-in sheet into the human_labels table")
    imp.add_argument("file", type=Path, help="the filled-in CSV sheet")
    imp.add_argument("--labeller", default=None, help="who labelled (unless the sheet's labeller column says)")
    imp.add_argument("--home", type=str, default=None, help="overrides PREF_PIPELINE_HOME")
    imp.set_defaults(func=_import)
    from pref_pipeline.known_answers import add_known_answer_parser

    add_known_answer_parser(actions)
