"""Reading prompts from JSONL, CSV and Parquet files, Hugging Face datasets, and the built-in prompt set.

A row holds a ``prompt`` (text) or ``messages`` (a conversation, ``conversations.parse_messages``); a
source's ``columns`` says where each field is when the source names it otherwise. A conversation is kept
as JSON in ``messages`` and rendered as text in ``prompt`` (what duplicates and ids compare).

Every row is checked. A bad row (not JSON, no prompt, a wrong type, bytes that are not UTF-8,
control characters, an id already used for another prompt) either stops the batch with an error
that lists every bad line of the file (``on_bad_rows: fail``, the default: nothing is spent on a
file that is partly wrong), or is set aside with its reason while the good rows go on
(``on_bad_rows: skip``; the caller stores them). A file that cannot be read as a whole (missing,
binary, empty, an unknown format, a CSV without the prompt column or with broken quoting) is
always an error. Accepted text is kept as given (only surrounding whitespace of the prompt is
trimmed), never interpreted. Exact duplicate prompts are reported back to the caller.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import hashlib
import io
import json
import math
import numbers
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from pref_pipeline import schema
from pref_pipeline.config import SOURCE_FIELDS, PromptSource
from pref_pipeline.conversations import ConversationError, parse_messages, render, to_json

PROMPT_COLUMNS = schema.names("prompts")
REJECTED_COLUMNS = ["source", "line", "reason", "detail", "raw"]
BUILTIN_SOURCE = "builtin:default_prompts.jsonl"
TEXT_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".tsv": "csv"}
SUFFIXES = {**TEXT_SUFFIXES, ".parquet": "parquet", ".pq": "parquet"}

MAX_LISTED = 20  # bad lines named in one error message; the rest are counted
LONG_PROMPT_CHARS = 32_000  # about 8,000 tokens: longer prompts are accepted with a warning
RAW_CHARS = 2_000  # how much of a rejected row is kept for the quarantine
BINARY_SHARE = 0.10  # a file whose characters are more than this share undecodable or control is binary

# Text may hold tab, newline and carriage return; other C0/C1 controls, DEL and lone surrogates
# (unencodable, e.g. from a JSON "\ud800" escape) are refused.
_FORBIDDEN = re.compile("[\x00-\x08\x0b-\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")  # a byte that is not UTF-8, kept by surrogateescape
_SURROGATE = re.compile("[\ud800-\udfff]")
_BINARY_CHAR = re.compile("[\x00-\x08\x0b\x0e-\x1f\ufffd\udc80-\udcff]")
_BINARY_MAGIC = {b"PAR1": "a Parquet file", b"\x1f\x8b": "a gzip file", b"PK\x03\x04": "a zip/xlsx file",
                 b"\x28\xb5\x2f\xfd": "a zstd file", b"SQLite format 3\x00": "an SQLite file"}
_BOMS = [(codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")]


class PromptFileError(ValueError):
    """A prompt file that cannot be used; the message names the file and line(s)."""


class BadRowsError(PromptFileError):
    """Rows that failed their checks under ``on_bad_rows: fail``; ``bad_rows`` lists every one."""

    def __init__(self, message: str, bad_rows: list[BadRow]):
        super().__init__(message)
        self.bad_rows = bad_rows


@dataclass(frozen=True)
class BadRow:
    """A row set aside: where it is, a short reason code, what is wrong, and the row as written."""

    source: str
    line: int  # the line of a JSONL/CSV file (a CSV record's first line), the row of a Parquet file
    reason: str  # invalid_json, not_an_object, missing_prompt, empty_prompt, wrong_type, invalid_utf8,
    #              invalid_text, malformed_csv_row, duplicate_id, invalid_messages, prompt_and_messages
    detail: str
    raw: str
    unit: str = "line"

    def describe(self) -> str:
        where = f"{self.source}:{self.line}" if self.unit == "line" else f"{self.source}: row {self.line}"
        return f"{where}: {self.detail}"


@dataclass(frozen=True)
class LoadedPrompts:
    prompts: pd.DataFrame  # PROMPT_COLUMNS, one row per distinct prompt text
    duplicates: pd.DataFrame  # rows dropped as exact repeats of an earlier prompt, with the id kept
    # Rows set aside under on_bad_rows: skip (REJECTED_COLUMNS), for the quarantine table.
    rejected: pd.DataFrame = field(default_factory=lambda: _rejected_frame([]))
    warnings: tuple[str, ...] = ()  # e.g. very long prompts, rows set aside: for the caller to log


@dataclass
class _SourceRows:
    """What one source yielded: good rows (with their line), bad rows and warnings."""

    origin: str
    on_bad_rows: str
    rows: list[dict] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    bad: list[BadRow] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    unit: str = "line"


def prompt_id_for(text: str) -> str:
    """A stable id from the prompt text, for sources that bring none."""
    return "p-" + hashlib.sha256(text.strip().encode()).hexdigest()[:12]


def _rejected_frame(bad: list[BadRow]) -> pd.DataFrame:
    frame = pd.DataFrame([{c: getattr(b, c) for c in REJECTED_COLUMNS} for b in bad], columns=REJECTED_COLUMNS)
    # Text columns typed even when empty: an all-null object column would be stored as DuckDB's NULL type.
    return frame.astype({"line": "Int64", **{c: "string" for c in REJECTED_COLUMNS if c != "line"}})


def _show_surrogate(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"


def _clip(text: str) -> str:
    """A rejected row as it can be stored: undecodable bytes shown as \\xNN, at most RAW_CHARS."""
    text = _SURROGATE.sub(_show_surrogate, text)
    return text if len(text) <= RAW_CHARS else text[:RAW_CHARS] + f"... [{len(text) - RAW_CHARS:,} more characters]"


def _kind(value: object) -> str:
    """A value's type in the words of the file, not of Python."""
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, str):
        return "text"
    if isinstance(value, numbers.Number):
        return "a number"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)) or hasattr(value, "__array__"):
        return "a list"
    return type(value).__name__


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _bad_characters(text: str, name: str) -> str | None:
    """Why text cannot be stored and sent as it is (None when it can)."""
    match = _FORBIDDEN.search(text)
    if match is None:
        return None
    char = match.group()
    what = "a lone surrogate (not valid Unicode)" if "\ud800" <= char <= "\udfff" else "a control character"
    return f"field {name!r} holds {what} U+{ord(char):04X} at character {match.start() + 1}"


