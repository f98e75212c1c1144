"""Benchmark of the LLM-call layer against the fake server (not a test): prints one table.

    .venv/bin/python bench/bench_llm_calls.py            # ~4.5 minutes on 2 cores
    .venv/bin/python bench/bench_llm_calls.py --quick    # fewer pairs, a shorter rpm phase (~2.5 minutes)

The fake server runs in this process (a uvicorn thread), so client and server share one GIL: the
bare loop, which does the least per request, is the fairest measure of what the machine allows.
Targets: the project at >= 0.9 of the bare loop's speed; under the rpm limit >= 0.95 of
the limit achieved with <= 1 % of requests answered 429; a warm re-run makes 0 calls.

What it measures, on one fake OpenAI-compatible server on 127.0.0.1 answering after ``--latency``:

1. this project: ``judge_comparisons`` over ``--pairs`` pairs in both orders (cold cache), at
   ``max_concurrency = --concurrency``; against the ideal requests x latency / concurrency;
2. a bare asyncio loop (semaphore + the same ``AsyncOpenAI`` client, the same request bodies);
3. the seed's plain sequential loop (sync client, one request after another), timed on
   ``--seq-sample`` requests and extrapolated linearly to the full count;
4. a warm re-run of (1) in the same PREF_PIPELINE_HOME: calls made and wall time;
5. a server-side rate limit (``--rpm`` requests per minute, enforced over a sliding
   ``--rpm-window`` seconds): this project with the same ``rpm`` in its config (achieved rate vs the
   limit, 429s); for contrast, the bare loop without a client limit, and this project without
   ``rpm`` in its config (its only defence: a 429 pauses new requests for the retry-after);
6. distilabel's ``OpenAILLM`` (in its own venv, ``--distilabel-python``), same requests, fed in
   batches of ``--concurrency`` as its pipeline steps do with ``input_batch_size``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import openai  # noqa: E402
import pandas as pd  # noqa: E402

from pref_pipeline.config import parse_config  # noqa: E402
from pref_pipeline.judgments import judge_comparisons, judge_tasks  # noqa: E402
from pref_pipeline.judging.pairwise import JudgeItem, PairwiseJudge  # noqa: E402
from pref_pipeline.paths import Home  # noqa: E402
from pref_pipeline.providers.base import RequestBuilder  # noqa: E402
from pref_pipeline.providers.client import CallSettings  # noqa: E402
from pref_pipeline.providers.openai_provider import OpenAIProvider  # noqa: E402
from tests.fakes import FakeLLMServer  # noqa: E402

WORDS = "the a clear answer explains why seasons change because earth tilts toward sun light angle days".split()


def make_data(pairs: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``pairs`` prompts with two candidates each (different lengths), as the judge step receives them."""
    prompts, candidates = [], []
    for i in range(pairs):
        pid = f"p{i:05d}"
        prompts.append({"prompt_id": pid, "prompt": f"Question {i}: why do seasons change?", "category": "bench"})
        for j in range(2):
            n = 40 + (i * 7 + j * 13) % 50
            text = " ".join(WORDS[(i + j + k) % len(WORDS)] for k in range(n))
            candidates.append({"candidate_id": f"c{i:05d}{j}", "prompt_id": pid, "candidate_index": j, "text": text,
                               "error": None, "strategy": "sampling"})
    return pd.DataFrame(prompts), pd.DataFrame(candidates)


def judge_config(base_url: str, concurrency: int, **judge_extra):
    return parse_config({
        "generators": [{"model": "openai:unused", "base_url": base_url}],
        "judges": [{"model": "openai:judge", "base_url": base_url, "max_concurrency": concurrency, **judge_extra}],
        "max_failure_rate": 1.0,
    })


def request_bodies(prompts: pd.DataFrame, candidates: pd.DataFrame, config) -> list[dict]:
    """Exactly the first-attempt bodies this project sends, for the baselines to send too."""
    spec = config.judges[0]
    judge = PairwiseJudge(spec, RequestBuilder(spec))  # type: ignore[arg-type]
    body_of = OpenAIProvider.__new__(OpenAIProvider)
    body_of.spec = spec
    bodies = []
    for t in judge_tasks(prompts, candidates, config):
        item = JudgeItem(t.question, t.x_text, t.y_text, t.order, seed=t.seed)
        bodies.append(body_of._body(judge.base_request(item)))
    return bodies


def run_project(prompts, candidates, config, home: Path) -> tuple[float, pd.DataFrame]:
    started = time.perf_counter()
    frame = judge_comparisons(prompts, candidates, config, CallSettings.under(Home.at(home).ensure())).judgments
    return time.perf_counter() - started, frame


