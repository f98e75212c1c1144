"""Publishing the dataset: JSONL (one pair per line, the seed document's fields first) and Parquet, in one of
TRL's preference formats (``trainer_format``): ``standard`` rows hold strings (a conversation rendered as text
in ``prompt``, its turns as JSON in ``messages``); ``conversational`` rows hold lists of messages: ``prompt``
the whole conversation (a single-string prompt as one user turn), ``chosen`` and ``rejected`` one assistant
turn each. Every other field is as it is.

Files are written to a temporary name and renamed, so a reader never sees half a file and a
failed run leaves the previous export in place. Each prompt batch is published on its own under
``batches/<batch>/`` (``export_pairs``); the top-level files are the union of every published batch
(``combine_published``), plus any rows added to it (the human-annotated sets, ``human_sets``), rebuilt under a
file lock so two rebuilds at once cannot drop each other.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from filelock import FileLock

from pref_pipeline.atomic import replace_atomically

FORMATS = ("auto", "standard", "conversational")
JSONL_NAME = "preference_pairs.jsonl"
PARQUET_NAME = "preference_pairs.parquet"
BATCHES_FOLDER = "batches"


def _messages_of(value: object) -> list[dict[str, str]] | None:
    return json.loads(value) if isinstance(value, str) and value else None


def resolve_format(pairs: pd.DataFrame, wanted: str) -> str:
    """``auto``: conversational when any pair's prompt is a conversation, else standard."""
    if wanted != "auto":
        return wanted
    has_messages = "messages" in pairs.columns and pairs["messages"].map(_messages_of).notna().any()
    return "conversational" if has_messages else "standard"


def trainer_format(pairs: pd.DataFrame, fmt: str) -> pd.DataFrame:
    """The pairs in TRL's ``standard`` or ``conversational`` preference format (``resolve_format`` first)."""
    if fmt == "standard" or pairs.empty:
        return pairs
    messages = pairs["messages"] if "messages" in pairs.columns else pd.Series([None] * len(pairs), index=pairs.index)
    prompt = [_messages_of(m) or [{"role": "user", "content": p}] for p, m in zip(pairs["prompt"], messages)]
    turn = lambda text: [{"role": "assistant", "content": text}]  # noqa: E731
    return pairs.drop(columns=[c for c in ("messages",) if c in pairs.columns]).assign(
        prompt=prompt, chosen=pairs["chosen"].map(turn), rejected=pairs["rejected"].map(turn))


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
    format: str = "standard"  # TRL's preference format the files are in
    pairs: pd.DataFrame | None = None  # the dataset, before formatting (every batch's pairs, then the added rows)
    added: int = 0  # rows added to the batches' pairs (``combine_published``'s ``add``)


AddRows = Callable[[pd.DataFrame], pd.DataFrame]  # the rows to add to the batches' union, given it


def combine_published(folder: Path, fmt: str = "auto", add: AddRows | None = None) -> CombinedExport:
    """Rebuild the top-level files from every batch published under ``folder/batches/``, in batch-name order, in
    format ``fmt`` (``auto``: conversational when any prompt is a conversation), followed by the rows ``add``
    returns for that union (e.g. human-annotated pairs mixed in)."""
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder / ".export.lock")):
        return _combine(folder, fmt, add)


def published_rows(folder: Path) -> int:
    """Pairs in every batch published under ``folder/batches/`` (from the Parquet footers: nothing is loaded)."""
    import pyarrow.parquet as pq

    return sum(pq.read_metadata(batch / PARQUET_NAME).num_rows for batch in published_batches(folder))


def published_batches(folder: Path) -> list[Path]:
    batches = folder / BATCHES_FOLDER
    return sorted(p for p in batches.iterdir() if (p / JSONL_NAME).exists()) if batches.is_dir() else []


