"""Reading prompt files: errors name the file and line, duplicates are reported, ids are stable."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

from pref_pipeline.config import PromptSource
from pref_pipeline.sources import (
    BUILTIN_SOURCE,
    PROMPT_COLUMNS,
    PromptFileError,
    builtin_rows,
    load_prompts,
    prompt_id_for,
    read_source,
)


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
                       "source": str(path)}
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
    assert "line 3" in str(err.value)
    assert str(path) in str(err.value)


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
