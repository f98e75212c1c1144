"""Benchmark: what a prompt batch costs besides its LLM calls, the way the UI and the CLI run it.

    .venv/bin/python bench/bench_step_overhead.py [--part batch] [--part warm] [--prompts 20]
        [--warm-prompts 500 2000 8000] [--profile 2000] [--no-ui] [--before REV]

Part ``batch`` (the UI's path): one batch of ``--prompts`` prompts (2 generators, 2 candidates per prompt,
1 judge: 4 LLM calls per prompt) against a zero-latency fake OpenAI-compatible server, cold (nothing
cached), run four ways side by side: launched from `dagster dev` through GraphQL (what "Materialize" in
the UI does: queued, a run worker process, the job's executor) with the in-process executor (the
default) and with the multiprocess one (``executor: multiprocess``), and ``dg.execute_job`` with each
executor. For each: the wall time, and the run's event log split into start (queue and run worker
until the run starts, plus each step's process start and resource set-up), LLM (the ``candidates``
and ``judgments`` steps' compute: request building, cache, calls, parsing), gates (the GX suites; the
first one also imports GX), storage (loading inputs and storing outputs: the IO manager, Parquet files),
other steps' compute (pairs, filters, audit, export, history) and what is left (Dagster's own
bookkeeping between steps). Step times are summed: with the multiprocess executor two steps can
run at once, so the parts may add up to more than the wall time.

Part ``warm``: the whole pipeline (every asset of a batch, then the roll-ups, as ``pref-pipeline
run`` does) re-run warm, every answer cached (0 LLM calls), at 500 / 2,000 / 8,000 prompts: wall time
in a fresh process (imports included, as a user runs it), per-step time and the per-prompt
overhead with its growth. The cache is filled once by a cold run of the largest batch (the smaller
batches are its first prompts, so the same requests). ``--profile N`` also runs the warm N-prompt
batch under cProfile in this process and prints the functions with the most own time.

``--before REV`` then runs the same parts with the code at ``REV`` (its own copy of this benchmark, from a
``git worktree``, ``bench/revisions.py``), so both tables come from one run, minutes apart.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import pstats
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import dagster as dg  # noqa: E402


VOCABULARY = [f"{a}{b}" for a in ("ka", "lo", "mi", "nu", "pe", "ri", "su", "to", "vu", "xe") for b in
              ("ban", "cor", "dil", "fen", "gat", "hum", "jor", "kel", "lum", "mop", "nar", "pil")]
TOPICS = ["rivers", "compilers", "gardens", "interest rates", "volcanoes", "sorting", "bread", "orbits",
          "vaccines", "chess", "tides", "databases", "poetry", "bridges", "batteries", "coffee"]
LLM_STEPS = ("candidates", "judgments")
GATE_SUFFIX = "_gate"


# --------------------------------------------------------------------------- the fake server, in its own process

class ServerProcess:
    """The fake OpenAI-compatible server (``tests/fakes``) at zero latency, in a process of its own: in the
    benchmark's process it would share one GIL with ``execute_job`` and the in-process executor, and slow
    both down."""

    SCRIPT = ("import sys; sys.path.insert(0, sys.argv[1]); from tests.fakes import FakeLLMServer\n"
              "with FakeLLMServer(latency_s=0.0) as s:\n"
              "    print(s.openai_base_url, flush=True); sys.stdin.read(); print(len(s.requests), flush=True)\n")

    def __enter__(self) -> ServerProcess:
        self.process = subprocess.Popen([sys.executable, "-c", self.SCRIPT, str(ROOT)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)
        self.url = self.process.stdout.readline().strip()
        return self

    def calls(self) -> int:
        """Stops the server; the number of requests it answered."""
        self.process.stdin.close()
        count = int(self.process.stdout.readline().strip() or 0)
        self.process.wait(timeout=30)
        return count

    def __exit__(self, *exc) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


# --------------------------------------------------------------------------- inputs

def write_prompts(path: Path, n: int, seed: int = 0) -> Path:
    """``n`` distinct prompts (different enough that the near-duplicate filter keeps them all)."""
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        words = " ".join(rng.choices(VOCABULARY, k=12))
        lines.append(json.dumps({"id": f"q{i:06d}", "category": rng.choice(["coding", "factual", "advice"]),
                                 "prompt": f"Question {i} about {rng.choice(TOPICS)}: explain {words}?"}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_config(path: Path, url: str, prompt_files: list[Path], executor: str = "in_process") -> Path:
    sources = "".join(f"  - {{path: '{p}'}}\n" for p in prompt_files)
    path.write_text(
        f"prompts:\n{sources}"
        f"generators:\n  - {{model: 'openai:gen-a', base_url: '{url}', temperature: 0.3}}\n"
        f"  - {{model: 'openai:gen-b', base_url: '{url}', temperature: 0.9}}\n"
        "candidates_per_prompt: 2\n"
        f"judges:\n  - {{model: 'openai:judge', base_url: '{url}'}}\n"
        f"executor: {executor}\n"
        "audit: {plots: false}\n", encoding="utf-8")
    return path


# --------------------------------------------------------------------------- the split of one run

def run_split(instance: dg.DagsterInstance, run_id: str, launched_at: float | None = None) -> dict[str, float]:
    """Seconds by kind, from the run's event log (timestamps in seconds since the epoch)."""
    by_step: dict[str, list] = defaultdict(list)
    run_events: dict[str, float] = {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None:
            continue
        if entry.step_key:
            by_step[entry.step_key].append((entry.timestamp, event.event_type_value, event))
        else:
            run_events.setdefault(event.event_type_value, entry.timestamp)
    start_ts = run_events.get("PIPELINE_START")
    end_ts = run_events.get("PIPELINE_SUCCESS") or run_events.get("PIPELINE_FAILURE")
    split = defaultdict(float)
    first = launched_at if launched_at is not None else run_events.get("PIPELINE_STARTING", start_ts)
    split["launch"] = start_ts - first  # queue, run worker process, loading the code location
    if "PIPELINE_ENQUEUED" in run_events:  # queued (the UI's runs): until the daemon dequeues and launches it
        split["queue"] = run_events["PIPELINE_STARTING"] - first
        split["launch"] -= split["queue"]
    for step, events in by_step.items():
        events.sort(key=lambda e: e[0])
        times = {kind: ts for ts, kind, _ in events}
        if "STEP_START" not in times:
            continue
        step_start = times["STEP_START"]
        if "STEP_WORKER_STARTING" in times:  # multiprocess: the step's own process, imports, resources
            split["step processes"] += step_start - times["STEP_WORKER_STARTING"]
        storage, previous, outputs = 0.0, step_start, {}
        for ts, kind, event in events:
            if kind == "LOADED_INPUT":
                storage += ts - previous
            if kind == "STEP_OUTPUT":
                outputs[event.step_output_data.output_name] = ts
            if kind == "HANDLED_OUTPUT":
                name = event.event_specific_data.output_name
                storage += ts - outputs.get(name, ts)
            if kind in ("LOADED_INPUT", "STEP_START", "STEP_INPUT"):
                previous = ts
        end = times.get("STEP_SUCCESS") or times.get("STEP_FAILURE") or events[-1][0]
        compute = end - step_start - storage
        split["storage"] += storage
        if step in LLM_STEPS:
            split["llm"] += compute
        elif step.endswith(GATE_SUFFIX):
            split["gates"] += compute
        else:
            split["other steps"] += compute
    # The pairs gate runs inside the pairs step: move its own time (check metadata) from there to gates.
    for record in instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        seconds = evaluation.metadata.get("seconds")
        if evaluation.check_name == "preference_pairs_gate" and seconds is not None:
            split["gates"] += seconds.value
            split["other steps"] -= seconds.value
    split["wall"] = (end_ts or start_ts) - first
    split["dagster"] = split["wall"] - sum(v for k, v in split.items() if k != "wall")
    return dict(split)


COLUMNS = ["wall", "queue", "launch", "step processes", "llm", "gates", "storage", "other steps", "dagster"]


def print_table(rows: list[tuple[str, dict[str, float]]]) -> None:
    width = max(len(name) for name, _ in rows)
    print(f"{'how':<{width}}  " + "  ".join(f"{c:>14}" for c in COLUMNS))
    print("-" * (width + 2 + 16 * len(COLUMNS)))
    for name, split in rows:
        print(f"{name:<{width}}  " + "  ".join(f"{split.get(c, 0.0):>13.1f}s" for c in COLUMNS))


# --------------------------------------------------------------------------- part "batch"

def pipeline_job():
    """The code location's pipeline job for the configuration and home in the environment, built in whatever
    process runs it (``dg.reconstructable``); not through the cached ``defs``, so each variant gets its own."""
    from pref_pipeline.definitions import build_definitions, config_from_env
    from pref_pipeline.paths import Home

    return build_definitions(config_from_env(), Home.from_env()).resolve_job_def("preference_pipeline")


def multiprocess_job():
    return pipeline_job()


def in_process_job():  # a second name: Dagster caches a reconstructed job by the function that makes it
    return pipeline_job()


def batch_by_execute_job(work: Path, url: str, n: int, executor: str, seed: int) -> dict[str, float]:
    home, dagster_home = work / f"home-{executor}", work / f"dagster-{executor}"
    dagster_home.mkdir(parents=True)
    prompts = write_prompts(work / f"job-{executor}.jsonl", n, seed)
    config = write_config(work / f"job-{executor}.yaml", url, [prompts], executor)
    os.environ.update({"PREF_PIPELINE_CONFIG": str(config), "PREF_PIPELINE_HOME": str(home)})
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        instance.add_dynamic_partitions("prompt_batches", [prompts.stem])
        started = time.time()
        make_job = multiprocess_job if executor == "multiprocess" else in_process_job
        result = dg.execute_job(dg.reconstructable(make_job), instance=instance,
                                tags={"dagster/partition": prompts.stem})
        assert result.success, f"execute_job ({executor}) failed"
        return run_split(instance, result.run_id, started)


def batch_from_the_ui(work: Path, url: str, n: int, executors: list[str], seed: int) -> dict[str, dict[str, float]]:
    from tests.dagster_dev import dagster_dev, launch_partition_run, reload_location, wait_for_runs

    dagster_home, home = work / "dagster-ui", work / "home-ui"
    dagster_home.mkdir()
    config = work / "ui.yaml"
    write_config(config, url, [], "in_process")
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "PREF_PIPELINE_HOME": str(home),
           "PREF_PIPELINE_CONFIG": str(config)}
    splits = {}
    with dagster_dev(env, work / "dagster-dev.log") as base:
        for i, executor in enumerate(executors):
            prompts = write_prompts(work / f"ui-{executor}.jsonl", n, seed + i)
            write_config(config, url, [prompts], executor)
            reload_location(base)  # the executor is part of the definitions
            with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
                instance.add_dynamic_partitions("prompt_batches", [prompts.stem])
            started = time.time()
            launch_partition_run(base, "preference_pipeline", prompts.stem)
            [run] = wait_for_runs(base, {"tags": [{"key": "dagster/partition", "value": prompts.stem}]}, 1,
                                  timeout_s=600)
            assert run["status"] == "SUCCESS", run
            with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
                splits[executor] = run_split(instance, run["runId"], started)
                runs_events = [(e.timestamp - started, e.dagster_event.event_type_value)
                               for e in instance.all_logs(run["runId"]) if e.dagster_event and not e.step_key]
                print(f"  UI run, {executor}: " + ", ".join(f"{kind} {at:.1f}" for at, kind in runs_events
                                                            if kind.startswith("PIPELINE")))
    return splits


