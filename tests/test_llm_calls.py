"""LLM calls at full speed, within budget, cached: the real SDKs over real HTTP against the fake server.

Covers 429 + retry-after, 5xx, timeouts, a server that dies mid-run, the rpm/tpm limiters, the
response cache (hits, misses, a killed run resuming), cost accounting and the asset metadata.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from pref_pipeline.accounting import UsageLedger, price_table, usage_metadata
from pref_pipeline.providers.cache import ResponseCache
from pref_pipeline.config import parse_config
from pref_pipeline.generation import TooManyFailures
from pref_pipeline.paths import Home
from pref_pipeline.providers.client import Budget, CallSession, retry_after_seconds
from pref_pipeline.sources import load_prompts
from tests.fakes import FakeLLMServer
from tests.helpers import ROOT, calls, generate, judge

UNUSED_URL = "http://127.0.0.1:9/v1"  # for config slots a test does not call


def config_with(generator: dict, **extra):
    return parse_config({"generators": [generator], "judges": [{"model": "openai:judge", "base_url": UNUSED_URL}],
                         **extra})


def base_url(server: FakeLLMServer, protocol: str) -> str:
    return server.openai_base_url if protocol == "openai" else server.anthropic_base_url


def complete(config, texts: list[str], spec=None):
    """Run ``complete_many`` for the config's first generator; returns (outcomes, usage summary, seconds)."""
    async def go():
        async with CallSession(config, calls()) as session:
            client = session.client(spec or config.generators[0])
            started = time.perf_counter()
            outcomes = await client.complete_many([client.request(t, seed=i) for i, t in enumerate(texts)])
            return outcomes, time.perf_counter() - started, session
    outcomes, seconds, session = asyncio.run(go())
    return outcomes, session.ledger.summary(), seconds


def prompts_frame(n: int, tmp_path: Path) -> pd.DataFrame:
    path = tmp_path / f"prompts{n}.jsonl"
    path.write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"Question number {i}: why?"}) + "\n"
                            for i in range(n)))
    from pref_pipeline.config import PromptSource
    return load_prompts([PromptSource(path=path)]).prompts


# --------------------------------------------------------------------------- retries

@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
def test_injected_429_waits_the_retry_after_the_server_asks_for(home, protocol):
    with FakeLLMServer(fail_plan=[429], retry_after_s=1.5) as server:
        config = config_with({"model": f"{protocol}:gen", "base_url": base_url(server, protocol), "max_retries": 2})
        [outcome], usage, seconds = complete(config, ["hello"])
        assert outcome.ok, outcome.error
        assert len(server.requests) == 2
    assert seconds >= 1.45  # the SDK slept retry-after (1.5 s), not its 0.5 s default backoff
    assert usage["calls"] == 1 and usage["failed_calls"] == 0


def test_rate_limit_429_from_the_server_budget_is_waited_out(home):
    """The server's own limit (2 per 2 s window): the third call gets 429 + retry-after and then succeeds."""
    with FakeLLMServer(rpm_limit=2, rate_window_s=2) as server:
        config = config_with({"model": "openai:gen", "base_url": server.openai_base_url, "max_retries": 3})
        outcomes, _, seconds = complete(config, ["a", "b", "c"])
        assert all(o.ok for o in outcomes)
        assert server.rate_limited >= 1
    assert seconds >= 1.0  # retry-after is whole seconds, at least 1


@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
def test_a_429_pauses_every_new_request_of_the_model(home, protocol, caplog):
    """One request at a time and no SDK retry: after the 429, the next request still waits retry-after."""
    with FakeLLMServer(fail_plan=[429], retry_after_s=1.5) as server:
        config = config_with({"model": f"{protocol}:gen", "base_url": base_url(server, protocol), "max_retries": 0,
                              "max_concurrency": 1})
        with caplog.at_level("WARNING", logger="pref_pipeline"):
            [limited, later], usage, _ = complete(config, ["first", "second"])
        first_at, second_at = (r["at"] for r in server.requests)
    assert not limited.ok and "HTTP 429" in limited.error
    assert later.ok
    assert second_at - first_at >= 1.45  # without the pause it would start the moment the slot freed
    assert usage["rate_limited"] == 1 and usage["by_model"][f"{protocol}:gen"]["rate_limited"] == 1
    assert "HTTP 429 (rate limited); new requests wait 1.5 s" in caplog.text


