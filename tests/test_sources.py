"""Reading prompt files: errors name the file and line, duplicates are reported, ids are stable."""

from __future__ import annotations

import codecs
import gzip
import hashlib
import json
import random
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pref_pipeline.batches import discover_batches
from pref_pipeline.cli import main
from pref_pipeline.config import PromptSource, parse_config
from pref_pipeline.paths import Home
from pref_pipeline.sources import (
    BUILTIN_SOURCE,
    PROMPT_COLUMNS,
    REJECTED_COLUMNS,
    BadRowsError,
    PromptFileError,
    builtin_rows,
    load_prompts,
    prompt_id_for,
    read_source,
)
from pref_pipeline.table_files import connect as connect_tables
from tests.fakes import FakeLLMServer
from tests.helpers import two_generators, write_config_file


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records), encoding="utf-8")
    return path


def source(path: Path, **fields) -> PromptSource:
    return PromptSource(path=path, **fields)


# --------------------------------------------------------------------------- JSONL

def test_jsonl_reads_fields(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [
        {"id": "q1", "prompt": "  What is 2+2?  ", "category": "factual", "reference": "4"},
        {"prompt": "Write a haiku."},
    ])
    rows = read_source(source(path, category="creative"))
    assert rows[0] == {"prompt_id": "q1", "prompt": "What is 2+2?", "category": "factual", "reference": "4",
                       "source": str(path), "messages": None}
    assert rows[1]["prompt_id"] == prompt_id_for("Write a haiku.")
    assert rows[1]["category"] == "creative"  # the source's default category
    assert rows[1]["reference"] is None


def test_jsonl_blank_lines_are_skipped(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "one"}\n\n   \n{"prompt": "two"}\n', encoding="utf-8")
    assert [r["prompt"] for r in read_source(source(path))] == ["one", "two"]


def test_jsonl_bad_line_is_named(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "one"}, {"prompt": "two"}, '{"prompt": "three",', {"prompt": "4"}])
    with pytest.raises(PromptFileError) as err:
        read_source(source(path))
    message = str(err.value)
    assert f"{path}:3" in message
    assert "not valid JSON" in message


def test_jsonl_missing_prompt_names_the_line(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "one"}, {"question": "where is the prompt?"}])
    with pytest.raises(PromptFileError) as err:
        read_source(source(path))
    assert f"{path}:2" in str(err.value)
    assert "'prompt'" in str(err.value)


@pytest.mark.parametrize(("record", "fragment"), [
    ('["a list"]', "expected a JSON object"),
    ({"prompt": 42}, "must be text"),
    ({"prompt": "   "}, "is empty"),
    ({"prompt": None}, "missing field"),
])
def test_jsonl_bad_records(tmp_path, record, fragment):
    path = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "ok"}, record])
    with pytest.raises(PromptFileError) as err:
        read_source(source(path))
    assert f"{path}:2" in str(err.value)
    assert fragment in str(err.value)


def test_custom_prompt_field(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"instruction": "Say hi."}])
    assert read_source(source(path, prompt_field="instruction"))[0]["prompt"] == "Say hi."


def test_limit(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"prompt": f"prompt {i}"} for i in range(5)])
    assert [r["prompt"] for r in read_source(source(path, limit=2))] == ["prompt 0", "prompt 1"]