def part_batch(args: argparse.Namespace, work: Path) -> None:
    rows = []
    with ServerProcess() as server:
        url = server.url
        if args.ui:
            ui = batch_from_the_ui(work, url, args.prompts, ["in_process", "multiprocess"], seed=1)
            rows += [("UI (dagster dev, GraphQL launch), in-process executor (default)", ui["in_process"]),
                     ("UI (dagster dev, GraphQL launch), multiprocess executor", ui["multiprocess"])]
        for seed, executor in ((3, "multiprocess"), (4, "in_process")):
            rows.append((f"dg.execute_job, {executor.replace('_', '-')} executor",
                         batch_by_execute_job(work, url, args.prompts, executor, seed)))
        calls = server.calls()
    print(f"\n{args.prompts}-prompt batch, zero-latency server, cold: {calls} LLM calls in all; seconds by kind\n")
    print_table(rows)


# --------------------------------------------------------------------------- part "warm"

def warm_run_in_a_fresh_process(config: Path, home: Path) -> tuple[float, dict]:
    """``pref-pipeline run`` as a user runs it; returns (wall seconds, per-step seconds of the batch run)."""
    dagster_home = Path(tempfile.mkdtemp(prefix="warm-dagster-", dir=home.parent))
    env = {**os.environ, "PREF_PIPELINE_HOME": str(home), "DAGSTER_HOME": str(dagster_home)}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pref_pipeline.cli", "run", "--config", str(config), "--no-progress"],
                   cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - started
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        steps: dict[str, float] = defaultdict(float)
        for run in instance.get_runs():
            for record in instance.get_records_for_run(run.run_id, of_type={
                    dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS}).records:
                entry = record.event_log_entry
                sign = -1 if entry.dagster_event.event_type_value == "STEP_START" else 1
                steps[entry.step_key] += sign * entry.timestamp
    shutil.rmtree(dagster_home, ignore_errors=True)
    return wall, dict(steps)