# --------------------------------------------------------------------------- one record

class _Bad(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def _optional_text(record: Mapping, key: str, *, whole_numbers_only: bool = False) -> str | None:
    value = record.get(key)
    if _missing(value):
        return None
    if isinstance(value, str):
        if not value:
            return None
        if not value.strip():
            raise _Bad("invalid_text", f"field {key!r} is only whitespace")
        problem = _bad_characters(value, key)
        if problem:
            raise _Bad("invalid_text", problem)
        return value
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float) and value.is_integer():  # e.g. integer ids in a Parquet column with nulls
        return str(int(value))
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and not whole_numbers_only:
        return str(value)
    allowed = "text or a whole number" if whole_numbers_only else "text or a number"
    raise _Bad("wrong_type", f"field {key!r} must be {allowed}, got {_kind(value)}")


def _renamed(record: Mapping, source: PromptSource) -> Mapping:
    """The record with our field names (``columns``: ``{prompt: instruction}`` reads ``instruction`` as ``prompt``)."""
    if not source.columns and source.prompt_field == "prompt":
        return record
    out = dict(record)
    for ours in SOURCE_FIELDS:
        theirs = source.column(ours)
        if theirs != ours:
            out.pop(ours, None)  # the source's own column of that name is not this field
            if theirs in record:
                out[ours] = record[theirs]
    return out


def _conversation(value: object, source: PromptSource) -> list[dict[str, str]]:
    name = source.column("messages")
    try:
        messages = parse_messages(value)
    except ConversationError as exc:
        raise _Bad("invalid_messages", str(exc).replace("`messages`", f"field {name!r}")) from None
    for number, turn in enumerate(messages, start=1):
        problem = _bad_characters(turn["content"], f"{name}[{number}].content")
        if problem:
            raise _Bad("invalid_text", problem)
    return messages


def _check_record(record: Mapping, source: PromptSource, origin: str) -> dict:
    """One validated row, or ``_Bad`` saying why not."""
    record = _renamed(record, source)
    name = source.column("prompt")
    messages = None if _missing(record.get("messages")) else record["messages"]
    if messages is not None:
        if not _missing(record.get("prompt")):
            raise _Bad("prompt_and_messages", f"has both {name!r} and {source.column('messages')!r}: a row is one "
                       "prompt, as text or as a conversation")
        turns = _conversation(messages, source)
        text, stored = render(turns), to_json(turns)
    else:
        text, stored = _prompt_text(record, source), None
    return {
        "prompt_id": _optional_text(record, "id", whole_numbers_only=True) or prompt_id_for(text),
        "prompt": text.strip(),
        "category": _optional_text(record, "category") or source.category or "uncategorized",
        "reference": _optional_text(record, "reference"),
        "source": origin,
        "messages": stored,
    }


