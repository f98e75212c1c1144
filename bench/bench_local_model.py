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


JUDGE_WORKER = r"""
import asyncio, json, sys, time
sys.path.insert(0, sys.argv[2])
import llama_cpp
from pref_pipeline.config import judge_spec, parse_config
from pref_pipeline.judging.pairwise import JudgeItem, PairwiseJudge
from pref_pipeline.judging.prompts import PAIRWISE_COMPACT_TEMPLATE, PAIRWISE_TEMPLATE
from pref_pipeline.providers import make_provider
from pref_pipeline.providers.local_provider import _LLAMA_THREAD, _load
from pref_pipeline.sources import builtin_rows

variants, n = json.loads(sys.argv[1]), int(sys.argv[3])
default = parse_config({}).judges[0]
rows = builtin_rows()[:n]
# Realistic pairs: the gold answer against the same answer with its second half dropped (gold_corruption's kind).
items = []
for i, row in enumerate(rows):
    words = row["reference"].split()
    for order in ("xy", "yx"):
        items.append(JudgeItem(row["prompt"], row["reference"], " ".join(words[: len(words) // 2]), order, seed=i))

async def measure(variant):
    keys = {k: v for k, v in default.model_dump(exclude_none=True).items() if k not in ("template", "reasoning_max_chars")}
    spec = judge_spec(**{**keys, "max_tokens": variant["max_tokens"], "reasoning_max_chars": variant["cap"]})
    template = PAIRWISE_COMPACT_TEMPLATE if variant["template"] == "compact" else PAIRWISE_TEMPLATE
    provider = make_provider(spec)
    await asyncio.get_running_loop().run_in_executor(_LLAMA_THREAD, _load, provider.path)
    judge = PairwiseJudge(spec, provider, template=template)
    ctx = _load(provider.path).llama.ctx
    llama_cpp.llama_perf_context_reset(ctx)
    started = time.perf_counter()
    outcomes = await judge.judge_many(items)
    seconds = time.perf_counter() - started
    perf = llama_cpp.llama_perf_context(ctx)  # tokens llama.cpp evaluated: the work, whatever the load
    verdicts = [o.value for o in outcomes if o.ok]
    return {"seconds": seconds, "calls": sum(v.attempts for v in verdicts), "items": len(items),
            "input_tokens": sum(v.input_tokens for v in verdicts), "output_tokens": sum(v.output_tokens for v in verdicts),
            "usable": sum(v.verdict.usable for v in verdicts), "ok": sum(v.verdict.status == "ok" for v in verdicts),
            "first_try": sum(v.attempts == 1 and v.verdict.usable for v in verdicts),
            "prefers_gold": sum(v.preferred == "x" for v in verdicts),
            "prompt_evaluated": perf.n_p_eval, "generated": perf.n_eval,
            "prompt_ms": perf.t_p_eval_ms, "generate_ms": perf.t_eval_ms}

for variant in variants:
    print(json.dumps({"variant": variant, **asyncio.run(measure(variant))}), flush=True)
"""

# The judge levers measured by ``--part judge``: template, reasoning cap in the grammar, max_tokens.
JUDGE_VARIANTS = {
    "hardened template, max_tokens 96 (before)": {"template": "hardened", "cap": None, "max_tokens": 96},
    "compact template, max_tokens 96": {"template": "compact", "cap": None, "max_tokens": 96},
    "hardened template, reasoning <= 60 chars": {"template": "hardened", "cap": 60, "max_tokens": 96},
    "compact template, reasoning <= 60 chars (now)": {"template": "compact", "cap": 60, "max_tokens": 96},
}


def judge_part(args: argparse.Namespace) -> None:
    """The default judge's calls under each lever, in fresh processes, variants alternating over the rounds."""
    results: dict[str, list[dict]] = {name: [] for name in JUDGE_VARIANTS}
    for round_ in range(args.rounds):
        names = list(JUDGE_VARIANTS) if round_ % 2 == 0 else list(reversed(JUDGE_VARIANTS))
        for name in names:
            proc = subprocess.run([sys.executable, "-c", JUDGE_WORKER, json.dumps([JUDGE_VARIANTS[name]]), str(ROOT),
                                   str(args.judge_prompts)], capture_output=True, text=True, timeout=3600)
            if proc.returncode != 0:
                raise SystemExit(f"{name} failed:\n{proc.stderr[-2000:]}")
            results[name].append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(f"{name}: {results[name][-1]}", file=sys.stderr)
    print(f"\nthe default judge (local:smollm2-135m) on {2 * args.judge_prompts} orders ({args.judge_prompts} built-in "
          f"prompts: gold answer vs its first half), {args.rounds} rounds; load average {os.getloadavg()[0]:.1f}\n")
    header = ("variant", "s/order", "in tok/call", "evaluated/order", "out tok/call", "idle s/order", "parsed ok",
              "usable", "1st try", "prefers gold", "vs before")
    print("  ".join([header[0].ljust(46), *(h.rjust(15) for h in header[1:])]))
    base = None
    for name, runs in results.items():
        items = sum(r["items"] for r in runs)
        calls = sum(r["calls"] for r in runs)
        per_order = sum(r["seconds"] for r in runs) / items
        evaluated = sum(r["prompt_evaluated"] for r in runs) / items
        generated = sum(r["generated"] for r in runs) / items
        idle = evaluated / args.prompt_rate + generated / args.generation_rate  # the work at an idle machine's rates
        base = base or idle
        cells = [f"{per_order:.2f}", f"{sum(r['input_tokens'] for r in runs) / calls:.0f}", f"{evaluated:.0f}",
                 f"{sum(r['output_tokens'] for r in runs) / calls:.1f}", f"{idle:.2f}",
                 *(f"{sum(r[k] for r in runs) / items:.0%}" for k in ("ok", "usable", "first_try", "prefers_gold")),
                 f"{base / idle:.2f}x"]
        print("  ".join([name.ljust(46), *(c.rjust(15) for c in cells)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["threads", "judge"], default="threads",
                        help="threads: the llama thread vs the default executor; judge: the default judge's levers")
    parser.add_argument("--requests", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--judge-prompts", type=int, default=6, help="--part judge: built-in prompts (2 orders each)")
    # The tokens llama.cpp evaluated are the same whatever the load; these idle rates (DESIGN.md, 2 cores) turn them
    # into the seconds an idle machine takes, since a shared machine's wall times vary several-fold.
    parser.add_argument("--prompt-rate", type=float, default=214.0, help="prompt tokens/s on an idle machine")
    parser.add_argument("--generation-rate", type=float, default=88.0, help="generated tokens/s on an idle machine")
    args = parser.parse_args()
    if args.part == "judge":
        judge_part(args)
        return
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