def part_warm(args: argparse.Namespace, work: Path) -> None:
    from tests.fakes import FakeLLMServer  # here: warm runs make no call, and counting them needs the server's list

    sizes = sorted(args.warm_prompts)
    biggest = write_prompts(work / f"warm-{sizes[-1]}.jsonl", sizes[-1])
    lines = biggest.read_text(encoding="utf-8").splitlines(keepends=True)
    home = work / "warm-home"
    with FakeLLMServer(latency_s=0.0) as server:
        url = server.openai_base_url
        configs = {}
        for n in sizes:
            prompts = work / f"warm-{n}.jsonl"
            if n != sizes[-1]:
                prompts.write_text("".join(lines[:n]), encoding="utf-8")
            configs[n] = write_config(work / f"warm-{n}.yaml", url, [prompts])
        started = time.perf_counter()
        warm_run_in_a_fresh_process(configs[sizes[-1]], home)  # cold: fills the cache for every size
        cold = time.perf_counter() - started
        filled = len(server.requests)
        results = {}
        for n in sizes:  # the fastest of --repeat runs: the machine is shared, noise only adds time
            results[n] = min((warm_run_in_a_fresh_process(configs[n], home) for _ in range(args.repeat)),
                             key=lambda result: result[0])
        assert len(server.requests) == filled, "a warm run called the LLM"
        if args.profile:
            profile_warm(configs[args.profile], home)
            assert len(server.requests) == filled, "a warm run called the LLM"
    print(f"\nwarm re-runs (every answer cached: 0 LLM calls), `pref-pipeline run` in a fresh process, fastest of "
          f"{args.repeat}; "
          f"cold fill of {sizes[-1]} prompts: {filled} calls in {cold:.0f} s\n")
    step_names = sorted({s for _, steps in results.values() for s in steps},
                        key=lambda s: -results[sizes[-1]][1].get(s, 0))
    shown = step_names[:8]
    print(f"{'prompts':>7}  {'wall s':>7}  {'ms/prompt':>9}  " + "  ".join(f"{s[:14]:>14}" for s in shown))
    print("-" * (30 + 16 * len(shown)))
    for n in sizes:
        wall, steps = results[n]
        print(f"{n:>7}  {wall:>7.1f}  {1000 * wall / n:>9.2f}  " + "  ".join(f"{steps.get(s, 0):>14.2f}" for s in shown))
    if len(sizes) > 1:
        (n0, (w0, s0)), (n1, (w1, s1)) = (sizes[0], results[sizes[0]]), (sizes[-1], results[sizes[-1]])
        print(f"\nmarginal cost from {n0} to {n1} prompts: {1000 * (w1 - w0) / (n1 - n0):.3f} ms per prompt; "
              f"fixed cost (wall at 0 prompts, extrapolated): {w0 - (w1 - w0) / (n1 - n0) * n0:.1f} s")
        growth = {step: 1000 * (s1.get(step, 0) - s0.get(step, 0)) / (n1 - n0) for step in step_names}
        growth["(outside the steps: process, imports, preflight, Dagster)"] = (
            1000 * ((w1 - sum(s1.values())) - (w0 - sum(s0.values()))) / (n1 - n0))
        print(f"\nper step, ms per additional prompt from {n0} to {n1}:")
        for step, ms in sorted(growth.items(), key=lambda item: -item[1]):
            print(f"  {ms:6.3f}  {step}")


