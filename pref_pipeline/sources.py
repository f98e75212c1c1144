"""Reading prompts from JSONL, CSV and Parquet files, and the built-in prompt set.

A malformed file fails with the file and line named; nothing is dropped silently: exact duplicate
prompts are reported back to the caller, which records them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pandas as pd

from pref_pipeline import schema
from pref_pipeline.config import PromptSource

PROMPT_COLUMNS = schema.names("prompts")
BUILTIN_SOURCE = "builtin:default_prompts.jsonl"


class PromptFileError(ValueError):
    """A prompt file that cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class LoadedPrompts:
    prompts: pd.DataFrame  # PROMPT_COLUMNS, one row per distinct prompt text
    duplicates: pd.DataFrame  # rows dropped as exact repeats of an earlier prompt, with the id kept


def prompt_id_for(text: str) -> str:
    """A stable id from the prompt text, for sources that bring none."""
    return "p-" + hashlib.sha256(text.strip().encode()).hexdigest()[:12]


def _detect_format(source: PromptSource) -> str:
    if source.format != "auto":
        return source.format
    suffix = source.path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix in (".csv", ".tsv"):
        return "csv"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    raise PromptFileError(f"{source.path}: cannot tell the format from the suffix {suffix!r}; set 'format'")


def _row(record: dict, where: str, source: PromptSource, origin: str) -> dict:
    """Validate one record; ``where`` names its place in the file for error messages."""
    text = record.get(source.prompt_field)
    if text is None or (isinstance(text, float) and pd.isna(text)):
        raise PromptFileError(f"{where}: missing field {source.prompt_field!r}")
    if not isinstance(text, str):
        raise PromptFileError(f"{where}: field {source.prompt_field!r} must be text, got {type(text).__name__}")
    if not text.strip():
        raise PromptFileError(f"{where}: field {source.prompt_field!r} is empty")

    def optional_text(key: str) -> str | None:
        value = record.get(key)
        if value is None or (isinstance(value, float) and pd.isna(value)):
            return None
        return str(value)

    return {
        "prompt_id": optional_text("id") or prompt_id_for(text),
        "prompt": text.strip(),
        "category": optional_text("category") or source.category or "uncategorized",
        "reference": optional_text("reference"),
        "source": origin,
    }


def _read_jsonl(path: Path, source: PromptSource, origin: str) -> list[dict]:
    rows = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise PromptFileError(f"{origin}:{number}: not valid JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(record, dict):
                raise PromptFileError(f"{origin}:{number}: expected a JSON object, got {type(record).__name__}")
            rows.append(_row(record, f"{origin}:{number}", source, origin))
    return rows


def _read_table(path: Path, fmt: str, source: PromptSource, origin: str) -> list[dict]:
    try:
        if fmt == "csv":
            frame = pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",", dtype=str, keep_default_na=False)
            frame = frame.replace({"": None})
        else:
            frame = pd.read_parquet(path)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise PromptFileError(f"{origin}: cannot read {fmt.upper()}: {exc}") from None
    if source.prompt_field not in frame.columns:
        raise PromptFileError(f"{origin}: no column {source.prompt_field!r} (columns: {', '.join(map(str, frame.columns))})")
    # CSV line numbers count the header as line 1; Parquet rows are numbered from 1.
    offset = 2 if fmt == "csv" else 1
    label = "line" if fmt == "csv" else "row"
    return [
        _row(record, f"{origin}: {label} {i + offset}", source, origin)
        for i, record in enumerate(frame.to_dict(orient="records"))
    ]


def read_source(source: PromptSource) -> list[dict]:
    """All rows of one source, validated, in file order."""
    path = source.path
    origin = str(path)
    if not path.exists():
        raise PromptFileError(f"{origin}: prompt file not found")
    fmt = _detect_format(source)
    rows = _read_jsonl(path, source, origin) if fmt == "jsonl" else _read_table(path, fmt, source, origin)
    if not rows:
        raise PromptFileError(f"{origin}: no prompts in file")
    return rows[: source.limit] if source.limit else rows


def builtin_rows() -> list[dict]:
    """The built-in prompt set (customer service, coding, factual, advice, creative, safety, ambiguous)."""
    text = resources.files("pref_pipeline").joinpath("data/default_prompts.jsonl").read_text(encoding="utf-8")
    source = PromptSource(path=Path(BUILTIN_SOURCE))
    return [_row(json.loads(line), f"{BUILTIN_SOURCE}:{n}", source, BUILTIN_SOURCE) for n, line in enumerate(text.splitlines(), 1) if line.strip()]


def load_prompts(sources: list[PromptSource], max_prompts: int | None = None) -> LoadedPrompts:
    """Read every source (the built-in set when there is none), dropping exact repeats of a prompt.

    Two different prompts under the same id are an error, since every later row refers to the id.
    """
    rows: list[dict] = []
    for source in sources:
        rows.extend(read_source(source))
    if not sources:
        rows = builtin_rows()
    frame = pd.DataFrame(rows, columns=PROMPT_COLUMNS)
    repeated = frame.duplicated(subset=["prompt"], keep="first")
    duplicates = frame[repeated].copy()
    first_id = frame[~repeated].set_index("prompt")["prompt_id"]
    duplicates["kept_prompt_id"] = duplicates["prompt"].map(first_id)
    frame = frame[~repeated]
    clashes = frame[frame.duplicated(subset=["prompt_id"], keep=False)]
    if not clashes.empty:
        ids = ", ".join(sorted(set(clashes["prompt_id"]))[:5])
        raise PromptFileError(f"different prompts share the id(s) {ids}; ids must be unique across sources")
    if max_prompts is not None:
        frame = frame.head(max_prompts)
    return LoadedPrompts(frame.reset_index(drop=True), duplicates.reset_index(drop=True))