def test_empty_file_is_an_error(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text("\n", encoding="utf-8")
    with pytest.raises(PromptFileError, match="no prompts"):
        read_source(source(path))


def test_missing_file_is_an_error(tmp_path):
    with pytest.raises(PromptFileError, match="not found"):
        read_source(source(tmp_path / "absent.jsonl"))


# --------------------------------------------------------------------------- CSV and Parquet

def test_csv_reads_rows(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text('id,prompt,category\nc1,"Hello, world?",factual\nc2,Second,\n', encoding="utf-8")
    rows = read_source(source(path))
    assert [(r["prompt_id"], r["prompt"], r["category"]) for r in rows] == [
        ("c1", "Hello, world?", "factual"), ("c2", "Second", "uncategorized")]


def test_csv_empty_prompt_names_the_line(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("id,prompt\nr1,First prompt\nr2,\nr3,Third\n", encoding="utf-8")
    with pytest.raises(PromptFileError) as err:
        read_source(source(path))
    assert f"{path}:3: field 'prompt' is empty" in str(err.value)  # file:line, as for JSONL


def test_csv_missing_column(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("id,question\nr1,What?\n", encoding="utf-8")
    with pytest.raises(PromptFileError, match="no column 'prompt'"):
        read_source(source(path))


def test_tsv(tmp_path):
    path = tmp_path / "p.tsv"
    path.write_text("prompt\tcategory\nA, tab-separated prompt\tcoding\n", encoding="utf-8")
    rows = read_source(source(path))
    assert (rows[0]["prompt"], rows[0]["category"]) == ("A, tab-separated prompt", "coding")


def test_parquet_round_trip(tmp_path):
    path = tmp_path / "p.parquet"
    frame = pd.DataFrame({
        "id": ["a1", "a2", None],
        "prompt": ["First?", "Second?", "Third?"],
        "category": ["coding", None, "advice"],
        "reference": [None, "ref", None],
    })
    frame.to_parquet(path, index=False)
    rows = read_source(source(path))
    assert [r["prompt"] for r in rows] == ["First?", "Second?", "Third?"]
    assert [r["prompt_id"] for r in rows] == ["a1", "a2", prompt_id_for("Third?")]
    assert [r["category"] for r in rows] == ["coding", "uncategorized", "advice"]
    assert [r["reference"] for r in rows] == [None, "ref", None]


def test_parquet_bad_row_is_named(tmp_path):
    path = tmp_path / "p.parquet"
    pd.DataFrame({"prompt": ["fine", None]}).to_parquet(path, index=False)
    with pytest.raises(PromptFileError, match="row 2"):
        read_source(source(path))


def test_unknown_suffix(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("What?\n", encoding="utf-8")
    with pytest.raises(PromptFileError) as err:
        read_source(source(path))
    assert ".txt" in str(err.value)
    assert "format" in str(err.value)


def test_explicit_format_overrides_suffix(tmp_path):
    path = write_jsonl(tmp_path / "prompts.txt", [{"prompt": "What?"}])
    assert read_source(source(path, format="jsonl"))[0]["prompt"] == "What?"


# --------------------------------------------------------------------------- load_prompts

def test_duplicates_across_sources_are_dropped_and_reported(tmp_path):
    first = write_jsonl(tmp_path / "a.jsonl", [{"id": "a1", "prompt": "Shared prompt"}, {"id": "a2", "prompt": "Only in a"}])
    second = write_jsonl(tmp_path / "b.jsonl", [{"id": "b1", "prompt": "  Shared prompt "}, {"id": "b2", "prompt": "Only in b"}])
    loaded = load_prompts([source(first), source(second)])
    assert list(loaded.prompts.columns) == PROMPT_COLUMNS
    assert list(loaded.prompts["prompt_id"]) == ["a1", "a2", "b2"]
    assert len(loaded.duplicates) == 1
    dup = loaded.duplicates.iloc[0]
    assert dup["prompt_id"] == "b1"
    assert dup["kept_prompt_id"] == "a1"
    assert dup["source"] == str(second)


def test_same_id_for_different_prompts_is_an_error(tmp_path):
    first = write_jsonl(tmp_path / "a.jsonl", [{"id": "x1", "prompt": "One thing"}])
    second = write_jsonl(tmp_path / "b.jsonl", [{"id": "x1", "prompt": "Another thing"}])
    with pytest.raises(PromptFileError, match="x1"):
        load_prompts([source(first), source(second)])


def test_max_prompts(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [{"prompt": f"prompt {i}"} for i in range(6)])
    loaded = load_prompts([source(path)], max_prompts=4)
    assert list(loaded.prompts["prompt"]) == [f"prompt {i}" for i in range(4)]
    assert loaded.duplicates.empty


def test_builtin_set():
    loaded = load_prompts([])
    prompts = loaded.prompts
    assert len(prompts) >= 30
    assert loaded.duplicates.empty
    assert prompts["prompt_id"].is_unique
    assert set(prompts["source"]) == {BUILTIN_SOURCE}
    expected = {"customer_service", "coding", "factual", "advice", "creative", "safety", "ambiguous"}
    assert expected <= set(prompts["category"])
    assert len(builtin_rows()) == len(prompts)


def test_prompt_ids_are_stable():
    assert prompt_id_for("What is 2+2?") == prompt_id_for("What is 2+2?")
    assert prompt_id_for("  What is 2+2?\n") == prompt_id_for("What is 2+2?")
    assert prompt_id_for("What is 2+2?") != prompt_id_for("What is 2+3?")
    # Pinned: ids are referenced by every later table, so the scheme must not change silently.
    assert prompt_id_for("What is 2+2?") == "p-" + hashlib.sha256(b"What is 2+2?").hexdigest()[:12]


def test_ids_are_the_same_across_file_formats(tmp_path):
    jsonl = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "Same text"}])
    csv = tmp_path / "p.csv"
    csv.write_text("prompt\nSame text\n", encoding="utf-8")
    assert read_source(source(jsonl))[0]["prompt_id"] == read_source(source(csv))[0]["prompt_id"]


# --------------------------------------------------------------------------- bad input
# Each class of bad prompt file ends in a PromptFileError naming the file and every bad line, or,
# with on_bad_rows: skip, in rows set aside with a reason while the good rows go on.

def write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def error_of(path: Path, **fields) -> str:
    with pytest.raises(PromptFileError) as err:
        load_prompts([source(path, **fields)])
    return str(err.value)


def test_every_bad_line_is_listed_not_only_the_first(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [
        {"prompt": "good one"}, '{"prompt": "broken",', {"question": "no prompt"}, {"prompt": "good two"},
        {"prompt": ""}, {"prompt": 42}, "not json at all",
    ])
    message = error_of(path)
    assert f"{path}: 5 bad row(s); nothing was read (on_bad_rows: fail)" in message
    assert "on_bad_rows: skip" in message  # says how to go on with the good rows
    for line, fragment in [(2, "not valid JSON"), (3, "missing field 'prompt'"), (5, "field 'prompt' is empty"),
                           (6, "field 'prompt' must be text, got a number"), (7, "not valid JSON")]:
        assert f"{path}:{line}: {fragment}" in message
    assert f"{path}:1:" not in message and f"{path}:4:" not in message


def test_bad_lines_are_listed_up_to_a_cap(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "fine"}] + ["{oops"] * 25)
    message = error_of(path)
    assert "25 bad row(s)" in message
    assert f"{path}:21:" in message and f"{path}:22:" not in message  # lines 2..21 shown
    assert "and 5 more" in message