def profile_warm(config: Path, home: Path) -> None:
    from pref_pipeline.config import load_config
    from pref_pipeline.runs import run_batches
    from pref_pipeline.paths import Home

    profiler = cProfile.Profile()
    profiler.enable()
    run = run_batches(load_config(config), Home.at(home))
    profiler.disable()
    assert run.success
    profiler.dump_stats(config.with_suffix(".prof"))
    print(f"\ncProfile of the warm run of {config.stem} in this process (own time, top 25; all of it in "
          f"{config.with_suffix('.prof')}):\n")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", action="append", choices=["batch", "warm"])
    parser.add_argument("--prompts", type=int, default=20)
    parser.add_argument("--warm-prompts", type=int, nargs="+", default=[500, 2000, 8000])
    parser.add_argument("--repeat", type=int, default=2, help="warm runs per size (the fastest is shown)")
    parser.add_argument("--profile", type=int, default=None, help="also profile the warm run of this size")
    parser.add_argument("--no-ui", dest="ui", action="store_false", help="skip the dagster dev rows")
    parser.add_argument("--keep", type=Path, default=None, help="work folder to keep (default: a temporary one)")
    parser.add_argument("--before", default=None, help="then the same parts with the code at this git revision "
                        "(its own copy of this benchmark, in a worktree under /tmp)")
    args = parser.parse_args()
    parts = args.part or ["batch", "warm"]
    import duckdb
    import pandas as pd

    print(f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, dagster {dg.__version__}, "
          f"pandas {pd.__version__}, duckdb {duckdb.__version__}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
          f"load average {os.getloadavg()[0]:.1f}")
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-step-overhead-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        if "batch" in parts:
            part_batch(args, work)
        if "warm" in parts:
            part_warm(args, work)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    if args.before:
        run_before(args.before)


def run_before(rev: str) -> None:
    """This benchmark's copy at ``rev``, run with the code there, right after this one (same arguments)."""
    sys.path.insert(0, str(ROOT / "bench"))
    from revisions import checkout, env_for

    argv = sys.argv[1:]
    at = argv.index("--before")
    argv = argv[:at] + argv[at + 2:]
    print(f"\nbefore ({rev}): the same, with the code and this benchmark at {rev}", flush=True)
    with checkout(rev) as tree:
        subprocess.run([sys.executable, str(tree / "bench" / "bench_step_overhead.py"), *argv], cwd=tree,
                       env=env_for(tree), check=True)


if __name__ == "__main__":
    main()
