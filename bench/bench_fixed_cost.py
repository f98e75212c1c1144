"""Benchmark: a run's fixed cost against the import floor, and against the code before, side by side in one run.

    .venv/bin/python bench/bench_fixed_cost.py [--prompts 50] [--repeat 5] [--before afe6458] [--dagster-home]

What a person waits for on every run besides the LLM calls (issue 23): a new batch of ``--prompts`` prompts
whose every answer is already in the response cache (every step runs, no call is made), as ``pref-pipeline run
--config`` in a fresh process, against the import floor, ``python -c "import dagster, pandas, duckdb,
great_expectations"`` (what any run must import). Target: at most 1.5x the floor.

The configuration is the fake OpenAI-compatible server's (``tests/fakes``, in its own process): 2 generators,
2 candidates per prompt, 1 judge, the audit's plots on (the default). The cache is filled once by a cold run; each
measured run gets a copy of that home (the filled cache and the first batch's tables) and a new batch of the same
prompts, so every run has the same work. ``--before REV`` also runs the code at ``REV`` (a ``git worktree`` under
/tmp, removed at the end) with the same venv, interleaved with the floor and today's code: repetitions rotate the
order, and the table shows the median and the fastest of each. ``--dagster-home`` runs with a new ``DAGSTER_HOME``
(runs recorded for the UI) instead of Dagster's throwaway instance.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from bench_step_overhead import ServerProcess, write_prompts  # noqa: E402 (the fake server and its prompts)
from revisions import checkout, env_for  # noqa: E402


class CountingServer(ServerProcess):
    """The zero-latency fake server in its own process, asked for its count of answered calls at any time (the
    measured runs must make none; the preflight still reaches the server, so it runs throughout)."""

    SCRIPT = ("import sys; sys.path.insert(0, sys.argv[1]); from tests.fakes import FakeLLMServer\n"
              "with FakeLLMServer(latency_s=0.0) as s:\n"
              "    print(s.openai_base_url, flush=True)\n"
              "    for _ in sys.stdin: print(len(s.requests), flush=True)\n")

    def count(self) -> int:
        self.process.stdin.write("count\n")
        self.process.stdin.flush()
        return int(self.process.stdout.readline())

FLOOR = "import dagster, pandas, duckdb, great_expectations"


def write_config(path: Path, url: str, prompts: Path) -> Path:
    path.write_text(
        f"prompts:\n  - {{path: '{prompts}'}}\n"
        f"generators:\n  - {{model: 'openai:gen-a', base_url: '{url}', temperature: 0.3}}\n"
        f"  - {{model: 'openai:gen-b', base_url: '{url}', temperature: 0.9}}\n"
        "candidates_per_prompt: 2\n"
        f"judges:\n  - {{model: 'openai:judge', base_url: '{url}'}}\n", encoding="utf-8")
    return path


class Version:
    """The pipeline's code at one place: this checkout, or a worktree of an earlier commit."""

    def __init__(self, name: str, root: Path):
        self.name, self.root = name, root

    def run(self, config: Path, home: Path, dagster_home: Path | None) -> float:
        env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "OPENAI_API_KEY", "OPENAI_BASE_URL")}
        env = env_for(self.root, {**env, "PREF_PIPELINE_HOME": str(home)})
        if dagster_home is not None:
            env["DAGSTER_HOME"] = str(dagster_home)
        started = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "pref_pipeline.cli", "run", "--config", str(config),
                                 "--no-progress"], cwd=self.root, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if result.returncode != 0:
            raise SystemExit(f"{self.name}: run failed\n{result.stderr[-3000:]}")
        return seconds


def floor_seconds() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", FLOOR], check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--before", default=None, help="also run the code at this git revision (e.g. afe6458)")
    parser.add_argument("--dagster-home", action="store_true", help="a new DAGSTER_HOME per run (else throwaway)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-fixed-cost-"))
    versions = [Version("now", ROOT)]
    load = [os.getloadavg()[0]]
    with contextlib.ExitStack() as stack:
        if args.before:
            versions.append(Version(f"before ({args.before})", stack.enter_context(checkout(args.before))))
        times: dict[str, list[float]] = {"import floor": [], **{v.name: [] for v in versions}}
        stack.callback(shutil.rmtree, work, ignore_errors=True)
        with CountingServer() as server:
            prompts = write_prompts(work / "fill.jsonl", args.prompts)
            filled = work / "filled-home"
            versions[0].run(write_config(work / "fill.yaml", server.url, prompts), filled, None)
            calls = server.count()
            measure(args, versions, times, load, server, prompts, filled, work)
            assert server.count() == calls, "a measured run called the LLM"
    report(args, versions, times, load, calls)


def measure(args, versions: list[Version], times: dict[str, list[float]], load: list[float], server: CountingServer,
            prompts: Path, filled: Path, work: Path) -> None:
    """The repetitions, each kind once per repetition, the order rotating."""
    n = 0
    for repetition in range(args.repeat):
        kinds = ["import floor", *(v.name for v in versions)]
        shift = repetition % len(kinds)
        for kind in kinds[shift:] + kinds[:shift]:
            if kind == "import floor":
                times[kind].append(floor_seconds())
                continue
            n += 1
            home = work / f"home-{n}"
            shutil.copytree(filled, home)
            batch = work / f"batch{n}.jsonl"  # a new batch (its file name), the same prompts: all cached
            shutil.copy(prompts, batch)
            version = next(v for v in versions if v.name == kind)
            dagster_home = work / f"dagster-{n}" if args.dagster_home else None
            times[kind].append(version.run(write_config(work / f"batch{n}.yaml", server.url, batch), home,
                                           dagster_home))
            shutil.rmtree(home, ignore_errors=True)
        load.append(os.getloadavg()[0])


def report(args, versions: list[Version], times: dict[str, list[float]], load: list[float], calls: int) -> None:
    floor = statistics.median(times["import floor"])
    print(f"\nmachine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average {min(load):.1f} to {max(load):.1f}; "
          f"{args.prompts}-prompt batch, every answer cached (the cold fill made {calls} calls); "
          f"{'a new DAGSTER_HOME' if args.dagster_home else 'throwaway Dagster instance'}; {args.repeat} repetitions, "
          "interleaved\n")
    print(f"{'what':<34} {'median s':>9} {'fastest s':>10} {'x floor':>8}   every run (s)")
    print("-" * 90)
    for kind, values in times.items():
        median = statistics.median(values)
        print(f"{kind:<34} {median:>9.2f} {min(values):>10.2f} {median / floor:>7.2f}x   "
              + " ".join(f"{v:.2f}" for v in values))
    if args.before:
        before, now = statistics.median(times[versions[1].name]), statistics.median(times["now"])
        print(f"\nnow / before: {now / before:.2f} (median); target: now <= 1.5x the import floor")


if __name__ == "__main__":
    main()