async def bare_loop(base_url: str, bodies: list[dict], concurrency: int, max_retries: int = 4) -> tuple[float, int]:
    client = openai.AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=max_retries)
    semaphore = asyncio.Semaphore(concurrency)
    failures = 0

    async def one(body):
        nonlocal failures
        async with semaphore:
            try:
                completion = await client.chat.completions.create(**body)
                return completion.choices[0].message.content
            except openai.APIError:
                failures += 1

    started = time.perf_counter()
    await asyncio.gather(*(one(b) for b in bodies))
    seconds = time.perf_counter() - started
    await client.close()
    return seconds, failures


def sequential(base_url: str, bodies: list[dict]) -> float:
    """The seed's loop: one synchronous call after another."""
    client = openai.OpenAI(base_url=base_url, api_key="bench")
    started = time.perf_counter()
    for body in bodies:
        client.chat.completions.create(**body)
    seconds = time.perf_counter() - started
    client.close()
    return seconds


DISTILABEL_SCRIPT = r"""
import json, sys, time, asyncio
from distilabel.models.llms import OpenAILLM
base_url, path, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
bodies = [json.loads(l) for l in open(path)]
llm = OpenAILLM(model="judge", base_url=base_url, api_key="bench", max_retries=4, timeout=120)
llm.load()
inputs = [b["messages"] for b in bodies]
started = time.perf_counter()
done = 0
for i in range(0, len(inputs), batch):
    out = llm.generate(inputs=inputs[i:i + batch], num_generations=1, max_new_tokens=512, temperature=0.0,
                       response_format={"type": "json_object"})
    done += sum(1 for o in out if o["generations"] and o["generations"][0])
print(json.dumps({"seconds": time.perf_counter() - started, "answered": done}))
"""


