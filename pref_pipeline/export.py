"""Publishing the dataset: JSONL (one pair per line, the seed document's fields first) and Parquet.

Files are written to a temporary name and renamed, so a reader never sees half a file and a
failed run leaves the previous export in place. Each prompt batch is published on its own under
``batches/<batch>/`` (``export_pairs``); the top-level files are the union of every published batch
(``combine_published``), rebuilt under a file lock so two rebuilds at once cannot drop each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from filelock import FileLock

from pref_pipeline.atomic import replace_atomically

JSONL_NAME = "preference_pairs.jsonl"
PARQUET_NAME = "preference_pairs.parquet"
BATCHES_FOLDER = "batches"


def export_pairs(pairs: pd.DataFrame, folder: Path) -> dict[str, Path]:
    """Write the kept pairs; timestamps become ISO-8601 strings in JSONL."""
    folder.mkdir(parents=True, exist_ok=True)
    jsonl, parquet = folder / JSONL_NAME, folder / PARQUET_NAME
    def write_jsonl(tmp: Path) -> None:
        if pairs.empty:  # pandas would write a lone newline: a blank line in the combined file
            tmp.write_bytes(b"")
        else:
            pairs.to_json(tmp, orient="records", lines=True, date_format="iso", force_ascii=False)

    replace_atomically(jsonl, write_jsonl)
    replace_atomically(parquet, lambda p: pairs.to_parquet(p, index=False))
    return {"jsonl": jsonl, "parquet": parquet}


@dataclass(frozen=True)
class CombinedExport:
    """The top-level files and what they hold."""

    jsonl: Path
    parquet: Path
    rows: int  # pairs in the dataset
    batches: list[str]  # the published batches it is the union of, in name order


def combine_published(folder: Path) -> CombinedExport:
    """Rebuild the top-level files from every batch published under ``folder/batches/``, in batch-name order."""
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder / ".export.lock")):
        return _combine(folder)


def published_batches(folder: Path) -> list[Path]:
    batches = folder / BATCHES_FOLDER
    return sorted(p for p in batches.iterdir() if (p / JSONL_NAME).exists()) if batches.is_dir() else []


def _combine(folder: Path) -> CombinedExport:
    batch_folders = published_batches(folder)
    rows = 0

    def write_jsonl(tmp: Path) -> None:
        nonlocal rows
        rows = 0
        with tmp.open("wb") as out:
            for batch in batch_folders:
                data = (batch / JSONL_NAME).read_bytes()
                if data.strip():
                    out.write(data if data.endswith(b"\n") else data + b"\n")
                    rows += sum(1 for line in data.splitlines() if line.strip())

    def write_parquet(tmp: Path) -> None:
        frames = [pd.read_parquet(batch / PARQUET_NAME) for batch in batch_folders]
        (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()).to_parquet(tmp, index=False)

    jsonl, parquet = folder / JSONL_NAME, folder / PARQUET_NAME
    replace_atomically(jsonl, write_jsonl)
    replace_atomically(parquet, write_parquet)
    return CombinedExport(jsonl, parquet, rows, [batch.name for batch in batch_folders])


# --------------------------------------------------------------------------- recency weight

RECENCY_COLUMN = "recency_weight"


def recency_weights(judged_at: pd.Series, half_life_days: float, reference: object = None) -> pd.Series:
    """``0.5 ** (days from each verdict to the reference / half-life)``: 1.0 for the newest, 0.5 one half-life
    older. ``reference`` defaults to the newest ``judged_at``; verdicts after it (or without a time) weigh 1.0."""
    times = pd.to_datetime(judged_at, utc=True)
    newest = pd.to_datetime(reference, utc=True) if reference is not None else times.max()
    if pd.isna(newest):
        return pd.Series(1.0, index=judged_at.index)
    age_days = ((newest - times).dt.total_seconds() / 86400.0).clip(lower=0.0).fillna(0.0)
    return (0.5 ** (age_days / float(half_life_days))).round(6)


def with_recency_weight(pairs: pd.DataFrame, half_life_days: float, reference: object = None) -> pd.DataFrame:
    """The pairs with a ``recency_weight`` column (see ``recency_weights``), for weighting recent data more."""
    newest = pd.to_datetime(pairs["judged_at"], utc=True).max() if len(pairs) else None
    if reference is not None:
        reference = pd.to_datetime(reference, utc=True)
        newest = reference if newest is None or pd.isna(newest) or reference > newest else newest
    weights = recency_weights(pairs["judged_at"], half_life_days, newest) if len(pairs) else pd.Series(dtype="float64")
    return pairs.assign(**{RECENCY_COLUMN: weights.astype("float64")})
