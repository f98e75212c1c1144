"""Batch mode: OpenAI's Batch API and Anthropic's Message Batches, through the real SDKs, against the fake.

Submit, poll, collect; cached answers are not resubmitted; a pending batch survives a restart (its id
is on disk under PREF_PIPELINE_HOME and a new process picks it up); batches split by the size limits;
the judge's parse retries become a second, smaller batch.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from pref_pipeline.config import PromptSource, parse_config
from pref_pipeline.paths import Home
from pref_pipeline.providers.base import BatchLimits
from pref_pipeline.providers.client import PROVIDER_BATCH_FOLDER, ProviderBatchStore, split_provider_batches
from pref_pipeline.sources import load_prompts
from tests.fakes import FakeLLMServer, default_judge
from tests.helpers import ROOT, generate, judge

UNUSED_URL = "http://127.0.0.1:9/v1"
PROTOCOLS = ["openai", "anthropic"]


def url(server: FakeLLMServer, protocol: str) -> str:
    return server.openai_base_url if protocol == "openai" else server.anthropic_base_url


def write_prompts(tmp_path: Path, n: int) -> Path:
    path = tmp_path / f"prompts{n}.jsonl"
    path.write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"Batch question {i}?"}) + "\n" for i in range(n)))
    return path


def prompts(path: Path) -> pd.DataFrame:
    return load_prompts([PromptSource(path=path)]).prompts


def batch_config(protocol: str, base_url: str, *, judge_batch: bool = False, **extra) -> dict:
    gen = {"model": f"{protocol}:gen", "base_url": base_url, "batch": True, "batch_poll_s": 0.05}
    gen2 = {**gen, "label": "second", "system_prompt": "Be brief."}
    judge = {"model": f"{protocol}:judge", "base_url": base_url, "batch": judge_batch, "batch_poll_s": 0.05}
    return {"generators": [gen, gen2], "candidates_per_prompt": 2, "judges": [judge],
            "prices": {f"{protocol}:gen": {"input_per_mtok": 2.0, "output_per_mtok": 4.0}}, **extra}


def creates(server: FakeLLMServer) -> int:
    return sum(1 for method, path in server.batch_calls if method == "POST" and path.endswith("batches"))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_batch_submit_poll_collect_then_cached(home, tmp_path, protocol):
    path = write_prompts(tmp_path, 3)
    with FakeLLMServer(batch_polls=2) as server:
        config = parse_config(batch_config(protocol, url(server, protocol)))
        generated = generate(prompts(path), config)
        frame = generated.candidates
        assert frame["error"].isna().all() and (frame["text"].str.len() > 0).all()
        assert server.requests == []  # nothing went through the live endpoint
        assert creates(server) == 2 and len(server.batch_requests) == 6  # one batch per generator
        if protocol == "openai":
            assert ("POST", "/v1/files") in server.batch_calls
            assert any(p.endswith("/content") for _, p in server.batch_calls)
            line = server.batch_requests[0]["body"]
            assert line["model"] == "gen" and isinstance(line["seed"], int)
        else:
            assert any(p.endswith("/results") for _, p in server.batch_calls)
            assert {r["body"]["max_tokens"] for r in server.batch_requests} == {256}
        polls = sum(1 for m, p in server.batch_calls if m == "GET" and p.split("/")[-1].startswith(("batch_", "msgbatch_")))
        assert polls >= 2 * 3  # per batch: 2 "in progress" answers, then completed

        usage = generated.usage
        assert usage["batch_calls"] == 6 and usage["api_calls"] == 0
        expected = (frame["input_tokens"].sum() * 2.0 + frame["output_tokens"].sum() * 4.0) / 1e6 / 2  # half price
        assert usage["cost_usd"] == pytest.approx(expected)
        jobs = ProviderBatchStore(Home.from_env().root / PROVIDER_BATCH_FOLDER).all()
        assert [(j["status"], j["requests"]) for j in jobs] == [("collected", 3)] * 2

        server.reset()
        again_run = generate(prompts(path), config)
        again = again_run.candidates
        assert server.batch_calls == [] and server.requests == []  # cached answers are not resubmitted
        assert again["text"].tolist() == frame["text"].tolist()
        assert again_run.usage["cached_calls"] == 6


def test_only_uncached_requests_are_submitted(home, tmp_path):
    with FakeLLMServer(batch_polls=0) as server:
        config = parse_config(batch_config("openai", server.openai_base_url))
        generate(prompts(write_prompts(tmp_path, 2)), config)
        first = {r["custom_id"] for r in server.batch_requests}
        server.reset()
        frame = generate(prompts(write_prompts(tmp_path, 5)), config).candidates  # 2 old prompts + 3 new
        assert frame["error"].isna().all()
        assert len(server.batch_requests) == 6 and not first & {r["custom_id"] for r in server.batch_requests}


RESUMED_RUN = """
import json, sys
from pref_pipeline.config import parse_config, PromptSource
from pref_pipeline.generation import generate_candidates
from pref_pipeline.sources import load_prompts
from pref_pipeline.paths import Home
from pref_pipeline.providers.client import CallSettings
generate_candidates(load_prompts([PromptSource(path=sys.argv[2])]).prompts, parse_config(json.loads(sys.argv[1])),
                    CallSettings.under(Home.from_env()))
