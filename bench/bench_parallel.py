"""Benchmark of prompt batches in parallel (not a test): prints one table.

    .venv/bin/python bench/bench_parallel.py                  # ~5 minutes on 2 shared cores
    .venv/bin/python bench/bench_parallel.py --prompts 4      # smaller batches, quicker

Two parts, each `pref-pipeline run` in its own process (a fresh home, cold cache, no DAGSTER_HOME) against
one fake OpenAI-compatible server in this process (``tests/fakes/llm_server.py``):

1. **Speed-up.** ``--batches`` batches (default 8) of ``--prompts`` prompts, the server answering after
   ``--latency`` (default 300 ms), run with ``--parallel`` 1, 2 and 4: wall time side by side, with the ratio
   to 1 (target: 4 in parallel at least 3x faster). One model serves generators and judge at
   ``max_concurrency: --concurrency`` per process, so a batch's LLM calls take a fixed time, as a provider's
   concurrency budget makes them.
2. **One budget.** The server allows ``--limit`` requests per minute (default 600, a sliding 60 s window,
   429 with retry-after beyond it) and the configuration says ``rpm: --rpm`` (default 570) for the model;
   four batches run with ``--parallel 4``, sized to last about ``--rpm-seconds``. Achieved: requests the
   server answered per minute, from the first request to the last, over the limit (target 0.95-1.0); the
   most requests in any 60 s window; the share answered 429 (target <= 1 %).

``--before REV`` also runs part 1 with the code at ``REV`` (a ``git worktree``, ``bench/revisions.py``), each
``--parallel`` value once with each code, one after the other; each code's speed-up is against its own first value.

"Lost" and "duplicated" count LLM requests (every distinct request answered exactly once: the server's log)
and exported pairs (unique ``pair_id``; in part 1, the same pairs at every degree of parallelism).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "bench"))

from revisions import checkout, env_for  # noqa: E402
from tests.cli_runs import cli_env, prompt_rows  # noqa: E402
from tests.fakes import FakeLLMServer  # noqa: E402
from tests.helpers import write_prompts  # noqa: E402

BIN = Path(sys.executable).parent


def write_config(folder: Path, base_url: str, batches: list[str], concurrency: int, rpm: int | None) -> Path:
    """Two generators (temperatures 0.3 and 0.9) and the judge, all one model: one budget, as at a provider."""
    limits = f"    max_concurrency: {concurrency}\n" + (f"    rpm: {rpm}\n" if rpm else "")
    model = f"openai:bench-model\n    base_url: {base_url}\n{limits}"
    path = folder / "pipeline.yaml"
    path.write_text(
        "prompts:\n" + "".join(f"  - path: {b}.jsonl\n" for b in batches)
        + f"generators:\n  - model: {model}    temperature: 0.3\n  - model: {model}    temperature: 0.9\n"
        + f"judges:\n  - model: {model}"
        + "filters:\n  near_duplicate_prompt_threshold: null\n", encoding="utf-8")
    for batch in batches:
        write_prompts(folder / f"{batch}.jsonl", prompt_rows(PROMPTS_PER_BATCH[batch], tag=batch))
    return path


PROMPTS_PER_BATCH: dict[str, int] = {}


def run_cli(config: Path, home: Path, parallel: int, root: Path = ROOT) -> tuple[float, subprocess.CompletedProcess]:
    """``pref-pipeline run --parallel`` with the code at ``root`` (this checkout, or a worktree of ``--before``)."""
    started = time.perf_counter()
    env = cli_env(home) if root == ROOT else env_for(root, cli_env(home))
    done = subprocess.run([str(BIN / "pref-pipeline"), "run", "--config", str(config), "--no-progress",
                           "--parallel", str(parallel)], cwd=root, env=env, capture_output=True,
                          text=True, timeout=1800)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"pref-pipeline run --parallel {parallel} failed:\n{done.stderr[-3000:]}")
    return seconds, done


def exported(home: Path) -> list[str]:
    path = home / "exports" / "preference_pairs.jsonl"
    return [json.loads(line)["pair_id"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def request_counts(server: FakeLLMServer, expected: int) -> tuple[int, int, int]:
    """(answered, lost, duplicated) LLM requests: distinct bodies answered once each, ``expected`` of them."""
    bodies = [json.dumps(r["body"], sort_keys=True) for r in server.requests if r["path"].endswith("/chat/completions")]
    answered = len(bodies) - server.rate_limited
    distinct = len(set(bodies))
    return answered, expected - distinct, answered - distinct


def speedup(args, folder: Path, codes: dict[str, Path]) -> list[dict]:
    """Each ``--parallel`` value with each code (``codes``: name -> root), the codes interleaved per value."""
    batches = [f"b{i}" for i in range(args.batches)]
    PROMPTS_PER_BATCH.update(dict.fromkeys(batches, args.prompts))
    rows, reference = [], None
    expected_calls = args.batches * args.prompts * 4  # 2 candidates + 1 comparison judged in both orders
    for parallel in args.parallel:
        for code, root in codes.items():
            with FakeLLMServer(latency_s=args.latency) as server:
                work = folder / f"speed{parallel}-{len(rows)}"
                work.mkdir()
                config = write_config(work, server.openai_base_url, batches, args.concurrency, None)
                seconds, _ = run_cli(config, work / "home", parallel, root)
                answered, lost, duplicated = request_counts(server, expected_calls)
            pairs = exported(work / "home")
            reference = reference if reference is not None else set(pairs)
            rows.append({"code": code, "parallel": parallel, "seconds": seconds, "calls": answered,
                         "calls_lost": lost, "calls_duplicated": duplicated, "pairs": len(pairs),
                         "pairs_duplicated": len(pairs) - len(set(pairs)), "pairs_lost": len(reference - set(pairs))})
            print(f"  {code}, --parallel {parallel}: {seconds:.1f} s", file=sys.stderr)
    return rows


def budget(args, folder: Path) -> dict:
    batches = [f"r{i}" for i in range(4)]
    per_batch = max(1, round(args.rpm * args.rpm_seconds / 60 / 4 / 4))  # 4 batches, 4 calls per prompt
    PROMPTS_PER_BATCH.update(dict.fromkeys(batches, per_batch))
    with FakeLLMServer(latency_s=args.latency, rpm_limit=args.limit, rate_window_s=60) as server:
        work = folder / "budget"
        work.mkdir()
        config = write_config(work, server.openai_base_url, batches, args.concurrency * 4, args.rpm)
        seconds, _ = run_cli(config, work / "home", 4)
        answered, lost, duplicated = request_counts(server, 4 * per_batch * 4)
        times = sorted(r["at"] for r in server.requests if r["path"].endswith("/chat/completions"))
        limited = server.rate_limited
    span = times[-1] - times[0]
    most = max(sum(1 for t in times[i:] if t < start + 60) for i, start in enumerate(times))
    pairs = exported(work / "home")
    return {"seconds": seconds, "requests": len(times), "answered": answered, "rate_limited": limited,
            "achieved_rpm": (answered - 1) / span * 60 if span else 0.0, "most_in_60s": most,
            "calls_lost": lost, "calls_duplicated": duplicated, "pairs": len(pairs),
            "pairs_duplicated": len(pairs) - len(set(pairs)), "per_batch": per_batch}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--prompts", type=int, default=6, help="prompts per batch in part 1")
    parser.add_argument("--latency", type=float, default=0.3)
    parser.add_argument("--concurrency", type=int, default=1, help="max_concurrency of the model, per process")
    parser.add_argument("--parallel", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--limit", type=int, default=600, help="the server's requests per minute")
    parser.add_argument("--rpm", type=int, default=570, help="the configuration's rpm")
    parser.add_argument("--rpm-seconds", type=float, default=60, help="how long part 2's calls should take")
    parser.add_argument("--skip-budget", action="store_true")
    parser.add_argument("--before", default=None, help="also run part 1 with the code at this git revision, "
                        "interleaved (a worktree under /tmp, removed after)")
    args = parser.parse_args()

    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench_parallel_") as tmp, contextlib.ExitStack() as stack:
        folder = Path(tmp)
        codes = {"now": ROOT}
        if args.before:
            codes[f"before ({args.before})"] = stack.enter_context(checkout(args.before))
        rows = speedup(args, folder, codes)
        result = None if args.skip_budget else budget(args, folder)
    load_after = os.getloadavg()[0]

    base = {row["code"]: row["seconds"] for row in reversed(rows)}  # each code's first --parallel value
    print(f"\n1. {args.batches} batches x {args.prompts} prompts ({args.batches * args.prompts * 4} LLM calls), "
          f"server latency {args.latency * 1000:.0f} ms, max_concurrency {args.concurrency} per process "
          f"(load average {load:.1f} -> {load_after:.1f}, {os.cpu_count()} CPUs)")
    print(f"{'code':<20}  {'--parallel':>10}  {'wall':>8}  {'speed-up':>8}  {'calls':>5}  {'lost':>4}  {'dup':>3}  "
          f"{'pairs':>5}  {'lost':>4}  {'dup':>3}")
    for row in sorted(rows, key=lambda row: (row["code"] != "now", row["code"], row["parallel"])):
        print(f"{row['code']:<20}  {row['parallel']:>10}  {row['seconds']:>7.1f}s  "
              f"{base[row['code']] / row['seconds']:>7.2f}x  {row['calls']:>5}  "
              f"{row['calls_lost']:>4}  {row['calls_duplicated']:>3}  {row['pairs']:>5}  {row['pairs_lost']:>4}  "
              f"{row['pairs_duplicated']:>3}")
    print(f"   target: 4 in parallel >= 3x faster than 1 (speed-up: against the same code's --parallel "
          f"{args.parallel[0]})")
    if result is not None:
        r = result
        print(f"\n2. four batches at once (--parallel 4, {r['per_batch']} prompts each, {r['requests']} requests), "
              f"server limit {args.limit} rpm (sliding 60 s), config rpm {args.rpm}, wall {r['seconds']:.1f} s")
        print(f"   achieved {r['achieved_rpm']:.0f} rpm = {r['achieved_rpm'] / args.limit:.3f} of the limit "
              f"(target 0.95-1.0); most in any 60 s window: {r['most_in_60s']}")
        print(f"   429s: {r['rate_limited']} ({r['rate_limited'] / max(1, r['requests']):.2%} of requests; "
              f"target <= 1 %)")
        print(f"   calls answered {r['answered']}, lost {r['calls_lost']}, duplicated {r['calls_duplicated']}; "
              f"pairs {r['pairs']}, duplicated {r['pairs_duplicated']}")


if __name__ == "__main__":
    main()