@pytest.mark.parametrize(("record", "fragment"), [
    ({"prompt": "   \t "}, "field 'prompt' is empty (only whitespace)"),
    ({"prompt": ""}, "field 'prompt' is empty"),
    ({"prompt": None}, "missing field 'prompt' (it is null)"),
    ({"prompt": 3.5}, "field 'prompt' must be text, got a number"),
    ({"prompt": ["a", "list"]}, "field 'prompt' must be text, got a list"),
    ({"prompt": {"text": "x"}}, "field 'prompt' must be text, got an object"),
    ({"prompt": True}, "field 'prompt' must be text, got true/false"),
    ({"prompt": "ok", "id": ["x"]}, "field 'id' must be text or a whole number, got a list"),
    ({"prompt": "ok", "id": 1.5}, "field 'id' must be text or a whole number, got a number"),
    ({"prompt": "ok", "id": "  "}, "field 'id' is only whitespace"),
    ({"prompt": "ok", "category": {"a": 1}}, "field 'category' must be text or a number, got an object"),
    ({"promt": "typo"}, "missing field 'prompt' (or 'messages', a conversation) (did you mean 'promt'? set columns: "
                        "{prompt: promt})"),
    ('"just a string"', "expected a JSON object, got text"),
    ('[{"prompt": "in a list"}]', "expected a JSON object, got a list (a .json file must be JSON Lines"),
])
def test_wrong_types_and_empty_values(tmp_path, record, fragment):
    path = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "fine"}, record])
    message = error_of(path)
    assert f"{path}:2: {fragment}" in message


def test_null_and_numeric_ids(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "first", "id": None}, {"prompt": "second", "id": 7},
                                              {"prompt": "third", "id": ""}, {"prompt": "fourth", "id": 8.0}])
    assert list(load_prompts([source(path)]).prompts["prompt_id"]) == [
        prompt_id_for("first"), "7", prompt_id_for("third"), "8"]
    parquet = tmp_path / "p.parquet"
    pd.DataFrame({"id": [1, None, 3], "prompt": ["a", "b", "c"]}).to_parquet(parquet)  # ints with a null: floats
    assert [r["prompt_id"] for r in read_source(source(parquet))] == ["1", prompt_id_for("b"), "3"]


