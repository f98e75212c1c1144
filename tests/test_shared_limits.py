"""One rate budget across processes: several processes, each with its own ``CallSession``, share a model's
``rpm`` and its 429 pause through the home's budget file (pyrate-limiter over SQLite), against one server."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from pref_pipeline.config import parse_config
from pref_pipeline.providers.client import CallSession, CallSettings
from tests.fakes import FakeLLMServer

UNUSED_URL = "http://127.0.0.1:9/v1"


def _config(base_url: str, **generator):
    return parse_config({"generators": [{"model": "openai:gen", "base_url": base_url, **generator}],
                         "judges": [{"model": "openai:judge", "base_url": UNUSED_URL}], "cache": False})


def _send(base_url: str, folder: str, limits_file: str | None, generator: dict, texts: list[str],
          start_at: float, go: multiprocessing.synchronize.Event | None = None) -> list[bool]:
    """One process's calls: its own session on the shared budget file, starting at ``start_at`` (wall time)
    or when ``go`` is set."""
    config = _config(base_url, **generator)
    settings = CallSettings(cache_dir=None, batch_dir=Path(folder) / "llm_batches",
                            limits_file=Path(limits_file) if limits_file else None)

    async def run() -> list[bool]:
        async with CallSession(config, settings) as session:
            client = session.client(config.generators[0])
            requests = [client.request(text) for text in texts]
            if go is not None:
                await asyncio.get_running_loop().run_in_executor(None, go.wait, 120)
            while time.time() < start_at:
                await asyncio.sleep(0.005)
            return [outcome.ok for outcome in await client.complete_many(requests)]

    return asyncio.run(run())


def _processes(count: int) -> ProcessPoolExecutor:
    # Not multiprocessing.Pool: its terminate() on exit can hang joining a worker it has just replaced.
    return ProcessPoolExecutor(count, mp_context=multiprocessing.get_context("spawn"))


def _in_processes(jobs: list[tuple]) -> list[list[bool]]:
    with _processes(len(jobs)) as pool:
        results = [pool.submit(_send, *job) for job in jobs]
        return [result.result(timeout=300) for result in results]


def test_processes_sharing_the_budget_file_stay_within_one_rpm_together(tmp_path):
    """Server: 10 requests per 2 s window (300 rpm). Three processes, 8 requests each, share ``rpm: 200``:
    together they are paced at 3.3 requests a second and never trip the server's limit. Each pacing itself
    (no shared file) would send 12 a second and run into it."""
    limits = str(tmp_path / "cache" / "limits.sqlite")
    generator = {"rpm": 200, "max_concurrency": 8, "max_retries": 5}
    with FakeLLMServer(rpm_limit=10, rate_window_s=2) as server:
        start_at = time.time() + 8  # after every process has imported the SDKs
        jobs = [(server.openai_base_url, str(tmp_path), limits, generator, [f"p{p} q{i}" for i in range(8)], start_at)
                for p in range(3)]
        results = _in_processes(jobs)
        shared_429s, times = server.rate_limited, [r["at"] for r in server.requests]

        server.reset()
        start_at = time.time() + 8
        own = [(server.openai_base_url, str(tmp_path), None, generator, [f"p{p} r{i}" for i in range(8)], start_at)
               for p in range(3)]
        separate = _in_processes(own)
        separate_429s = server.rate_limited
    assert all(all(ok) for ok in results) and all(all(ok) for ok in separate)
    assert len(times) == 24 and shared_429s == 0
    assert max(times) - min(times) >= 22 * 60 / 200 * 0.9  # 24 requests: 2 at once, then 3.3 a second, all together
    assert separate_429s >= 5  # the same three processes, each with its own budget, overran the server


def test_a_429_seen_by_one_process_pauses_the_others(tmp_path):
    """Process A's first request gets 429 with ``retry-after: 2``; process B, started right after, waits the
    pause out before sending anything (without the shared pause it would send at once)."""
    limits = str(tmp_path / "cache" / "limits.sqlite")
    generator = {"max_retries": 0, "max_concurrency": 1}
    context = multiprocessing.get_context("spawn")
    with FakeLLMServer(fail_plan=[429], retry_after_s=2) as server, context.Manager() as manager:
        go = manager.Event()
        with _processes(2) as pool:
            first = pool.submit(_send, server.openai_base_url, str(tmp_path), limits, generator, ["a"], 0.0)
            second = pool.submit(_send, server.openai_base_url, str(tmp_path), limits, generator, ["b"], 0.0, go)
            assert first.result(timeout=120) == [False]  # the 429, not retried
            go.set()
            assert second.result(timeout=120) == [True]
        limited_at, next_at = (r["at"] for r in server.requests)
        assert server.faults["429"] == 1
    assert next_at - limited_at >= 1.9