def _prompt_text(record: Mapping, source: PromptSource) -> str:
    name = source.column("prompt")
    if "prompt" not in record:
        present = [str(k) for k in record]
        close = difflib.get_close_matches(name, present, n=1)
        hint = f" (did you mean {close[0]!r}? set columns: {{prompt: {close[0]}}})" if close else ""
        raise _Bad("missing_prompt", f"missing field {name!r} (or {source.column('messages')!r}, a conversation)"
                   f"{hint}")
    text = record["prompt"]
    if _missing(text):
        raise _Bad("missing_prompt", f"missing field {name!r} (it is null)")
    if not isinstance(text, str):
        raise _Bad("wrong_type", f"field {name!r} must be text, got {_kind(text)}")
    if not text.strip():
        raise _Bad("empty_prompt", f"field {name!r} is empty" + (" (only whitespace)" if text else ""))
    problem = _bad_characters(text, name)
    if problem:
        raise _Bad("invalid_text", problem)
    return text


def _accept(out: _SourceRows, record: Mapping, line: int, raw: str, source: PromptSource) -> None:
    try:
        row = _check_record(record, source, out.origin)
    except _Bad as bad:
        out.bad.append(BadRow(out.origin, line, bad.reason, bad.detail, _clip(raw), out.unit))
        return
    out.rows.append(row)
    out.lines.append(line)


# --------------------------------------------------------------------------- bytes to text

def _format_of(source: PromptSource) -> str:
    if source.format != "auto":
        return source.format
    suffix = source.path.suffix.lower()
    if suffix in SUFFIXES:
        return SUFFIXES[suffix]
    known = ", ".join(sorted(SUFFIXES))
    raise PromptFileError(f"{source.path}: unknown prompt file format {suffix or '(no suffix)'!r}: "
                          f"use one of {known}, or set 'format' (jsonl, csv, parquet) on this source")


def _binary_hint(data: bytes) -> str:
    for magic, what in _BINARY_MAGIC.items():
        if data.startswith(magic):
            return f" (it looks like {what})"
    return ""


def _decode(data: bytes, source: PromptSource, origin: str) -> str:
    """The file's text. UTF-8 by default, a byte-order mark (UTF-8/16/32) is honoured, ``encoding``
    overrides both; undecodable UTF-8 bytes are kept as surrogate escapes so each line can be judged."""
    encoding = source.encoding
    if encoding is None:
        for bom, name in _BOMS:
            if data.startswith(bom):
                encoding = name
                break
    if encoding is not None:
        try:
            return data.decode(encoding).removeprefix("\ufeff")
        except UnicodeDecodeError as exc:
            line = data[: exc.start].decode(encoding, errors="replace").count("\n") + 1
            raise PromptFileError(f"{origin}:{line}: not valid {encoding} ({exc.reason} at byte {exc.start}); "
                                  "check the file's encoding or the source's 'encoding'") from None
    hint = _binary_hint(data)
    if hint:
        raise PromptFileError(f"{origin}: not a text file{hint}; set format: parquet for Parquet, "
                              "decompress other files first")
    text = data.decode("utf-8", errors="surrogateescape")
    if text:
        odd = len(_BINARY_CHAR.findall(text))
        if odd / len(text) > BINARY_SHARE:
            raise PromptFileError(
                f"{origin}: not a text file ({odd:,} of {len(text):,} characters are binary or not UTF-8); "
                "prompt files are UTF-8 JSONL or CSV (a UTF-16 file needs its byte-order mark, or set "
                "'encoding'), or Parquet")
    return text


def _utf8_problem(raw: str) -> str | None:
    match = _ESCAPED_BYTE.search(raw)
    if match is None:
        return None
    byte = ord(match.group()) - 0xDC00
    return (f"not valid UTF-8 (byte 0x{byte:02x} at character {match.start() + 1}); if the file is Latin-1 or "
            "Windows-1252, re-save it as UTF-8 or set encoding: cp1252 on this source")


# --------------------------------------------------------------------------- formats

