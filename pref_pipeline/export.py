"""Publishing the dataset: JSONL (one pair per line, the seed document's fields first) and Parquet.

Files are written to a temporary name and renamed, so a reader never sees half a file and a
failed run leaves the previous export in place. Each prompt batch is published on its own under
``batches/<batch>/``; the top-level files are the union of every published batch, rebuilt under a
file lock so two batches published at once cannot drop each other.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
from filelock import FileLock

JSONL_NAME = "preference_pairs.jsonl"
PARQUET_NAME = "preference_pairs.parquet"
BATCHES_FOLDER = "batches"


def _replace_atomically(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def export_pairs(pairs: pd.DataFrame, folder: Path) -> dict[str, Path]:
    """Write the kept pairs; timestamps become ISO-8601 strings in JSONL."""
    folder.mkdir(parents=True, exist_ok=True)
    jsonl, parquet = folder / JSONL_NAME, folder / PARQUET_NAME
    _replace_atomically(
        jsonl, lambda p: pairs.to_json(p, orient="records", lines=True, date_format="iso", force_ascii=False)
    )
    _replace_atomically(parquet, lambda p: pairs.to_parquet(p, index=False))
    return {"jsonl": jsonl, "parquet": parquet}


def _combine(folder: Path) -> dict[str, Path]:
    """Rebuild the top-level files from every published batch, in batch-name order."""
    batch_folders = sorted(p for p in (folder / BATCHES_FOLDER).iterdir() if (p / JSONL_NAME).exists())

    def write_jsonl(tmp: Path) -> None:
        with tmp.open("wb") as out:
            for batch in batch_folders:
                out.write((batch / JSONL_NAME).read_bytes())

    def write_parquet(tmp: Path) -> None:
        frames = [pd.read_parquet(batch / PARQUET_NAME) for batch in batch_folders]
        pd.concat(frames, ignore_index=True).to_parquet(tmp, index=False)

    jsonl, parquet = folder / JSONL_NAME, folder / PARQUET_NAME
    _replace_atomically(jsonl, write_jsonl)
    _replace_atomically(parquet, write_parquet)
    return {"jsonl": jsonl, "parquet": parquet}


def export_batch(pairs: pd.DataFrame, folder: Path, batch_id: str) -> dict[str, Path]:
    """Publish one batch's validated pairs and refresh the combined dataset."""
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder / ".export.lock")):
        batch_paths = export_pairs(pairs, folder / BATCHES_FOLDER / batch_id)
        combined = _combine(folder)
    return {**combined, "batch_jsonl": batch_paths["jsonl"], "batch_parquet": batch_paths["parquet"]}
