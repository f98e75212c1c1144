"""Publishing the dataset: JSONL (one pair per line, the seed document's fields first) and Parquet.

Files are written to a temporary name and renamed, so a reader never sees half a file and a
failed run leaves the previous export in place.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

JSONL_NAME = "preference_pairs.jsonl"
PARQUET_NAME = "preference_pairs.parquet"


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