def run_distilabel(python: str, base_url: str, bodies: list[dict], batch: int, workdir: Path) -> dict | str:
    if not Path(python).exists():
        return f"not installed ({python} missing)"
    path = workdir / "bodies.jsonl"
    path.write_text("".join(json.dumps(b) + "\n" for b in bodies))
    proc = subprocess.run([python, "-c", DISTILABEL_SCRIPT, base_url, str(path), str(batch)],
                          capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        return "failed: " + (proc.stderr.strip().splitlines() or ["?"])[-1][:200]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seq-sample", type=int, default=40)
    parser.add_argument("--rpm", type=int, default=1200, help="server limit, requests per minute")
    parser.add_argument("--rpm-window", type=float, default=10.0, help="the server's sliding window, seconds")
    parser.add_argument("--rpm-pairs", type=int, default=700)
    parser.add_argument("--hammer-requests", type=int, default=None, help="default: 3 windows' worth")
    parser.add_argument("--distilabel-python", default="/tmp/distilabel-venv/bin/python")
    parser.add_argument("--quick", action="store_true", help="500 pairs, a 300-pair rpm phase")
    args = parser.parse_args()
    if args.quick:
        args.pairs, args.rpm_pairs = 500, 300

    prompts, candidates = make_data(args.pairs)
    rows: list[tuple[str, str, str]] = []
    work = Path(tempfile.mkdtemp(prefix="bench-llm-"))
    with FakeLLMServer(latency_s=args.latency) as server:
        url = server.openai_base_url
        config = judge_config(url, args.concurrency)
        bodies = request_bodies(prompts, candidates, config)
        n = len(bodies)
        ideal = n * args.latency / args.concurrency
        print(f"{n} judge requests ({args.pairs} pairs x 2 orders), latency {args.latency} s, "
              f"concurrency {args.concurrency}, ideal {ideal:.1f} s", file=sys.stderr)

        # 1. this project, cold cache
        server.reset()
        ours, frame = run_project(prompts, candidates, config, work / "home")
        ours_calls = server.count("/chat/completions")
        assert frame["error"].isna().all() and len(frame) == n, "the benchmark run had failures"
        # 2. bare asyncio loop
        server.reset()
        bare, bare_failures = asyncio.run(bare_loop(url, bodies, args.concurrency))
        # 3. sequential loop, sampled
        server.reset()
        sample = bodies[: args.seq_sample]
        seq = sequential(url, sample) * n / len(sample)
        # 4. warm re-run
        server.reset()
        warm, _ = run_project(prompts, candidates, config, work / "home")
        warm_calls = server.count("/chat/completions")

        rows += [
            ("ideal: requests x latency / concurrency", f"{ideal:.1f} s", f"{n} x {args.latency} / {args.concurrency}"),
            ("this project, cold (judge_comparisons)", f"{ours:.1f} s",
             f"{ours_calls} calls; {ideal / ours:.2f} of ideal; {bare / ours:.2f} of bare loop speed (target >= 0.9)"),
            ("bare asyncio loop, same AsyncOpenAI + semaphore", f"{bare:.1f} s",
             f"{n} calls; {ideal / bare:.2f} of ideal; {bare_failures} failures"),
            (f"sequential loop (seed), {len(sample)} timed, extrapolated", f"{seq:.0f} s",
             f"project is {seq / ours:.0f}x faster"),
            ("this project, warm re-run (same inputs)", f"{warm:.1f} s", f"{warm_calls} calls (target 0)"),
        ]

        # 5. server rate limit: paced project vs unpaced bare loop
        per_window = max(1, round(args.rpm * args.rpm_window / 60))
        server.rpm_limit, server.rate_window_s = per_window, args.rpm_window
        p2, c2 = make_data(args.rpm_pairs)
        p2["prompt_id"] = "r" + p2["prompt_id"]
        c2["prompt_id"] = "r" + c2["prompt_id"]
        c2["candidate_id"] = "r" + c2["candidate_id"]
        limited = judge_config(url, args.concurrency, rpm=args.rpm)
        admitted: list[float] = []  # when the server admitted each request (to measure the rate it saw)
        admit = server._admit

        def recording_admit():
            retry_after = admit()
            if retry_after is None:
                admitted.append(time.monotonic())
            return retry_after

        server._admit = recording_admit
        server.reset()
        paced, paced_frame = run_project(p2, c2, limited, work / "home-rpm")
        seen = (len(admitted) - 1) / (admitted[-1] - admitted[0]) * 60 if len(admitted) > 1 else 0.0
        paced_calls = server.count("/chat/completions")
        paced_429 = server.rate_limited
        answered = int(paced_frame["error"].isna().sum())
        achieved = answered / paced * 60
        rows.append((f"server limit {args.rpm} rpm ({per_window} per {args.rpm_window:g} s window), project rpm={args.rpm}",
                     f"{paced:.1f} s",
                     f"{answered} answered; server saw {seen:.0f}/min = {seen / args.rpm:.3f} of limit "
                     f"(whole step incl. setup: {achieved / args.rpm:.3f}; target >= 0.95); "
                     f"{paced_429} x 429 ({paced_429 / max(paced_calls, 1):.2%} of {paced_calls} requests; "
                     f"target <= 1 %)"))
        server._admit = admit
        server.reset()
        time.sleep(args.rpm_window)  # let the window empty
        server.reset()
        hammer_bodies = request_bodies(p2, c2, limited)[: args.hammer_requests or 3 * per_window]
        hammer, hammer_failures = asyncio.run(bare_loop(url, hammer_bodies, args.concurrency, max_retries=10))
        rows.append((f"same limit, bare loop without a client limit ({len(hammer_bodies)} requests)",
                     f"{hammer:.1f} s",
                     f"{server.rate_limited} x 429 for {len(hammer_bodies)} requests; {hammer_failures} failed"))
        # ... and this project on the same requests with no rpm in its config: only the pause after a 429
        time.sleep(args.rpm_window)
        server.reset()
        p3 = p2.head(len(hammer_bodies) // 2)
        c3 = c2[c2["prompt_id"].isin(p3["prompt_id"])]
        unpaced = judge_config(url, args.concurrency, max_retries=10)
        unpaced_s, unpaced_frame = run_project(p3, c3, unpaced, work / "home-unpaced")
        rows.append((f"same limit, this project without rpm in its config ({len(unpaced_frame)} requests)",
                     f"{unpaced_s:.1f} s",
                     f"{server.rate_limited} x 429 for {len(unpaced_frame)} requests (a 429 pauses new requests "
                     f"for its retry-after); {int(unpaced_frame['error'].notna().sum())} failed"))
        server.rpm_limit = None

        # 6. distilabel
        server.reset()
        result = run_distilabel(args.distilabel_python, url, bodies, args.concurrency, work)
        if isinstance(result, dict):
            rows.append(("distilabel OpenAILLM, batches of concurrency", f"{result['seconds']:.1f} s",
                         f"{result['answered']} answered; this project is {result['seconds'] / ours:.2f}x faster"))
        else:
            rows.append(("distilabel OpenAILLM", "-", result))

    width = [max(len(r[i]) for r in rows) for i in range(3)]
    print(f"\nmachine: {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), Python {sys.version.split()[0]}, "
          f"openai {openai.__version__}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
          f"{n} requests, latency {args.latency} s, concurrency {args.concurrency}")
    print(f"\n{'what'.ljust(width[0])}  {'wall'.rjust(width[1])}  notes")
    print(f"{'-' * width[0]}  {'-' * width[1]}  {'-' * width[2]}")
    for what, wall, notes in rows:
        print(f"{what.ljust(width[0])}  {wall.rjust(width[1])}  {notes}")


if __name__ == "__main__":
    main()