def test_invalid_utf8_names_each_line_and_the_fix(tmp_path):
    data = '{"prompt": "fine"}\n'.encode() + '{"prompt": "caf\u00e9"}\n'.encode("latin-1") \
        + '{"prompt": "ok"}\n'.encode() + '{"prompt": "na\u00efve"}\n'.encode("latin-1")
    path = write_bytes(tmp_path / "p.jsonl", data)
    message = error_of(path)
    assert f"{path}:2: not valid UTF-8 (byte 0xe9 at character 16)" in message
    assert f"{path}:4: not valid UTF-8 (byte 0xef" in message
    assert "encoding: cp1252" in message
    # The fix the message names: the same file read as Windows-1252.
    prompts = load_prompts([source(path, encoding="cp1252")]).prompts
    assert list(prompts["prompt"]) == ["fine", "caf\u00e9", "ok", "na\u00efve"]


def test_unknown_encoding_is_a_config_error():
    with pytest.raises(ValueError, match="unknown encoding 'klingon'"):
        PromptSource(path=Path("p.jsonl"), encoding="klingon")


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32", "utf-8-sig"])
def test_byte_order_marks_are_decoded(tmp_path, encoding):
    text = '{"prompt": "\u00bfQu\u00e9 hora es? \u4f60\u597d \U0001f600"}\n{"prompt": "second"}\n'
    data = text.encode(encoding)
    if encoding == "utf-16-be":
        data = codecs.BOM_UTF16_BE + data
    path = write_bytes(tmp_path / "p.jsonl", data)
    prompts = load_prompts([source(path)]).prompts
    assert list(prompts["prompt"]) == ["\u00bfQu\u00e9 hora es? \u4f60\u597d \U0001f600", "second"]


def test_utf16_csv_with_bom(tmp_path):
    path = write_bytes(tmp_path / "p.csv", "prompt,category\nHello \u00e9t\u00e9,factual\n".encode("utf-16"))
    assert read_source(source(path))[0]["prompt"] == "Hello \u00e9t\u00e9"


@pytest.mark.parametrize(("name", "data", "fragment"), [
    ("garbage.jsonl", bytes(random.Random(7).randrange(256) for _ in range(4096)), "not a text file"),
    ("utf16-without-bom.jsonl", '{"prompt": "hi"}\n'.encode("utf-16-le"), "not a text file"),
    ("actually.jsonl", b"PAR1\x15\x04\x15\x10\x00\x00", "looks like a Parquet file"),
    ("zipped.csv", gzip.compress(b"prompt\nhello\n"), "looks like a gzip file"),
])
def test_binary_files(tmp_path, name, data, fragment):
    path = write_bytes(tmp_path / name, data)
    message = error_of(path)
    assert str(path) in message and fragment in message


def test_a_one_megabyte_prompt_is_accepted_with_a_warning(tmp_path):
    huge = "Summarise this: " + "lorem ipsum " * 90_000  # ~1 MB
    path = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "short"}, {"prompt": huge}])
    loaded = load_prompts([source(path)])
    assert loaded.prompts["prompt"].tolist() == ["short", huge.strip()]
    assert len(loaded.warnings) == 1
    warning = loaded.warnings[0]
    assert f"{path}: 1 prompt(s) over 32,000 characters (lines 2;" in warning
    assert f"{len(huge.strip()):,} characters" in warning and "context window" in warning


def test_duplicate_ids_name_the_file_and_both_lines(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"id": "q1", "prompt": "One"}, {"id": "q2", "prompt": "Two"},
                                              {"id": "q1", "prompt": "Three"}])
    message = error_of(path)
    assert f"{path}:3: id 'q1' is already used by {path}:1 for a different prompt" in message


def test_duplicate_ids_across_files_name_both(tmp_path):
    first = write_jsonl(tmp_path / "a.jsonl", [{"id": "x1", "prompt": "One thing"}])
    second = tmp_path / "b.csv"
    second.write_text("id,prompt\nx2,fine\nx1,Another thing\n", encoding="utf-8")
    with pytest.raises(PromptFileError) as err:
        load_prompts([source(first), source(second)])
    assert f"{second}:3: id 'x1' is already used by {first}:1 for a different prompt" in str(err.value)


