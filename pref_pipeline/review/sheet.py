"""The CSV review sheet, for people without an annotation server: blinded comparisons out, labels back in.

``export_sheet`` writes one row per chosen comparison (``selection.select_items``) with the prompt and the two
responses as ``response_a`` / ``response_b`` in random order (seeded) and a blank ``human_preference`` to fill
with ``A``, ``B`` or ``tie``. Nothing on the sheet says which response a judge or a construction preferred.
Which candidate is A is in the key file beside it (``<sheet>.key.csv``), which reviewers are not given. Sheet
and key carry the same ``export_id``, so a key of another export is refused rather than silently mislabelling.

``import_sheet`` maps A/B back through the key to candidate ids and stores ``human_labels`` rows (source
``review``): every row is checked first (label value, the key, the comparison still stored), and one bad row
refuses the whole sheet. Sheets of the earlier formats are still read: blinded by ``pair_id`` (key column
``response_a_is`` chosen/rejected) and unblinded (``chosen`` / ``rejected`` / ``tie`` per ``pair_id``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from pref_pipeline import store
from pref_pipeline.paths import Home
from pref_pipeline.review.labels import (REVIEW_SOURCE, SHOWN, ReviewError, blind, describe, label_row,
                                         labels_frame, new_export_id, number, winner_of)
from pref_pipeline.ids import comparison_id_of
from pref_pipeline.review.selection import reviewable, select_items

SHEET_COLUMNS = ["export_id", "comparison_id", "category", "prompt", "response_a", "response_b", "human_preference",
                 "labeller", "notes"]
KEY_COLUMNS = ["export_id", "comparison_id", "response_a_id", "response_b_id", "response_a_is", "selection",
               "inclusion_probability"]
LABELS = ("chosen", "rejected", "tie")  # the earlier unblinded sheets


def key_path(sheet: Path) -> Path:
    """Where a sheet's key (which candidate is A, which B) is kept: ``<sheet>.key.csv``."""
    return sheet.with_name(sheet.stem + ".key.csv")