def test_429s_retried_by_the_sdk_are_counted(home):
    with FakeLLMServer(fail_plan=[429, 429], retry_after_s=0.2) as server:
        config = config_with({"model": "openai:gen", "base_url": server.openai_base_url, "max_retries": 3})
        [outcome], usage, _ = complete(config, ["hello"])
        assert outcome.ok and len(server.requests) == 3
    assert (usage["calls"], usage["failed_calls"], usage["rate_limited"]) == (1, 0, 2)


@pytest.mark.parametrize("headers, seconds", [
    ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
    ({"retry-after": "2"}, 2.0),
    ({"retry-after": "0.25"}, 0.25),
    ({"retry-after": "-3"}, 0.0),
    ({"retry-after": "soon"}, None),
    ({}, None),
])
def test_retry_after_seconds(headers, seconds):
    assert retry_after_seconds(headers) == seconds


def test_retry_after_as_an_http_date():
    from email.utils import format_datetime
    from datetime import datetime, timedelta, timezone
    when = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    assert 28 <= retry_after_seconds({"retry-after": when}) <= 30


@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
def test_5xx_are_retried_by_the_sdk_then_recorded_and_not_cached(home, protocol):
    with FakeLLMServer(fail_plan=[500, 503]) as server:
        config = config_with({"model": f"{protocol}:gen", "base_url": base_url(server, protocol), "max_retries": 2})
        [outcome], _, _ = complete(config, ["q"])
        assert outcome.ok and len(server.requests) == 3

        server.reset()
        server.fail_plan = [503]
        config = config_with({"model": f"{protocol}:gen", "base_url": base_url(server, protocol), "max_retries": 0})
        [failed], usage, _ = complete(config, ["another question"])
        assert not failed.ok and "HTTP 503" in failed.error
        assert usage["failed_calls"] == 1 and usage["calls"] == 0
        [again], _, _ = complete(config, ["another question"])  # an error is not an answer: asked again
        assert again.ok and len(server.requests) == 2


def test_timeouts_are_retried_then_recorded(home):
    with FakeLLMServer(fail_plan=["timeout"]) as server:
        config = config_with({"model": "openai:gen", "base_url": server.openai_base_url, "timeout_s": 0.3,
                              "max_retries": 1})
        [outcome], _, _ = complete(config, ["q"])
        assert outcome.ok and len(server.requests) == 2
        server.fail_plan = ["timeout"]
        config = config_with({"model": "anthropic:gen", "base_url": server.anthropic_base_url, "timeout_s": 0.3,
                              "max_retries": 0})
        [failed], _, _ = complete(config, ["q"])
        assert not failed.ok and "Timeout" in failed.error


def test_server_that_dies_mid_run_leaves_error_rows_not_gaps(home, tmp_path):
    prompts = prompts_frame(30, tmp_path)
    server = FakeLLMServer(latency_s=0.1).start()
    generator = {"model": "openai:gen", "base_url": server.openai_base_url, "max_concurrency": 8, "max_retries": 1,
                 "timeout_s": 5}
    config = parse_config({"generators": [generator], "candidates_per_prompt": 2, "max_failure_rate": 1.0,
                           "judges": [{"model": "openai:judge", "base_url": UNUSED_URL}]})

    def kill_after(n: int) -> None:
        while server.count("/chat/completions") < n:
            time.sleep(0.005)
        server.stop()

    killer = threading.Thread(target=kill_after, args=(20,))
    killer.start()
    generated = generate(prompts, config)
    frame = generated.candidates
    killer.join()
    assert len(frame) == 60  # one row per planned candidate, answered or not
    answered, failed = frame[frame["error"].isna()], frame[frame["error"].notna()]
    assert 10 <= len(answered) < 60 and len(failed) > 0
    assert (answered["text"].str.len() > 0).all()
    assert (failed["text"] == "").all() and failed["error"].str.contains("ProviderError").all()
    assert generated.usage["failed_calls"] == len(failed)

    # With the default max_failure_rate the step fails loudly and names the errors.
    with pytest.raises(TooManyFailures, match="generation calls failed"):
        dead = config.generators[0].model_copy(update={"max_retries": 0, "max_concurrency": 16})
        generate(prompts, config.model_copy(update={"max_failure_rate": 0.1, "generators": [dead]}))

    # A new server (another port): what was answered comes from the cache, only the rest is asked.
    with FakeLLMServer() as revived:
        moved = config.model_copy(update={"generators": [config.generators[0].model_copy(
            update={"base_url": revived.openai_base_url})]})
        again = generate(prompts, moved).candidates
        assert revived.count("/chat/completions") == len(failed)
    assert again["error"].isna().all()
    assert again.set_index("candidate_id").loc[answered["candidate_id"], "text"].tolist() == answered["text"].tolist()