@pytest.mark.parametrize(("name", "content", "fragment"), [
    ("empty.jsonl", b"", "no prompts: the file is empty"),
    ("blank.jsonl", b"\n  \n\t\n\n", "no prompts: the file is empty (only blank lines)"),
    ("empty.csv", b"", "no prompts: the file is empty"),
    ("header-only.csv", b"id,prompt\n", "the file has a header and no rows"),
    ("bom-only.jsonl", codecs.BOM_UTF16_LE, "the file has only blank lines"),
])
def test_empty_files(tmp_path, name, content, fragment):
    path = write_bytes(tmp_path / name, content)
    assert fragment in error_of(path)


def test_unknown_format_names_the_key(tmp_path):
    path = tmp_path / "prompts.xlsx"
    path.write_bytes(b"PK\x03\x04")
    message = error_of(path)
    assert f"{path}: unknown prompt file format '.xlsx'" in message and "set 'format'" in message


def test_csv_without_the_prompt_column_suggests_one(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("id,Prompt,category\nr1,What?,x\n", encoding="utf-8")
    message = error_of(path)
    assert f"{path}:1: no column 'prompt' or 'messages' in the header (columns: 'id', 'Prompt', 'category')" in message
    assert "did you mean 'Prompt'?" in message
    assert read_source(source(path, prompt_field="Prompt"))[0]["prompt"] == "What?"


@pytest.mark.parametrize(("content", "line", "fragment"), [
    ('prompt,category\n"Fine",a\n"Never closed,b\nNext,c\nLast,d\n', 3, "a quoted field opened here is never closed"),
    ('prompt,category\nFine,a\n"Quoted"tail,b\nNext,c\n', 3, "broken quoting"),
])
def test_csv_broken_quote_names_the_line(tmp_path, content, line, fragment):
    path = tmp_path / "p.csv"
    path.write_text(content, encoding="utf-8")
    for mode in ("fail", "skip"):  # the rows after a broken quote cannot be told apart: always an error
        message = error_of(path, on_bad_rows=mode)
        assert f"{path}:{line}: {fragment}" in message


def test_csv_multiline_fields_keep_their_first_line_number(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text('prompt,category\n"Line one\nline two",a\n,b\n"x,y",c,extra\n', encoding="utf-8")
    message = error_of(path)
    assert f"{path}:4: field 'prompt' is empty" in message
    assert f"{path}:5: 3 fields where the header has 2" in message


@pytest.mark.parametrize(("record", "char"), [
    ({"prompt": "nul \u0000 inside"}, "U+0000"),
    ({"prompt": "bell \u0007"}, "U+0007"),
    ({"prompt": "escape \u001b[31m red"}, "U+001B"),
    ({"prompt": "del \u007f"}, "U+007F"),
    ({"prompt": "c1 \u0085"}, "U+0085"),
    ({"prompt": "ok", "reference": "nul \u0000"}, "U+0000"),
])
def test_control_characters_are_refused(tmp_path, record, char):
    path = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "fine"}, record])
    message = error_of(path)
    assert f"{path}:2:" in message and f"a control character {char}" in message


def test_lone_surrogates_are_refused(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "fine"}, '{"prompt": "half a pair \\ud83d"}'])
    assert f"{path}:2: field 'prompt' holds a lone surrogate (not valid Unicode) U+D83D" in error_of(path)


def test_raw_control_bytes_in_a_jsonl_line_are_invalid_json(tmp_path):
    path = write_bytes(tmp_path / "p.jsonl", b'{"prompt": "fine"}\n{"prompt": "raw \x00 nul"}\n')
    assert f"{path}:2: not valid JSON (Invalid control character" in error_of(path)


def test_tabs_newlines_and_unicode_are_kept(tmp_path):
    text = "Line one\n\tindented\r\nwith \u00e9, \u4e2d\u6587, \U0001f680 and a zero-width\u200bjoiner"
    path = write_jsonl(tmp_path / "p.jsonl", [{"prompt": text}])
    assert read_source(source(path))[0]["prompt"] == text


SQL_LIKE = [
    "'; DROP TABLE prompts; --",
    "Robert'); DELETE FROM candidates WHERE 1=1; --",
    'SELECT * FROM pref.prompts WHERE prompt_id = "p1" OR 1=1',
    "{{ config.secret }} ${HOME} $(rm -rf /) `id` %s %(name)s {0}",
    "<script>alert('x')</script>",
]