print("finished")
"""


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_pending_batch_survives_a_restart(home, tmp_path, protocol):
    """A process submits and is killed while polling; a new process resumes that batch, not a new one."""
    path = write_prompts(tmp_path, 3)
    with FakeLLMServer(batch_polls=10**6) as server:  # never completes while the first process polls
        config = batch_config(protocol, url(server, protocol))
        proc = subprocess.Popen([sys.executable, "-c", RESUMED_RUN, json.dumps(config), str(path)], cwd=ROOT,
                                env={**os.environ, "PREF_PIPELINE_HOME": str(home)},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        store = ProviderBatchStore(Home.from_env().root / PROVIDER_BATCH_FOLDER)
        deadline = time.monotonic() + 60
        while not (len(store.all()) == 2 and len(server.batch_calls) >= 8) and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate()
        assert b"finished" not in out, err.decode()[-2000:]
        assert [(j["status"], j["requests"]) for j in store.all()] == [("pending", 3)] * 2
        assert creates(server) == 2

        server.batch_polls = 0  # the provider finishes the batch while nobody watches
        frame = generate(prompts(path), parse_config(config)).candidates
        assert frame["error"].isna().all() and len(frame) == 6
        assert creates(server) == 2  # picked up, not resubmitted
        assert server.requests == []
        assert {(j["status"], j["final_status"]) for j in store.all()} <= {("collected", "completed"),
                                                                            ("collected", "ended")}


def test_batches_are_split_by_the_api_limits(home, tmp_path, monkeypatch):
    from pref_pipeline.providers.openai_provider import OpenAIProvider

    monkeypatch.setattr(OpenAIProvider, "batch_limits", BatchLimits(max_requests=4, max_bytes=10**9))
    with FakeLLMServer(batch_polls=0) as server:
        frame = generate(prompts(write_prompts(tmp_path, 5)),
                         parse_config(batch_config("openai", server.openai_base_url))).candidates
        assert frame["error"].isna().all()
        assert creates(server) == 4  # 5 requests per generator, at most 4 per batch
        assert sorted(len(b["items"]) for b in server._batches.values()) == [1, 1, 4, 4]


def test_split_batches_respects_count_and_bytes():
    lines = [(f"k{i}", {"custom_id": f"k{i}", "body": "x" * 90}) for i in range(10)]
    size = len(json.dumps(lines[0][1]).encode()) + 1
    assert [len(c) for c in split_provider_batches(lines, BatchLimits(3, 10**9))] == [3, 3, 3, 1]
    assert [len(c) for c in split_provider_batches(lines, BatchLimits(100, size * 4))] == [4, 4, 2]
    assert [k for chunk in split_provider_batches(lines, BatchLimits(3, size * 2)) for k, _ in chunk] == [k for k, _ in lines]


def test_failed_requests_in_a_batch_are_error_rows(home, tmp_path, monkeypatch):
    from pref_pipeline.providers.openai_provider import OpenAIProvider

    original = OpenAIProvider.batch_line

    def broken_for_question_1(self, custom_id, request):
        line = original(self, custom_id, request)
        if "question 1?" in request.user:
            del line["body"]["messages"]  # the server rejects this one request
        return line

    monkeypatch.setattr(OpenAIProvider, "batch_line", broken_for_question_1)
    with FakeLLMServer(batch_polls=0) as server:
        generated = generate(prompts(write_prompts(tmp_path, 3)),
                             parse_config(batch_config("openai", server.openai_base_url, max_failure_rate=1.0)))
        frame = generated.candidates
    failed = frame[frame["error"].notna()]
    assert set(failed["prompt_id"]) == {"p1"} and len(failed) == 2
    assert failed["error"].str.contains("HTTP 400: missing required field").all()
    assert generated.usage["failed_calls"] == 2


def test_judge_parse_retries_run_as_a_second_smaller_batch(home, tmp_path):
    seen: set[str] = set()

    def garbage_first_time_for_half(info):
        key = info.body["messages"][-1]["content"]
        if key not in seen and len(seen) % 2 == 0:
            seen.add(key)
            return "I cannot decide."
        seen.add(key)
        return default_judge(info)

    with FakeLLMServer(batch_polls=0, judge_fn=garbage_first_time_for_half) as server:
        config = parse_config(batch_config("anthropic", server.anthropic_base_url, judge_batch=True))
        prompt_frame = prompts(write_prompts(tmp_path, 3))
        candidates = generate(prompt_frame, config).candidates
        server.reset()
        judged = judge(prompt_frame, candidates, config).judgments
        sizes = [len(b["items"]) for b in server._batches.values() if b["items"][0]["body"]["model"] == "judge"]
    assert creates(server) == 2 and sizes[0] == 6 and 0 < sizes[1] < 6  # round 2: only the unparseable ones
    assert (judged["parse_status"] == "ok").all()
    retried = judged[judged["attempts"] == 2]
    assert len(retried) == sizes[1]
    assert all(json.loads(f) == ["I cannot decide."] for f in retried["failed_outputs"])