# --------------------------------------------------------------------------- budget

def test_client_rpm_limit_keeps_within_the_server_budget(home):
    """Server: 10 requests per 2 s window (300 rpm). Unpaced, 16 concurrent calls trip it; paced, never.

    Paced at ``rpm: 200`` (as a user sets it under the provider's limit): a 2 s window then sees at most 8
    requests (6.7 paced, one more for the window's phase, one of burst), so a request delayed on a loaded
    machine cannot push a window over 10.
    """
    texts = [f"question {i}" for i in range(20)]
    with FakeLLMServer(rpm_limit=10, rate_window_s=2) as server:
        config = config_with({"model": "openai:gen", "base_url": server.openai_base_url, "rpm": 200,
                              "max_concurrency": 16})
        outcomes, _, seconds = complete(config, texts)
        assert all(o.ok for o in outcomes)
        assert server.rate_limited == 0
        assert seconds >= 18 * 60 / 200 * 0.95  # 20 requests at <= 200 per minute: 2 at once, then evenly paced

        server.reset()
        unpaced = config_with({"model": "openai:gen", "base_url": server.openai_base_url, "max_concurrency": 16},
                              cache=False)
        outcomes, _, _ = complete(unpaced, texts)
        assert all(o.ok for o in outcomes)  # the SDK and the pause after a 429 waited them out ...
        assert server.rate_limited >= 6  # ... but only after 16 requests at once ran into a window of 10


def test_tpm_budget_paces_by_tokens():
    async def run() -> float:
        budget = Budget(max_concurrency=64, rpm=None, tpm=60_000)  # ~980 tokens/s, burst 600
        started = time.perf_counter()
        await asyncio.gather(*(budget.admit(200) for _ in range(10)))  # 2,000 tokens
        return time.perf_counter() - started

    seconds = asyncio.run(run())
    assert seconds >= (2000 - 600) / 980 * 0.9  # beyond the 600-token burst, the rest waits for its budget


def test_generators_of_one_model_share_its_budget(home):
    gens = [{"model": "openai:m", "base_url": UNUSED_URL, "temperature": 0.2, "rpm": 100, "max_concurrency": 8},
            {"model": "openai:m", "base_url": UNUSED_URL, "temperature": 0.9, "rpm": 50}]
    config = parse_config({"generators": gens, "judges": [{"model": "openai:j", "base_url": UNUSED_URL}]})
    session = CallSession(config, calls())
    a, b = (session.budget_for(g) for g in config.generators)
    assert a is b and (a.rpm, a.max_concurrency) == (50, 8)
    assert session.budget_for(config.judges[0]) is not a
    asyncio.run(session.aclose())


# --------------------------------------------------------------------------- cache