def test_sql_looking_text_is_kept_verbatim(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"prompt": text, "reference": text, "category": "sql"} for text in SQL_LIKE])
    loaded = load_prompts([source(path)])
    assert loaded.prompts["prompt"].tolist() == SQL_LIKE
    assert loaded.prompts["reference"].tolist() == SQL_LIKE
    csv_path = tmp_path / "p.csv"
    pd.DataFrame({"prompt": SQL_LIKE}).to_csv(csv_path, index=False)
    assert [r["prompt"] for r in read_source(source(csv_path))] == SQL_LIKE


def test_parquet_wrong_types_name_their_rows(tmp_path):
    path = tmp_path / "p.parquet"
    pd.DataFrame({"prompt": [1, 2, 3]}).to_parquet(path, index=False)
    message = error_of(path)
    assert f"{path}: row 1: field 'prompt' must be text, got a number" in message
    assert f"{path}: row 3:" in message


def test_unreadable_parquet(tmp_path):
    path = write_bytes(tmp_path / "p.parquet", b"not parquet at all")
    assert f"{path}: cannot read Parquet" in error_of(path)


# --------------------------------------------------------------------------- on_bad_rows: skip

def test_skip_sets_bad_rows_aside_and_the_good_rows_go_on(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [
        {"id": "g1", "prompt": "good one"}, '{"prompt": "broken",', {"prompt": "   "},
        {"id": "g1", "prompt": "a different prompt"}, {"id": "g2", "prompt": "good two"},
    ])
    loaded = load_prompts([source(path, on_bad_rows="skip")])
    assert loaded.prompts["prompt_id"].tolist() == ["g1", "g2"]
    rejected = loaded.rejected
    assert list(rejected.columns) == REJECTED_COLUMNS
    assert rejected["source"].tolist() == [str(path)] * 3
    assert rejected["line"].tolist() == [2, 3, 4]
    assert rejected["reason"].tolist() == ["invalid_json", "empty_prompt", "duplicate_id"]
    assert rejected["raw"].iloc[0] == '{"prompt": "broken",'
    assert "already used by" in rejected["detail"].iloc[2]
    assert any("set aside 3 bad row(s)" in w for w in loaded.warnings)


def test_skip_keeps_undecodable_bytes_readable_in_raw(tmp_path):
    data = b'{"prompt": "fine"}\n' + '{"prompt": "caf\u00e9"}\n'.encode("latin-1")
    path = write_bytes(tmp_path / "p.jsonl", data)
    loaded = load_prompts([source(path, on_bad_rows="skip")])
    assert loaded.prompts["prompt"].tolist() == ["fine"]
    assert loaded.rejected["reason"].tolist() == ["invalid_utf8"]
    assert loaded.rejected["raw"].iloc[0] == '{"prompt": "caf\\xe9"}'
    loaded.rejected["raw"].iloc[0].encode("utf-8")  # storable


def test_skip_clips_a_long_raw_row(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "fine"}, '{"prompt": "' + "x" * 50_000])
    raw = load_prompts([source(path, on_bad_rows="skip")]).rejected["raw"].iloc[0]
    assert raw.startswith('{"prompt": "xxx') and raw.endswith("more characters]") and len(raw) < 2_100


def test_skip_with_no_good_row_is_still_an_error(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", ["{", {"prompt": ""}])
    message = error_of(path, on_bad_rows="skip")
    assert "no usable prompt: every row is bad" in message and f"{path}:1:" in message and f"{path}:2:" in message


def test_fail_and_skip_sources_in_one_batch(tmp_path):
    strict = write_jsonl(tmp_path / "a.jsonl", [{"prompt": "a good"}])
    lenient = write_jsonl(tmp_path / "b.jsonl", [{"prompt": "b good"}, "{bad"])
    loaded = load_prompts([source(strict, on_bad_rows="fail"), source(lenient, on_bad_rows="skip")])
    assert loaded.prompts["prompt"].tolist() == ["a good", "b good"]
    assert loaded.rejected["source"].tolist() == [str(lenient)]
    broken = write_jsonl(tmp_path / "c.jsonl", [{"prompt": "c good"}, "{bad"])
    with pytest.raises(BadRowsError) as err:
        load_prompts([source(broken), source(lenient, on_bad_rows="skip")])
    assert [(b.source, b.line) for b in err.value.bad_rows] == [(str(broken), 2)]  # only the failing source's


def test_no_bad_rows_gives_an_empty_rejected_frame(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "fine"}])
    loaded = load_prompts([source(path, on_bad_rows="skip")])
    assert loaded.rejected.empty and list(loaded.rejected.columns) == REJECTED_COLUMNS
    assert loaded.warnings == ()


