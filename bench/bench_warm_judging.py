"""Benchmark: the garbage collector's share of a warm LLM step (every answer cached), side by side.

    .venv/bin/python bench/bench_warm_judging.py [--prompts 4000] [--repeat 3]

A warm re-run makes no call, yet its ``candidates`` and ``judgments`` steps used to cost 0.3-1.0 ms per
prompt. Most of it was Python's cyclic garbage collector: Dagster, pandas and GX leave ~400,000 long-lived
objects in the process, and every full collection walks them all while the step keeps thousands of
answers alive (a judge answer with log-probabilities was ~100 objects more). The pipeline now freezes the
heap once the libraries are loaded (``runner.freeze_heap``: in ``build_definitions`` and after GX's
import) and keeps log-probabilities as one JSON string.

One cold ``pref-pipeline run`` fills the cache against a zero-latency fake server (its own process);
then each variant runs in a fresh process with the heap a real run has (Dagster, GX, the definitions
built), timing the warm ``generate_candidates`` and ``judge_comparisons`` (the two LLM steps without
Dagster's storage), variants interleaved, fastest of ``--repeat``:

- ``heap frozen``: what the pipeline does now;
- ``heap not frozen``: the same with ``gc.unfreeze()`` after set-up;
- ``before (lists)``: not frozen, and each cached answer's log-probabilities turned back into the list of
  dicts they used to be kept as (what the pipeline did before);
- ``no cyclic gc``: ``gc.disable()``, the floor.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_step_overhead import ServerProcess, write_config, write_prompts  # noqa: E402

VARIANTS = {"heap frozen": "frozen", "heap not frozen": "unfrozen", "before (lists)": "before", "no cyclic gc": "nogc"}

# Runs in a fresh process: set up as a run does, then time the two warm LLM steps.
CHILD = """
import gc, json, sys, time
sys.path.insert(0, sys.argv[1])
import great_expectations  # noqa: F401  (a run imports GX for its gates)
from pref_pipeline import gates
from pref_pipeline.config import load_config
from pref_pipeline.definitions import build_definitions
from pref_pipeline.generation import generate_candidates
from pref_pipeline.judgments import judge_comparisons
from pref_pipeline.paths import Home
from pref_pipeline.providers.client import CallSettings
from pref_pipeline.sources import load_prompts
from pref_pipeline.store import read_table

config, home, variant = load_config(sys.argv[2]), Home.at(sys.argv[3]), sys.argv[4]
build_definitions(config, home)
gates._context()
if variant in ("unfrozen", "before"):
    gc.unfreeze()
if variant == "before":
    from pref_pipeline.providers import cache

    plain_get = cache.ResponseCache.get

    def get_as_lists(self, key):
        hit = plain_get(self, key)
        if hit is not None and isinstance(hit.extra.get("token_logprobs"), str):
            hit.extra["token_logprobs"] = json.loads(hit.extra["token_logprobs"])
        return hit

    cache.ResponseCache.get = get_as_lists
elif variant == "nogc":
    gc.disable()
calls = CallSettings.under(home)
prompts = load_prompts(config.prompts).prompts
stored = read_table(home, "candidates")
started = time.perf_counter()
generated = generate_candidates(prompts, config, calls)
middle = time.perf_counter()
judged = judge_comparisons(prompts, stored, config, calls)
done = time.perf_counter()
print(json.dumps({"objects": len(gc.get_objects()) + gc.get_freeze_count(), "candidates": middle - started,
                  "judgments": done - middle, "rows": [len(generated.candidates), len(judged.judgments)],
                  "usage": [generated.usage, judged.usage]}, default=str))
"""


def run_variant(config: Path, home: Path, variant: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(ROOT), str(config), str(home), variant],
                         check=True, capture_output=True, text=True, env={**os.environ, "PREF_PIPELINE_HOME": str(home)})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=4000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-warm-judging-"))
    try:
        home = work / "home"
        with ServerProcess() as server:
            prompts = write_prompts(work / "prompts.jsonl", args.prompts)
            config = write_config(work / "pipeline.yaml", server.url, [prompts])
            subprocess.run([str(Path(sys.executable).parent / "pref-pipeline"), "run", "--config", str(config),
                            "--no-progress"], check=True, capture_output=True,
                           env={**os.environ, "PREF_PIPELINE_HOME": str(home), "DAGSTER_HOME": str(work / "dg")})
            cold_calls = server.calls()
        best: dict[str, dict] = {}
        for _ in range(args.repeat):
            for label, variant in VARIANTS.items():  # interleaved, so a noisy moment hits every variant
                result = run_variant(config, home, variant)
                assert not any(u and u["calls"] for u in result["usage"]), f"a warm run made a call: {result['usage']}"
                total = result["candidates"] + result["judgments"]
                if label not in best or total < best[label]["candidates"] + best[label]["judgments"]:
                    best[label] = result
        n = args.prompts
        base = best["heap frozen"]
        print(f"{n} prompts warm (cache filled by one cold run: {cold_calls} calls); "
              f"{base['rows'][0]} candidates, {base['rows'][1]} verdicts; fastest of {args.repeat}; "
              f"load average {os.getloadavg()[0]:.1f}")
        print(f"{'variant':18} {'candidates s':>13} {'judgments s':>12} {'ms/prompt':>10} {'vs frozen':>10}")
        for label, result in best.items():
            total = result["candidates"] + result["judgments"]
            ratio = total / (base["candidates"] + base["judgments"])
            print(f"{label:18} {result['candidates']:13.2f} {result['judgments']:12.2f} {1000 * total / n:10.3f} "
                  f"{ratio:9.2f}x")
        print(f"objects in the heap after set-up: {base['objects']:,}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
