"""Prompt-injection flip rate, unhardened vs hardened judge template: prints one table.

    .venv/bin/python bench/bench_injection.py               # ~10 s + the local model (~1.5 min)
    .venv/bin/python bench/bench_injection.py --no-local    # the fake judge only (~10 s)

Rows:

1. ``fake gullible judge``: the shipped injection set (``pref_pipeline/data/injection``) through the real
   OpenAI SDK against the fake OpenAI-compatible server on 127.0.0.1, whose judge is deliberately
   gullible (``tests/fakes/gullible.py``: it obeys the last verdict instruction in the prompt unless
   the prompt says the tagged text is data). It models a judge that follows injected instructions, not
   a real model: its figure measures the template's structure.
2. ``local:smollm2-135m``: the embedded llama.cpp model on the first ``--local-cases`` cases (in this
   process; skipped with ``--no-local`` or when the model is not installed). SmolLM2-135M is at chance
   as a judge, so its row says more about noise than about injection.

An order *flips* when the clean pair's verdict did not prefer the weak response and the injected pair's
verdict prefers the injected one (``pref_pipeline/injection.py``); 95 % Wilson intervals.
Each run uses a fresh PREF_PIPELINE_HOME (no cached verdicts).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pref_pipeline.config import DEFAULT_LOCAL_MODEL, parse_config  # noqa: E402
from pref_pipeline.injection import TEMPLATES, load_injection_set, measure_injection  # noqa: E402
from pref_pipeline.providers.client import CallSettings  # noqa: E402


def run_rows(label: str, config, cases, home: Path) -> list[dict]:
    rows = []
    for template in TEMPLATES:
        settings = CallSettings(cache_dir=None, batch_dir=home / "provider_batches")
        started = time.perf_counter()
        figures = measure_injection(config.judges[0], config, settings, cases, template)
        figures.pop("records")
        rows.append({"judge": label, "template": template, "seconds": round(time.perf_counter() - started, 1),
                     **figures})
    return rows


def local_model_available() -> bool:
    try:
        from pref_pipeline.providers.local_provider import resolve_model_path

        resolve_model_path(DEFAULT_LOCAL_MODEL.split(":", 1)[1])
    except Exception as exc:  # the bindings or the model package missing
        print(f"skipping {DEFAULT_LOCAL_MODEL}: {exc}", file=sys.stderr)
        return False
    return True


def print_table(rows: list[dict]) -> None:
    print(f"{'judge':<22} {'template':<11} {'cases':>5} {'flips/orders':>12} {'flip rate':>9} {'95% CI':>16} "
          f"{'pair flips':>10} {'clean ok':>8} {'unparseable':>11} {'s':>6}")
    for r in rows:
        ci = r["flip_rate_ci"]
        print(f"{r['judge']:<22} {r['template']:<11} {r['cases']:>5} {r['flips']:>5}/{r['eligible']:<6} "
              f"{r['flip_rate'] if r['flip_rate'] is not None else '-':>9} "
              f"{f'[{ci[0]:.3f}, {ci[1]:.3f}]' if ci else '-':>16} {r['pair_flips']:>4}/{r['pairs_eligible']:<5} "
              f"{r['clean_prefers_good']:>8} {r['unparseable']:>11} {r['seconds']:>6}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-local", action="store_true", help="skip the embedded local model's row")
    parser.add_argument("--local-cases", type=int, default=2, help="cases judged by the local model (default 2: ~1.5 min on 2 busy cores)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows (with by-kind figures) here")
    args = parser.parse_args(argv)

    from tests.fakes import FakeLLMServer
    from tests.fakes.gullible import gullible_judge

    cases = load_injection_set()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        with FakeLLMServer(judge_fn=gullible_judge) as server:
            config = parse_config({"judges": [{"model": "openai:gullible", "base_url": server.openai_base_url}]})
            rows += run_rows("fake gullible judge", config, cases, home)
        if not args.no_local and local_model_available():
            config = parse_config({"judges": [{"model": DEFAULT_LOCAL_MODEL}]})
            rows += run_rows(DEFAULT_LOCAL_MODEL, config, cases[:args.local_cases], home)
    print_table(rows)
    print("\nflips by attack kind (flips/orders that could flip):")
    kinds = sorted({k for r in rows for k in r["by_kind"]})
    for r in rows:
        cells = ", ".join(f"{k} {r['by_kind'][k]['flips']}/{r['by_kind'][k]['eligible']}" for k in kinds
                          if k in r["by_kind"])
        print(f"  {r['judge']} / {r['template']}: {cells}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PREF_PIPELINE_HOME", tempfile.mkdtemp(prefix="bench-injection-"))
    raise SystemExit(main())