def sheet_and_key(items: pd.DataFrame, export_id: str, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The blinded sheet and its key for ``items`` (``selection.ITEM_COLUMNS``)."""
    shown = blind(items.reset_index(drop=True), seed)
    a_is = [describe(a, item) for a, item in zip(shown["response_a_id"], shown.to_dict(orient="records"))]
    sheet = pd.DataFrame({"export_id": export_id, "comparison_id": shown["comparison_id"],
                          "category": shown["category"], "prompt": shown["prompt"], "response_a": shown["response_a"],
                          "response_b": shown["response_b"], "human_preference": "", "labeller": "", "notes": ""},
                         columns=SHEET_COLUMNS)
    key = pd.DataFrame({"export_id": export_id, "comparison_id": shown["comparison_id"],
                        "response_a_id": shown["response_a_id"], "response_b_id": shown["response_b_id"],
                        "response_a_is": a_is, "selection": shown["selection"],
                        "inclusion_probability": shown["inclusion_probability"]}, columns=KEY_COLUMNS)
    return sheet, key


@dataclass(frozen=True)
class SheetExport:
    path: Path
    key_path: Path
    export_id: str
    sheet: pd.DataFrame
    key: pd.DataFrame


def export_sheet(home: Home, path: Path, *, to_label: bool = False, sample: int | None = None,
                 strategy: str = "random", seed: int = 0) -> SheetExport:
    """Write the blinded sheet of the chosen comparisons (``select_items``) and its key beside it."""
    items = select_items(home, to_label=to_label, sample=sample, strategy=strategy, seed=seed)
    export_id = new_export_id()
    sheet, key = sheet_and_key(items, export_id, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.to_csv(path, index=False)
    key.to_csv(key_path(path), index=False)
    return SheetExport(path, key_path(path), export_id, sheet, key)


def export_review_sheet(home: Home, path: Path, n: int = 20, seed: int = 0) -> pd.DataFrame:
    """The seed's exercise (``n`` kept pairs by category) as a sheet; kept for callers of the first version."""
    return export_sheet(home, path, sample=n, seed=seed).sheet


@dataclass(frozen=True)
class ImportResult:
    imported: int
    blank: int
    by_label: dict[str, int]
    labels: pd.DataFrame | None = None


def read_sheet(path: Path, items: pd.DataFrame, labeller: str | None = None,
               now: datetime | None = None) -> tuple[pd.DataFrame, int]:
    """Validate a filled-in sheet against the stored comparisons (``items``: ``selection.reviewable``);
    (human_labels rows, blank rows skipped). Raises ReviewError naming every bad line."""
    sheet = _read_csv(path, "the sheet")
    if "comparison_id" in sheet.columns:
        needed = ("export_id", "comparison_id", "human_preference")
    else:  # the first version's sheets, by pair
        needed = ("pair_id", "human_preference")
    missing = [c for c in needed if c not in sheet.columns]
    if missing:
        raise ReviewError(f"{path}: missing column(s) {', '.join(missing)}")
    blinded = "response_a" in sheet.columns
    key = _read_key(path, sheet) if blinded else None
    by_id = {item["comparison_id"]: item for item in items.to_dict(orient="records")}
    now = now or datetime.now(timezone.utc)
    labels, problems, blank, seen = [], [], 0, {}
    for line, row in enumerate(sheet.to_dict(orient="records"), start=2):  # line 1 is the header
        value = str(row.get("human_preference", "")).strip().lower()
        if not value:
            blank += 1
            continue
        raw_id = str(row.get("comparison_id") or row.get("pair_id") or "").strip()
        comparison_id = raw_id if "comparison_id" in sheet.columns else comparison_id_of(raw_id)
        allowed = SHOWN if blinded else LABELS
        if value not in allowed:
            problems.append(f"line {line}: human_preference {row['human_preference']!r} is not one of "
                            f"{'A, B, tie' if blinded else ', '.join(LABELS)}")
            continue
        if key is not None and "export_id" in sheet.columns and str(row["export_id"]).strip() != key["export_id"]:
            problems.append(f"line {line}: export id {row['export_id']!r} is not the key's ({key['export_id']}): "
                            f"the key file {key_path(path)} belongs to another export")
            continue
        if key is not None and raw_id not in key["rows"]:
            problems.append(f"line {line}: {raw_id!r} is not in the sheet's key {key_path(path)}")
            continue
        item = by_id.get(comparison_id)
        if item is None:
            problems.append(f"line {line}: {raw_id!r} is not a stored comparison (unknown id)")
            continue
        if key is not None:
            entry = key["rows"][raw_id]
            if "response_a_id" in entry:
                winner = winner_of(value, entry["response_a_id"], entry["response_b_id"])
            else:  # first version: response_a_is chosen / rejected
                other = {"chosen": "rejected", "rejected": "chosen"}
                winner = _winner_by_word(item, {"a": entry["response_a_is"], "b": other.get(entry["response_a_is"])
                                                }.get(value, "tie"))
            extra = {"export_id": key["export_id"], "selection": entry.get("selection") or None,
                     "inclusion_probability": number(entry.get("inclusion_probability"))}
        else:
            winner, extra = _winner_by_word(item, value), {}
        if winner is None and value != "tie" and (key is None or "response_a_id" not in key["rows"][raw_id]):
            problems.append(f"line {line}: {raw_id!r} has no stored pair, so {value!r} names no response")
            continue
        if winner is not None and winner not in (item["candidate_x_id"], item["candidate_y_id"]):
            problems.append(f"line {line}: the key's response for {raw_id!r} is not one of the comparison's "
                            "candidates")
            continue
        who = str(row.get("labeller") or "").strip() or labeller or None
        if (comparison_id, who) in seen:
            problems.append(f"line {line}: {raw_id!r} is labelled again by {who or 'the same labeller'} (first on "
                            f"line {seen[comparison_id, who]})")
            continue
        seen[comparison_id, who] = line
        labels.append(label_row(REVIEW_SOURCE, item, winner, who, now, notes=str(row.get("notes") or "").strip(),
                                **extra))
    if problems:
        raise ReviewError(f"{path}: {len(problems)} row(s) cannot be imported (nothing was stored):\n  "
                          + "\n  ".join(problems[:20]))
    return labels_frame(labels), blank


def import_sheet(home: Home, path: Path, labeller: str | None = None) -> ImportResult:
    """Read a filled-in sheet (``read_sheet``) into ``human_labels``, all rows or none."""
    labels, blank = read_sheet(path, reviewable(home), labeller)
    store.upsert_human_labels(home, labels)
    counts = labels["human_preference"].value_counts().to_dict() if len(labels) else {}
    return ImportResult(len(labels), blank, {k: int(v) for k, v in counts.items()}, labels)


import_review_sheet = import_sheet  # the first version's name


def _read_csv(path: Path, what: str) -> pd.DataFrame:
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise ReviewError(f"{path}: no such file ({what})") from None
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise ReviewError(f"{path}: cannot read {what} as CSV ({exc})") from None


def _read_key(path: Path, sheet: pd.DataFrame) -> dict:
    """The key of a blinded sheet: {export_id, rows: {id on the sheet: key row}}."""
    where = key_path(path)
    if not where.exists():
        raise ReviewError(f"{path}: a blinded sheet needs its key file {where}, which is missing (it was written "
                          "beside the sheet by `pref-pipeline review export`)")
    frame = _read_csv(where, "the key file")
    id_column = "comparison_id" if "comparison_id" in sheet.columns else "pair_id"
    if id_column not in frame.columns or "response_a_id" not in frame.columns and "response_a_is" not in frame.columns:
        raise ReviewError(f"{where}: not the key of this sheet (no {id_column} / response_a_id columns)")
    export_ids = set(frame["export_id"]) if "export_id" in frame.columns else {""}
    if len(export_ids) > 1:
        raise ReviewError(f"{where}: a key of several exports ({', '.join(sorted(export_ids))})")
    return {"export_id": export_ids.pop() if export_ids else "",
            "rows": {r[id_column]: r for r in frame.to_dict(orient="records")}}


def _winner_by_word(item: dict, word: str) -> str | None:
    """The candidate meant by chosen / rejected (of the stored pair) or x / y; None for a tie."""
    chosen = item.get("chosen_candidate_id")
    if word in ("chosen", "rejected") and not (isinstance(chosen, str) and chosen):
        return None
    rejected = item["candidate_y_id"] if chosen == item["candidate_x_id"] else item["candidate_x_id"]
    return {"chosen": chosen, "rejected": rejected, "x": item["candidate_x_id"], "y": item["candidate_y_id"]}.get(word)