def test_top_level_on_bad_rows_is_the_default_of_every_source(tmp_path):
    folder = tmp_path / "incoming"
    folder.mkdir()
    write_jsonl(folder / "week.jsonl", [{"prompt": "fine"}, "{bad"])
    listed = write_jsonl(tmp_path / "listed.jsonl", [{"prompt": "fine too"}, "{bad"])
    strict = write_jsonl(tmp_path / "strict.jsonl", [{"prompt": "x"}])
    config = parse_config({"on_bad_rows": "skip", "prompt_folder": str(folder),
                           "prompts": [{"path": str(listed)}, {"path": str(strict), "on_bad_rows": "fail"}]})
    batches = discover_batches(config)
    assert {b: [s.on_bad_rows for s in sources] for b, sources in batches.items()} == {
        "listed": ["skip"], "strict": ["fail"], "week": ["skip"]}
    assert len(load_prompts(batches["week"]).rejected) == 1
    assert parse_config({}).on_bad_rows == "fail"  # the default: nothing is spent on a partly wrong file


# --------------------------------------------------------------------------- never a bare traceback

@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=600) | st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")),
       suffix=st.sampled_from([".jsonl", ".csv", ".tsv"]), mode=st.sampled_from(["fail", "skip"]))
def test_any_bytes_end_in_rows_or_a_prompt_file_error(tmp_path, data, suffix, mode):
    path = write_bytes(tmp_path / f"fuzz{suffix}", data)
    try:
        loaded = load_prompts([source(path, on_bad_rows=mode)])
    except PromptFileError as exc:
        assert str(path) in str(exc)
        return
    for text in loaded.prompts["prompt"]:
        text.encode("utf-8")  # everything accepted can be stored and sent
        assert text.strip() == text and text
    assert loaded.prompts["prompt_id"].is_unique


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=st.lists(st.dictionaries(st.sampled_from(["prompt", "id", "category", "reference", "other"]),
                                        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
                                        | st.lists(st.integers(), max_size=2), max_size=5), min_size=1, max_size=8))
def test_any_json_records_end_in_rows_or_a_prompt_file_error(tmp_path, records):
    path = tmp_path / "fuzz.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    for mode in ("fail", "skip"):
        try:
            loaded = load_prompts([source(path, on_bad_rows=mode)])
        except PromptFileError:
            continue
        assert len(loaded.prompts) + len(loaded.duplicates) + len(loaded.rejected) == len(records)


# --------------------------------------------------------------------------- through the CLI

def test_run_with_skip_stores_the_good_rows_verbatim(home, tmp_path, capsys):
    """A partly bad file under on_bad_rows: skip: the run goes on with the good rows, SQL-looking text
    arrives in DuckDB exactly as written, and nothing of the bad rows is sent."""
    prompts = tmp_path / "mixed.jsonl"
    good = [*SQL_LIKE[:3], "Quotes \" ' ` and a\nnewline, \u00e9\u00e8 \U0001f600"]
    write_jsonl(prompts, [{"id": f"g{i}", "prompt": text} for i, text in enumerate(good)]
                + ['{"prompt": "cut', {"prompt": "nul \u0000"}, {"prompt": 12}])
    with FakeLLMServer() as server:
        config = write_config_file(tmp_path / "p.yaml", [prompts], server.openai_base_url, on_bad_rows="skip",
                                   generators=two_generators((None, 0.9)), judges=[{"model": "openai:judge"}])
        assert main(["run", "--config", str(config)]) == 0, capsys.readouterr().err
        sent = [r["body"]["messages"][-1]["content"] for r in server.requests if r["path"].endswith("/chat/completions")]
    assert "set aside 3 bad row(s)" in capsys.readouterr().err  # the preflight's note
    with connect_tables(Home.from_env()) as con:
        stored = [row[0] for row in con.execute("SELECT prompt FROM pref.prompts ORDER BY prompt_id").fetchall()]
    assert stored == good
    assert not any("nul \u0000" in text or text == "12" for text in sent)
