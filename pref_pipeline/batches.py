"""Prompt batches: the unit a run works on (one Dagster partition each).

Each configured prompt source is a batch named after its file or dataset (or its ``batch`` key); each
file in ``prompt_folder`` is one too; with neither, the built-in prompt set is the batch ``builtin``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pref_pipeline import schema
from pref_pipeline.config import PipelineConfig, PromptSource
from pref_pipeline.sources import load_prompts

BUILTIN_BATCH = "builtin"
PROMPT_SUFFIXES = {".jsonl", ".ndjson", ".json", ".csv", ".tsv", ".parquet", ".pq"}


def batch_name(path: Path) -> str:
    """A partition-key-safe name from a file name: ``my prompts.jsonl`` -> ``my_prompts``."""
    return _key_safe(path.stem)


def _key_safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:100] or "batch"


def source_batch(source: PromptSource) -> str:
    """The batch a source belongs to: its ``batch``, else its file's name, else its dataset's (a folder's name, a
    Hub id's last part; a split other than train is added: ``chats_test``)."""
    if source.batch:
        return source.batch
    if source.path is not None:
        return batch_name(source.path)
    name = Path(str(source.dataset).rstrip("/")).name
    return _key_safe(name if source.split == "train" else f"{name}_{source.split}")


def folder_files(folder: Path | None) -> list[Path]:
    """Prompt files in the watched folder, in name order (hidden and partial files skipped)."""
    if folder is None or not folder.is_dir():
        return []
    return sorted(
        p for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in PROMPT_SUFFIXES and not p.name.startswith((".", "~"))
    )


def discover_batches(config: PipelineConfig) -> dict[str, list[PromptSource]]:
    """Every batch the configuration names, with its sources; an empty list means the built-in set.

    Each source carries its effective ``on_bad_rows`` (its own, else the top-level default)."""
    batches: dict[str, list[PromptSource]] = {}
    for source in config.prompts:
        if source.on_bad_rows is None:
            source = source.model_copy(update={"on_bad_rows": config.on_bad_rows})
        batches.setdefault(source_batch(source), []).append(source)
    for path in folder_files(config.prompt_folder):
        batches.setdefault(batch_name(path), []).append(PromptSource(path=path, on_bad_rows=config.on_bad_rows))
    if not batches:
        batches[BUILTIN_BATCH] = []
    return batches


def file_fingerprint(path: Path) -> str:
    """A content hash, so the folder sensor re-runs a batch only when its file really changed."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


BUILTIN_FILE = Path(__file__).parent / "data" / "default_prompts.jsonl"


def source_fingerprint(source: PromptSource) -> str:
    """The content hash of one source: its file, a local dataset's files, or a Hub dataset's id and split (its
    content is not known offline)."""
    if source.path is not None:
        return file_fingerprint(source.path)
    folder = Path(str(source.dataset)).expanduser()
    if not folder.is_dir():
        return hashlib.sha256(f"{source.dataset}\0{source.split}".encode()).hexdigest()[:16]
    digest = hashlib.sha256(source.split.encode())
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(f"\0{path.relative_to(folder)}\0{file_fingerprint(path)}".encode())
    return digest.hexdigest()[:16]


def _present(source: PromptSource) -> bool:
    return source.path.exists() if source.path is not None else True  # a Hub id is checked when it is read


def batch_fingerprint(sources: list[PromptSource]) -> str:
    """The content hash of a batch (its files or datasets, or the built-in set): what a run of it was made from."""
    if not sources:
        return file_fingerprint(BUILTIN_FILE)
    return "+".join(source_fingerprint(source) for source in sources if _present(source))


def missing_sources(sources: list[PromptSource]) -> list[Path]:
    return [source.path for source in sources if source.path is not None and not source.path.exists()]


class UnknownBatch(LookupError):
    """A batch the configuration does not name (its file was removed or renamed since the batch was added)."""


@dataclass(frozen=True)
class BatchPrompts:
    """One batch's prompts as the ``prompts`` step stores them, every row tagged with the batch."""

    prompts: pd.DataFrame  # one row per distinct prompt text
    rejected: pd.DataFrame  # prompt-file rows set aside under on_bad_rows: skip, with file, line and reason
    duplicates: int  # exact repeats dropped
    warnings: tuple[str, ...]  # for the caller to log (very long prompts, rows set aside...)
    fingerprint: str  # of the batch's files: what the prompt sensor compares to tell a changed batch


def load_batch(config: PipelineConfig, batch: str) -> BatchPrompts:
    """The prompts of ``batch`` (a key of ``discover_batches``); ``UnknownBatch`` when the configuration has none."""
    batches = discover_batches(config)
    if batch not in batches:
        raise UnknownBatch(f"no prompt batch {batch!r} in the configuration (batches: {', '.join(sorted(batches))}); "
                           "was its file removed?")
    sources = batches[batch]
    loaded = load_prompts(sources, config.max_prompts)
    return BatchPrompts(schema.with_batch(loaded.prompts, batch), schema.with_batch(loaded.rejected, batch),
                        len(loaded.duplicates), loaded.warnings, batch_fingerprint(sources))