def test_cache_hits_misses_and_what_the_key_covers(home):
    with FakeLLMServer() as server:
        gen = {"model": "openai:gen", "base_url": server.openai_base_url, "temperature": 0.5}
        outcomes, usage, _ = complete(config_with(gen), ["a", "b", "a"])  # "a" twice, same seed? no: seeds 0 and 2
        assert usage["calls"] == 3 and len(server.requests) == 3
        outcomes2, usage2, _ = complete(config_with(gen), ["a", "b", "a"])
        assert len(server.requests) == 3  # all hits
        assert [o.value.text for o in outcomes2] == [o.value.text for o in outcomes]
        assert [o.value.source for o in outcomes2] == ["cache"] * 3 and usage2["cached_calls"] == 3
        assert usage2["calls"] == 0 and usage2["cost_usd"] == 0

        for change in ({"temperature": 0.6}, {"max_tokens": 100}, {"system_prompt": "Be brief."},
                       {"model": "openai:gen2"}, {"top_p": 0.9}):
            server.reset()
            complete(config_with({**gen, **change}), ["a"])
            assert len(server.requests) == 1, change  # a different answer-determining input: a miss
        server.reset()
        complete(config_with({**gen, "max_retries": 1, "timeout_s": 9, "rpm": 1000, "base_url": server.url + "/v1/"}),
                 ["a"])
        assert len(server.requests) == 0  # transport settings do not change the answer: a hit

        server.reset()
        complete(config_with(gen, cache=False), ["a", "a"])
        assert len(server.requests) == 2  # cache: false reads nothing (and asks duplicates separately)


def test_cache_key_covers_schema_and_response_format(home):
    async def ask(spec, schema):
        async with CallSession(config_with(spec), calls()) as session:
            client = session.client(spec)
            return await client.complete_many([client.request("x", seed=1, json_schema=schema)])

    with FakeLLMServer() as server:
        gen = parse_config({"generators": [{"model": "openai:g", "base_url": server.openai_base_url}],
                            "judges": [{"model": "openai:j", "base_url": UNUSED_URL}]}).generators[0]
        for spec, schema in ((gen, {"type": "object"}), (gen, {"type": "object", "required": []}),
                             (gen.model_copy(update={"response_format": "json_object"}), {"type": "object"}),
                             (gen.model_copy(update={"response_format": "json_object"}), {"type": "object"})):
            asyncio.run(ask(spec, schema))
        assert len(server.requests) == 3  # the last one repeats the third


KILLED_RUN = """
import json, sys
from pref_pipeline.config import parse_config, PromptSource
from pref_pipeline.generation import generate_candidates
from pref_pipeline.paths import Home
from pref_pipeline.providers.client import CallSettings
from pref_pipeline.sources import load_prompts
config = parse_config(json.loads(sys.argv[1]))
prompts = load_prompts([PromptSource(path=sys.argv[2])]).prompts
generate_candidates(prompts, config, CallSettings.under(Home.from_env()))
print("finished")
"""