def _jsonl_rows(text: str, source: PromptSource, out: _SourceRows) -> None:
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        problem = _utf8_problem(line)
        if problem:
            out.bad.append(BadRow(out.origin, number, "invalid_utf8", problem, _clip(line)))
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            out.bad.append(BadRow(out.origin, number, "invalid_json",
                                  f"not valid JSON ({exc.msg} at column {exc.colno})", _clip(line)))
            continue
        except (ValueError, RecursionError) as exc:  # e.g. nesting too deep, an integer too long
            out.bad.append(BadRow(out.origin, number, "invalid_json", f"not valid JSON ({exc})", _clip(line)))
            continue
        if not isinstance(record, dict):
            hint = " (a .json file must be JSON Lines: one object per line)" if isinstance(record, list) else ""
            out.bad.append(BadRow(out.origin, number, "not_an_object",
                                  f"expected a JSON object, got {_kind(record)}{hint}", _clip(line)))
            continue
        _accept(out, record, number, line, source)


def _csv_rows(text: str, delimiter: str, source: PromptSource, out: _SourceRows) -> None:
    physical = text.split("\n")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    header: list[str] | None = None
    previous_end = 0
    limit = csv.field_size_limit(1 << 30)  # a long prompt is a warning, not a parser error
    try:
        while True:
            start = previous_end + 1
            try:
                record = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                reason = ("a quoted field opened here is never closed" if "end of data" in str(exc)
                          else f"broken quoting ({exc})")
                raise PromptFileError(f"{out.origin}:{start}: {reason}; every row after it would be misread, "
                                      "so the file is refused (quote fields that contain the delimiter, a "
                                      "quote or a line break, and double quotes inside them)") from None
            previous_end = reader.line_num
            raw = "\n".join(physical[start - 1: previous_end])
            if not record or all(not cell.strip() for cell in record) and len(record) <= 1:
                continue  # a blank line
            if header is None:
                header = record
                _check_header(header, source, out.origin)
                continue
            problem = _utf8_problem(raw)
            if problem:
                out.bad.append(BadRow(out.origin, start, "invalid_utf8", problem, _clip(raw)))
                continue
            if len(record) > len(header):
                out.bad.append(BadRow(out.origin, start, "malformed_csv_row",
                                      f"{len(record)} fields where the header has {len(header)} "
                                      "(an unquoted delimiter?)", _clip(raw)))
                continue
            values = {name: (cell if cell != "" or name == source.column("prompt") else None)
                      for name, cell in zip(header, record)}
            _accept(out, values, start, raw, source)
    finally:
        csv.field_size_limit(limit)
    if header is None:
        raise PromptFileError(f"{out.origin}: no prompts: the file has only blank lines")
    if not out.rows and not out.bad:
        raise PromptFileError(f"{out.origin}: no prompts: the file has a header and no rows")


def _check_header(header: list[str], source: PromptSource, origin: str) -> None:
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise PromptFileError(f"{origin}:1: column(s) {', '.join(map(repr, repeated))} appear more than once in the header")
    problem = _utf8_problem("".join(header))
    if problem:
        raise PromptFileError(f"{origin}:1: the header is {problem}")
    _check_columns(header, source, f"{origin}:1", "in the header ")


def _check_columns(columns: list[str], source: PromptSource, where: str, what: str = "") -> None:
    """A source must have the prompt column or the messages column."""
    prompt, messages = source.column("prompt"), source.column("messages")
    if prompt in columns or messages in columns:
        return
    close = difflib.get_close_matches(prompt, columns, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}? (set columns: {{prompt: {close[0]}}} on this source)" if close else ""
    shown = ", ".join(repr(h) for h in columns[:20])
    raise PromptFileError(f"{where}: no column {prompt!r} or {messages!r} {what}(columns: {shown}){hint}")


def _parquet_rows(path: Path, source: PromptSource, out: _SourceRows) -> None:
    out.unit = "row"
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types; the message is what matters
        raise PromptFileError(f"{out.origin}: cannot read Parquet ({type(exc).__name__}: {exc})") from None
    _check_columns([str(c) for c in frame.columns], source, out.origin)
    for i, record in enumerate(frame.to_dict(orient="records"), start=1):
        _accept(out, record, i, _raw(record), source)


def _raw(record: Mapping) -> str:
    """A row as stored in the quarantine (lists from Parquet and datasets as lists, not numpy arrays)."""
    return json.dumps(record, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v), ensure_ascii=False)


