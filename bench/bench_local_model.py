"""Benchmark of the embedded model's call path (not a test): prints one table.

    .venv/bin/python bench/bench_local_model.py [--requests 12] [--rounds 2]    # ~2 minutes on 2 cores

The ``local:`` provider runs llama.cpp in process, off the event loop. llama.cpp keeps a team of
compute threads per calling thread, and an idle team goes on spinning for a while; so *which*
thread makes the calls matters on a 2-core machine. Side by side, each in a fresh process, the same
generation requests (the default generator, ``max_tokens`` 120, different prompts, 16 in flight):

* **one llama thread**: ``LocalLlamaProvider.complete`` as the pipeline calls it (every call on one
  dedicated thread);
* **the default executor**: the same ``_call`` through ``asyncio.to_thread``, as the provider did
  before, which spreads the calls over up to 16 executor threads.

Reported: output tokens per second of each, and the ratio. Modes alternate over ``--rounds``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

WORKER = r"""
import asyncio, json, sys, time
sys.path.insert(0, sys.argv[3])
from pref_pipeline.config import parse_config
from pref_pipeline.providers import make_provider
from pref_pipeline.providers.local_provider import _LLAMA_THREAD, _load

mode, n = sys.argv[1], int(sys.argv[2])
spec = parse_config({}).generators[0]
provider = make_provider(spec)
requests = [provider.request(f"Question {i}: explain in a paragraph why the seasons change.", seed=i) for i in range(n)]

async def main():
    semaphore = asyncio.Semaphore(16)
    async def one(request):
        async with semaphore:
            if mode == "one-thread":
                return await provider.complete(request)
            return await asyncio.to_thread(provider._call, request)
    # load the model first, on the thread that will use it, so loading is not timed
    if mode == "one-thread":
        await asyncio.get_running_loop().run_in_executor(_LLAMA_THREAD, _load, provider.path)
    else:
        _load(provider.path)
    started = time.perf_counter()
    answers = await asyncio.gather(*(one(r) for r in requests))
    return time.perf_counter() - started, sum(a.output_tokens or 0 for a in answers)

seconds, tokens = asyncio.run(main())
print(json.dumps({"seconds": seconds, "tokens": tokens}))
"""

MODES = {"one-thread": "one llama thread (the pipeline's path)", "executor": "asyncio.to_thread (default executor)"}


def run(mode: str, n: int) -> dict:
    proc = subprocess.run([sys.executable, "-c", WORKER, mode, str(n), str(ROOT)], capture_output=True, text=True,
                          timeout=1200)
    if proc.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    results: dict[str, list[dict]] = {m: [] for m in MODES}
    for _ in range(args.rounds):
        for mode in MODES:
            results[mode].append(run(mode, args.requests))
            print(f"{mode}: {results[mode][-1]}", file=sys.stderr)

    def rate(mode: str) -> float:
        return sum(r["tokens"] for r in results[mode]) / sum(r["seconds"] for r in results[mode])

    import llama_cpp
    print(f"\nmachine: {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), Python {sys.version.split()[0]}, "
          f"llama-cpp-python {llama_cpp.__version__}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
          f"{args.requests} requests x {args.rounds} rounds, local:smollm2-135m")
    rows = [(MODES[m], f"{rate(m):.1f}", " ".join(f"{r['seconds']:.1f}s" for r in results[m])) for m in MODES]
    width = [max(len(r[i]) for r in rows + [("what", "tokens/s", "wall per round")]) for i in range(3)]
    print(f"\n{'what'.ljust(width[0])}  {'tokens/s'.rjust(width[1])}  wall per round")
    print(f"{'-' * width[0]}  {'-' * width[1]}  {'-' * width[2]}")
    for what, tps, walls in rows:
        print(f"{what.ljust(width[0])}  {tps.rjust(width[1])}  {walls}")
    print(f"\none llama thread / default executor: {rate('one-thread') / rate('executor'):.2f}x")


if __name__ == "__main__":
    main()