def _combine(folder: Path, wanted: str, add: AddRows | None) -> CombinedExport:
    batch_folders = published_batches(folder)
    frames = [pd.read_parquet(batch / PARQUET_NAME) for batch in batch_folders]
    pairs = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    added = add(pairs) if add is not None else pd.DataFrame()
    if len(added):
        pairs = pd.concat([pairs, added], ignore_index=True) if len(pairs) else added
    fmt = resolve_format(pairs, wanted)

    def write_jsonl(tmp: Path) -> None:
        if fmt != "standard":  # TRL's lists of messages, from the frame
            if pairs.empty:
                tmp.write_bytes(b"")
            else:
                trainer_format(pairs, fmt).to_json(tmp, orient="records", lines=True, date_format="iso",
                                                   force_ascii=False)
            return
        with tmp.open("wb") as out:  # the batches' own lines, as they are
            for batch in batch_folders:
                data = (batch / JSONL_NAME).read_bytes()
                if data.strip():
                    out.write(data if data.endswith(b"\n") else data + b"\n")
            if len(added):
                text = added.to_json(orient="records", lines=True, date_format="iso", force_ascii=False)
                out.write(text.encode("utf-8") + (b"" if text.endswith("\n") else b"\n"))

    jsonl, parquet = folder / JSONL_NAME, folder / PARQUET_NAME
    replace_atomically(jsonl, write_jsonl)
    replace_atomically(parquet, lambda tmp: trainer_format(pairs, fmt).to_parquet(tmp, index=False))
    return CombinedExport(jsonl, parquet, len(pairs), [batch.name for batch in batch_folders], fmt, pairs, len(added))


# --------------------------------------------------------------------------- recency weight

RECENCY_COLUMN = "recency_weight"


def recency_weights(judged_at: pd.Series, half_life_days: float, reference: object = None) -> pd.Series:
    """``0.5 ** (days from each time to the reference / half-life)``: 1.0 for the newest, 0.5 one half-life
    older. ``reference`` defaults to the newest time given; times after it (or missing) weigh 1.0."""
    times = pd.to_datetime(judged_at, utc=True)
    newest = pd.to_datetime(reference, utc=True) if reference is not None else times.max()
    if pd.isna(newest):
        return pd.Series(1.0, index=judged_at.index)
    age_days = ((newest - times).dt.total_seconds() / 86400.0).clip(lower=0.0).fillna(0.0)
    return (0.5 ** (age_days / float(half_life_days))).round(6)


def dated_at(pairs: pd.DataFrame) -> pd.Series:
    """When each pair was made, for its recency: its newest verdict (``judged_at``), or, for a pair no judge dated
    (a label known by construction), when the newer of its two responses was generated (``generated_at``)."""
    missing = pd.Series(pd.NaT, index=pairs.index, dtype="datetime64[ns, UTC]")
    judged = pd.to_datetime(pairs["judged_at"], utc=True) if "judged_at" in pairs.columns else missing
    generated = pd.to_datetime(pairs["generated_at"], utc=True) if "generated_at" in pairs.columns else missing
    return judged.fillna(generated)


def with_recency_weight(pairs: pd.DataFrame, half_life_days: float, reference: object = None) -> pd.DataFrame:
    """The pairs with a ``recency_weight`` column (see ``recency_weights``), for weighting recent data more: each
    pair's age is counted from when it was dated (``dated_at``: its verdict, else its generation) to the newest such
    time, or to ``reference`` when that is later."""
    times = dated_at(pairs) if len(pairs) else pd.Series(dtype="datetime64[ns, UTC]")
    newest = times.max() if len(pairs) else None
    if reference is not None:
        reference = pd.to_datetime(reference, utc=True)
        newest = reference if newest is None or pd.isna(newest) or reference > newest else newest
    weights = recency_weights(times, half_life_days, newest) if len(pairs) else pd.Series(dtype="float64")
    return pairs.assign(**{RECENCY_COLUMN: weights.astype("float64")})