def _dataset_rows(source: PromptSource, out: _SourceRows) -> None:
    """A Hugging Face dataset's rows: a folder saved with ``save_to_disk`` (``load_from_disk``), else a folder of
    data files or a Hub id (``load_dataset``, offline for local folders)."""
    out.unit = "row"
    try:
        import datasets
    except ImportError:  # pragma: no cover - a dependency; a broken install
        raise PromptFileError(f"{out.origin}: reading a dataset needs the `datasets` package") from None
    name, folder = str(source.dataset), Path(str(source.dataset)).expanduser()
    saved = folder.is_dir() and any((folder / f).exists() for f in ("dataset_dict.json", "dataset_info.json"))
    try:
        if saved:
            data = datasets.load_from_disk(str(folder))
            if isinstance(data, datasets.DatasetDict):
                if source.split not in data:
                    raise PromptFileError(f"{out.origin}: no split {source.split!r} in {name} "
                                          f"(splits: {', '.join(data)}); set split on this source")
                data = data[source.split]
        else:
            if not folder.exists() and name.count("/") != 1:
                raise PromptFileError(f"{out.origin}: no such folder, and not a Hub id (owner/name)")
            data = datasets.load_dataset(str(folder) if folder.exists() else name, split=source.split)
    except PromptFileError:
        raise
    except (ValueError, KeyError) as exc:  # an unknown split, no data files
        raise PromptFileError(f"{out.origin}: cannot read the dataset ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - datasets and the Hub client raise many kinds (offline, not found)
        raise PromptFileError(f"{out.origin}: cannot read the dataset ({type(exc).__name__}: {exc}); a Hub id "
                              "needs the network (or the dataset in the local Hugging Face cache)") from None
    _check_columns(list(data.column_names), source, out.origin)
    for i, record in enumerate(data, start=1):
        _accept(out, record, i, _raw(record), source)


# --------------------------------------------------------------------------- sources

def _read(source: PromptSource) -> _SourceRows:
    """Every row of one source, checked; raises only for a file that cannot be read as a whole."""
    if source.dataset is not None:
        out = _SourceRows(source.location, source.on_bad_rows or "fail")
        _dataset_rows(source, out)
        _finish(out, source)
        return out
    path = source.path
    out = _SourceRows(str(path), source.on_bad_rows or "fail")
    if not path.exists():
        raise PromptFileError(f"{out.origin}: prompt file not found")
    if path.is_dir():
        raise PromptFileError(f"{out.origin}: is a folder, not a prompt file (use prompt_folder for a folder)")
    fmt = _format_of(source)
    if fmt == "parquet":
        _parquet_rows(path, source, out)
    else:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise PromptFileError(f"{out.origin}: cannot read ({exc.strerror})") from None
        if not data.strip():
            raise PromptFileError(f"{out.origin}: no prompts: the file is empty"
                                  + (" (only blank lines)" if data else ""))
        text = _decode(data, source, out.origin)
        if fmt == "jsonl":
            _jsonl_rows(text, source, out)
        else:
            _csv_rows(text, "\t" if path.suffix.lower() == ".tsv" else ",", source, out)
    _finish(out, source)
    return out


def _finish(out: _SourceRows, source: PromptSource) -> None:
    """Apply ``limit``, warn about very long prompts, refuse a file with no good row."""
    if not out.rows and not out.bad:
        raise PromptFileError(f"{out.origin}: no prompts: the file has only blank lines")
    if not out.rows:
        raise PromptFileError(_bad_rows_message(out.bad, f"{out.origin}: no usable prompt: every row is bad"))
    if source.limit:
        out.rows, out.lines = out.rows[: source.limit], out.lines[: source.limit]
    long = [(line, len(r["prompt"])) for r, line in zip(out.rows, out.lines) if len(r["prompt"]) > LONG_PROMPT_CHARS]
    if long:
        places = ", ".join(str(line) for line, _ in long[:MAX_LISTED]) + (
            f" and {len(long) - MAX_LISTED} more" if len(long) > MAX_LISTED else "")
        longest = max(n for _, n in long)
        out.warnings.append(
            f"{out.origin}: {len(long)} prompt(s) over {LONG_PROMPT_CHARS:,} characters ({out.unit}s {places}; "
            f"the longest {longest:,} characters, about {longest // 4:,} tokens) are sent whole: they may exceed "
            "a model's context window and cost much")


def _bad_rows_message(bad: list[BadRow], headline: str) -> str:
    lines = [f"{headline}:"]
    lines += [f"  {b.describe()}" for b in bad[:MAX_LISTED]]
    if len(bad) > MAX_LISTED:
        lines.append(f"  and {len(bad) - MAX_LISTED} more")
    return "\n".join(lines)


def _raise_for_bad_rows(bad: list[BadRow]) -> None:
    files = sorted({b.source for b in bad})
    where = files[0] if len(files) == 1 else f"{len(files)} files"
    raise BadRowsError(_bad_rows_message(
        bad, f"{where}: {len(bad)} bad row(s); nothing was read (on_bad_rows: fail). Fix them, or set "
        "on_bad_rows: skip to set bad rows aside and go on with the good ones"), bad)


def read_source(source: PromptSource) -> list[dict]:
    """The good rows of one source in file order (``on_bad_rows: fail`` raises naming every bad row)."""
    out = _read(source)
    if out.bad and out.on_bad_rows == "fail":
        _raise_for_bad_rows(out.bad)
    return out.rows


def _builtin() -> _SourceRows:
    text = resources.files("pref_pipeline").joinpath("data/default_prompts.jsonl").read_text(encoding="utf-8")
    out = _SourceRows(BUILTIN_SOURCE, "fail")
    _jsonl_rows(text, PromptSource(path=Path(BUILTIN_SOURCE)), out)
    return out


def builtin_rows() -> list[dict]:
    """The built-in prompt set (customer service, coding, factual, advice, creative, safety, ambiguous)."""
    return _builtin().rows


def load_prompts(sources: list[PromptSource], max_prompts: int | None = None) -> LoadedPrompts:
    """Read every source (the built-in set when there is none), dropping exact repeats of a prompt.

    Two different prompts under the same id are a bad row (the later one), since every later table
    refers to the id. Bad rows of ``fail`` sources raise ``BadRowsError`` listing them all; those
    of ``skip`` sources come back in ``rejected``.
    """
    parts = [_read(source) for source in sources] if sources else [_builtin()]
    rows, places, owners = [], [], []
    for part in parts:
        rows += part.rows
        places += [(part.origin, line, part.unit) for line in part.lines]
        owners += [part] * len(part.rows)
    frame = pd.DataFrame(rows, columns=PROMPT_COLUMNS)
    # The same text twice is a repeat; a conversation's text is all its turns, so two conversations
    # with the same last turn are not.
    repeated = frame.duplicated(subset=["prompt"], keep="first").to_numpy()

    first_use: dict[str, int] = {}
    clashing = [False] * len(rows)
    for i, row in enumerate(rows):
        if repeated[i]:
            continue
        first = first_use.setdefault(row["prompt_id"], i)
        if first != i:
            origin, line, unit = places[i]
            f_origin, f_line, f_unit = places[first]
            used_by = f"{f_origin}:{f_line}" if f_unit == "line" else f"{f_origin}: row {f_line}"
            owners[i].bad.append(BadRow(origin, line, "duplicate_id",
                                        f"id {row['prompt_id']!r} is already used by {used_by} for a different prompt",
                                        _clip(json.dumps(row, ensure_ascii=False)), unit))
            clashing[i] = True

    failing = [b for part in parts if part.on_bad_rows == "fail" for b in part.bad]
    if failing:
        _raise_for_bad_rows(failing)
    rejected = [b for part in parts for b in part.bad]
    warnings = [w for part in parts for w in part.warnings]
    for part in parts:
        if part.bad:
            warnings.append(f"{part.origin}: set aside {len(part.bad)} bad row(s) (on_bad_rows: skip); "
                            f"{len(part.rows) - sum(b.reason == 'duplicate_id' for b in part.bad)} good row(s) go on")

    duplicates = frame[repeated].copy()
    first_id = frame[~repeated].set_index("prompt")["prompt_id"]
    duplicates["kept_prompt_id"] = duplicates["prompt"].map(first_id)
    kept = frame[~repeated & ~np.array(clashing, dtype=bool)]
    if kept.empty:
        raise PromptFileError(_bad_rows_message(rejected, "no usable prompt in the batch: every row is bad"))
    if max_prompts is not None:
        kept = kept.head(max_prompts)
    return LoadedPrompts(kept.reset_index(drop=True), duplicates.reset_index(drop=True),
                         _rejected_frame(rejected), tuple(warnings))

