"""Bounded concurrent calls that never lose a failure, and the dataset export."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from pref_pipeline.export import JSONL_NAME, PARQUET_NAME, export_pairs
from pref_pipeline.runner import Outcome, gather_bounded

# --------------------------------------------------------------------------- gather_bounded


def test_keeps_input_order_even_when_calls_finish_out_of_order():
    async def call(i: int) -> str:
        await asyncio.sleep(0.001 * (10 - i))  # later items finish first
        return f"result {i}"

    outcomes = asyncio.run(gather_bounded(list(range(10)), call, max_concurrency=10))
    assert [o.value for o in outcomes] == [f"result {i}" for i in range(10)]
    assert all(o.ok and o.error is None for o in outcomes)


def test_exception_is_recorded_as_an_outcome_error():
    async def call(i: int) -> int:
        await asyncio.sleep(0)
        if i % 3 == 1:
            raise ValueError(f"bad item {i}")
        return i * 10

    outcomes = asyncio.run(gather_bounded(list(range(6)), call, max_concurrency=2))
    assert len(outcomes) == 6
    assert [o.value for o in outcomes] == [0, None, 20, 30, None, 50]
    assert [o.ok for o in outcomes] == [True, False, True, True, False, True]
    assert outcomes[1].error == "ValueError: bad item 1"
    assert outcomes[4].error == "ValueError: bad item 4"
    assert outcomes[0] == Outcome(0, None)


@pytest.mark.parametrize(("max_concurrency", "n_items"), [(1, 6), (3, 20), (5, 5), (8, 3)])
def test_never_exceeds_max_concurrency(max_concurrency, n_items):
    in_flight = peak = 0

    async def call(i: int) -> int:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            await asyncio.sleep(0.005)
            if i == 2:
                raise RuntimeError("fails while holding a slot")
            return i
        finally:
            in_flight -= 1

    outcomes = asyncio.run(gather_bounded(list(range(n_items)), call, max_concurrency=max_concurrency))
    assert peak == min(max_concurrency, n_items)  # bounded, and the bound is actually used
    assert in_flight == 0
    assert len(outcomes) == n_items
    if n_items > 2:
        assert outcomes[2].error == "RuntimeError: fails while holding a slot"


def test_empty_input():
    async def call(item):  # pragma: no cover - never called
        raise AssertionError

    assert asyncio.run(gather_bounded([], call, max_concurrency=4)) == []


def test_logs_progress(caplog):
    async def call(i: int) -> int:
        if i == 0:
            raise KeyError("x")
        return i

    with caplog.at_level(logging.INFO, logger="pref_pipeline"):
        asyncio.run(gather_bounded(list(range(4)), call, max_concurrency=2, label="judge test"))
    assert any("judge test: 4/4 done, 1 failed" in r.getMessage() for r in caplog.records)


# --------------------------------------------------------------------------- export_pairs

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def pairs_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "pair_id": ["pair-1", "pair-2", "pair-3"],
        "prompt": ["What causes tides?", "Écris un haïku ✨", 'Quote "this"\nand a newline'],
        "chosen": ["The Moon's gravity.", "Vieil étang", "ok"],
        "rejected": ["Wind.", "Old pond", "no"],
        "generation_method": ["llm_as_judge"] * 3,
        "judge_model_id": ["gpt-4o", "gpt-4o", "claude-x+gpt-4o"],
        "criteria": ["helpfulness_and_clarity"] * 3,
        "confidence": [0.9, None, 0.75],
        "judged_at": [T0, T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)],
    })


def test_export_writes_jsonl_and_parquet(tmp_path):
    pairs = pairs_frame()
    paths = export_pairs(pairs, tmp_path / "exports")
    assert paths == {"jsonl": tmp_path / "exports" / JSONL_NAME, "parquet": tmp_path / "exports" / PARQUET_NAME}

    lines = paths["jsonl"].read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(pairs)
    records = [json.loads(line) for line in lines]
    for record, (_, row) in zip(records, pairs.iterrows()):
        assert list(record) == list(pairs.columns)  # field order kept
        for field in ("pair_id", "prompt", "chosen", "rejected", "generation_method", "judge_model_id", "criteria"):
            assert record[field] == row[field]
        assert pd.Timestamp(record["judged_at"]) == row["judged_at"]  # ISO-8601 string
    assert records[0]["confidence"] == 0.9
    assert records[1]["confidence"] is None
    assert "Écris un haïku ✨" in paths["jsonl"].read_text(encoding="utf-8")  # not \u-escaped

    back = pd.read_parquet(paths["parquet"])
    pd.testing.assert_frame_equal(back, pairs, check_dtype=False)
    assert back["judged_at"].dt.tz is not None


def test_export_leaves_no_temporary_files_and_replaces_previous(tmp_path):
    folder = tmp_path / "exports"
    export_pairs(pairs_frame(), folder)
    smaller = pairs_frame().head(1)
    export_pairs(smaller, folder)
    assert sorted(p.name for p in folder.iterdir()) == sorted([JSONL_NAME, PARQUET_NAME])
    assert len((folder / JSONL_NAME).read_text(encoding="utf-8").splitlines()) == 1
    pd.testing.assert_frame_equal(pd.read_parquet(folder / PARQUET_NAME), smaller, check_dtype=False)


def test_failed_parquet_write_keeps_previous_parquet(tmp_path):
    folder = tmp_path / "exports"
    export_pairs(pairs_frame(), folder)
    before = (folder / PARQUET_NAME).read_bytes()
    broken = pd.DataFrame({"pair_id": ["p"], "mixed": [object()]})  # pyarrow cannot store an arbitrary object
    with pytest.raises(Exception):  # noqa: B017 (whatever pyarrow raises: the point is the file left behind)
        export_pairs(broken, folder)
    assert (folder / PARQUET_NAME).read_bytes() == before
    assert not [p for p in folder.iterdir() if ".tmp-" in p.name]


def test_export_of_no_pairs(tmp_path):
    empty = pairs_frame().head(0)
    paths = export_pairs(empty, tmp_path)
    assert paths["jsonl"].read_text(encoding="utf-8").strip() == ""
    assert len(pd.read_parquet(paths["parquet"])) == 0