def test_killed_run_resumes_paying_only_for_what_was_not_answered(home, tmp_path):
    prompts = prompts_frame(20, tmp_path)
    with FakeLLMServer(latency_s=0.15) as server:
        config = {"generators": [{"model": "openai:gen", "base_url": server.openai_base_url, "max_concurrency": 4}],
                  "judges": [{"model": "openai:judge", "base_url": UNUSED_URL}], "candidates_per_prompt": 2}
        proc = subprocess.Popen([sys.executable, "-c", KILLED_RUN, json.dumps(config), str(tmp_path / "prompts20.jsonl")],
                                cwd=ROOT, env={**os.environ, "PREF_PIPELINE_HOME": str(home)},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while server.count("/chat/completions") < 16 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        assert b"finished" not in out, "the run ended before it could be killed"
        paid_before = server.count("/chat/completions")

        cache = ResponseCache(Home.from_env().cache)
        answered = len(cache)
        cache.close()
        assert 8 <= answered < 40  # written as they arrived, not at the end

        server.reset()
        generated = generate(prompts, parse_config(config))
        frame = generated.candidates
        assert frame["error"].isna().all() and len(frame) == 40
        assert server.count("/chat/completions") == 40 - answered  # only what was not yet answered
        assert paid_before - answered <= 4  # at most the calls in flight at the kill were paid twice
        usage = generated.usage
        assert (usage["cached_calls"], usage["calls"]) == (answered, 40 - answered)


# --------------------------------------------------------------------------- accounting

def test_cost_accounting_sums_tokens_at_the_configured_prices(home, tmp_path):
    prompts = prompts_frame(4, tmp_path)
    with FakeLLMServer() as server:
        config = parse_config({
            "generators": [{"model": "openai:priced", "base_url": server.openai_base_url},
                           {"model": "openai:unpriced", "base_url": server.openai_base_url}],
            "candidates_per_prompt": 2,
            "judges": [{"model": "openai:priced", "base_url": server.openai_base_url}],
            "prices": {"openai:priced": {"input_per_mtok": 3.0, "output_per_mtok": 7.0}},
        })
        generated = generate(prompts, config)
        frame = generated.candidates
        judged_run = judge(prompts, frame, config)
        judged = judged_run.judgments
    usage = generated.usage
    priced = frame[frame["generator_model"] == "openai:priced"]
    by_model = usage["by_model"]
    assert by_model["openai:priced"]["input_tokens"] == priced["input_tokens"].sum()
    assert by_model["openai:priced"]["output_tokens"] == priced["output_tokens"].sum()
    expected = (priced["input_tokens"].sum() * 3.0 + priced["output_tokens"].sum() * 7.0) / 1e6
    assert by_model["openai:priced"]["cost_usd"] == pytest.approx(expected)
    assert by_model["openai:unpriced"]["cost_usd"] is None and usage["unpriced_models"] == ["openai:unpriced"]
    assert usage["cost_usd"] == pytest.approx(expected)  # the unpriced model is listed, not counted as 0
    shown = usage_metadata(usage)  # what the asset page shows: the unpriced model is named, not $0
    assert shown["llm_cost_usd"] == f"{usage['cost_usd']} + unpriced (openai:unpriced)"
    assert shown["llm_unpriced_models"] == ["openai:unpriced"]
    assert usage_metadata({**usage, "unpriced_models": []})["llm_cost_usd"] == usage["cost_usd"]
    assert usage["input_tokens"] == frame["input_tokens"].sum() and usage["calls"] == 8

    judge_usage = judged_run.usage
    assert judge_usage["calls"] == len(judged) == 8
    assert judge_usage["cost_usd"] == pytest.approx(
        (judged["input_tokens"].sum() * 3.0 + judged["output_tokens"].sum() * 7.0) / 1e6)


def test_ledger_batch_is_half_price_and_cache_is_free():
    ledger = UsageLedger(price_table({"openai:m": {"input_per_mtok": 2.0, "output_per_mtok": 8.0}}))
    ledger.record("openai:m", "api", 1_000_000, 100_000)  # 2.0 + 0.8
    ledger.record("openai:m", "batch", 1_000_000, 100_000)  # half: 1.4
    ledger.record("openai:m", "cache", 1_000_000, 100_000)  # free
    ledger.record("local:smollm2-135m", "api", 500, 50)  # free
    ledger.record("openai:gpt-4.1-mini", "api", 1_000_000, 1_000_000)  # built-in 0.4 + 1.6
    s = ledger.summary()
    assert s["by_model"]["openai:m"]["cost_usd"] == pytest.approx(4.2)
    assert s["by_model"]["openai:m"]["cached_calls"] == 1 and s["by_model"]["openai:m"]["calls"] == 2
    assert s["by_model"]["openai:m"]["cached_input_tokens"] == 1_000_000
    assert s["by_model"]["openai:gpt-4.1-mini"]["cost_usd"] == pytest.approx(2.0)
    assert s["cost_usd"] == pytest.approx(6.2) and s["unpriced_models"] == []


def test_progress_is_logged_with_counts_and_rate(home, caplog):
    with FakeLLMServer() as server, caplog.at_level("INFO", logger="pref_pipeline"):
        complete(config_with({"model": "openai:gen", "base_url": server.openai_base_url}), [f"q{i}" for i in range(20)])
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("openai:gen:")]
    assert "openai:gen: 20/20 done (0 from cache), 0 failed" in lines[-1] and lines[-1].endswith("/s")
    assert len(lines) >= 10  # every 10 %
