"""Benchmark: peak memory (RSS) and wall time of a whole `pref-pipeline run` of 2,000 prompts.

    .venv/bin/python bench/bench_run_memory.py [--prompts 2000] [--concurrency 32] [--latency 0.01] [--keep DIR]

The fake OpenAI-compatible server of the tests (``tests/fakes/llm_server.py``) answers on 127.0.0.1; the
run is the real CLI in a child process (two generators, one judge: 2 candidates per prompt and both orders
of each comparison, 8,000 calls for 2,000 prompts). Peak RSS is the child's ``ru_maxrss``
(``resource.getrusage(RUSAGE_CHILDREN)``, the same figure ``/usr/bin/time -v`` prints as "Maximum resident
set size"). Prints one table; docs/reliability.md quotes it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.cli_runs import cli_env, prompt_rows, write_config  # noqa: E402
from tests.fakes import FakeLLMServer  # noqa: E402
from tests.helpers import write_prompts  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32, help="max_concurrency of each model")
    parser.add_argument("--latency", type=float, default=0.01, help="the fake server's answer time, seconds")
    parser.add_argument("--keep", type=Path, default=None, help="run in this folder and keep it")
    args = parser.parse_args()

    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench-run-memory-"))
    folder.mkdir(parents=True, exist_ok=True)
    with FakeLLMServer(latency_s=args.latency) as server:
        write_prompts(folder / "prompts.jsonl", prompt_rows(args.prompts))
        config = write_config(folder / "pipeline.yaml", server.openai_base_url, ["prompts.jsonl"],
                              concurrency=args.concurrency)
        started = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "pref_pipeline.cli", "run", "--config", str(config),
                                 "--no-progress"], cwd=ROOT, env=cli_env(folder / "home"),
                                capture_output=True, text=True)
        wall = time.perf_counter() - started
        calls = server.count("/chat/completions")
    if result.returncode != 0:
        sys.exit(f"the run failed ({result.returncode}):\n{result.stderr[-4000:]}")
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
    exported = folder / "home" / "exports" / "preference_pairs.jsonl"
    pairs = sum(1 for line in exported.read_text().splitlines() if line.strip())
    database_mb = sum(f.stat().st_size for f in (folder / "home" / "tables").rglob("*.parquet")) / 2**20
    rows = [("prompts", f"{args.prompts:,}"), ("LLM calls", f"{calls:,}"), ("pairs exported", f"{pairs:,}"),
            ("wall time", f"{wall:.1f} s"), ("calls per second (whole run)", f"{calls / wall:.0f}"),
            ("peak RSS of the run", f"{peak_kib / 1024:.0f} MB"), ("Parquet tables", f"{database_mb:.1f} MB")]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print(json.dumps({"prompts": args.prompts, "calls": calls, "pairs": pairs, "wall_s": round(wall, 1),
                      "peak_rss_mb": round(peak_kib / 1024), "concurrency": args.concurrency,
                      "latency_s": args.latency, "cpus": os.cpu_count()}))
    if args.keep is None:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
