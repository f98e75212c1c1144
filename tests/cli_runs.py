"""Helpers for the reliability tests, beside tests/helpers.py: `pref-pipeline run` in its own process against
a fake server, the home's tables and files read back whole, and the figures a test measured kept for
docs/reliability.md.

Figures are written to ``test-artifacts/reliability/<name>.json`` (docs/reliability.md
quotes them; a run of the tests refreshes them).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pandas as pd

from pref_pipeline.paths import Home
from pref_pipeline.table_files import read_tables
from tests.helpers import BIN, ROOT

FIGURES = ROOT / "test-artifacts" / "reliability"
SCHEMA = "pref"

TOPICS = ("tides", "compilers", "sourdough", "glaciers", "chess openings", "tax brackets", "bird migration",
          "solar panels", "jazz harmony", "vaccines", "bridges", "coral reefs", "interest rates", "origami",
          "volcanoes", "databases", "sleep", "bees", "lighthouses", "rainbows")
ASKS = ("Explain {t} to a ten-year-old.", "What is the most common misconception about {t}?",
        "Give three practical tips about {t}.", "How did our understanding of {t} change over time?",
        "Write a short poem about {t}.", "What would happen if {t} disappeared tomorrow?",
        "Compare {t} with something from everyday life.", "Which question about {t} is still open?",
        "Summarise the history of {t} in two sentences.", "What should a beginner read first about {t}?")


def prompt_rows(n: int, tag: str = "") -> list[dict]:
    """``n`` distinct prompts (no two near-duplicates), each with an id and a category."""
    rows, combinations = [], len(TOPICS) * len(ASKS)
    for i in range(n):
        topic, ask = TOPICS[i % len(TOPICS)], ASKS[(i // len(TOPICS)) % len(ASKS)]
        round_ = f" (round {i // combinations + 1})" if i >= combinations else ""
        rows.append({"id": f"{tag}p{i}", "category": topic,
                     "prompt": ask.format(t=topic) + round_ + (f" [{tag}]" if tag else "")})
    return rows


def write_config(path: Path, base_url: str, prompt_files: list[str], *, concurrency: int = 4,
                 extra_model: str = "", extra: str = "") -> Path:
    """Two generators and one judge on the fake server; the near-duplicate-prompt filter off (the test
    prompts share their wording on purpose)."""
    models = "".join(f"  - model: openai:{name}\n    base_url: {base_url}\n    max_concurrency: {concurrency}\n"
                     f"    temperature: {temperature}\n{extra_model}" for name, temperature in
                     (("gen-a", 0.3), ("gen-b", 0.9)))
    path.write_text(
        "prompts:\n" + "".join(f"  - path: {p}\n" for p in prompt_files)
        + f"generators:\n{models}"
        + f"judges:\n  - model: openai:judge\n    base_url: {base_url}\n    max_concurrency: {concurrency}\n{extra_model}"
        + "filters:\n  near_duplicate_prompt_threshold: null\n" + extra, encoding="utf-8")
    return path


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "OPENAI_API_KEY", "OPENAI_BASE_URL")}
    return {**env, "PREF_PIPELINE_HOME": str(home), **extra}


def start_run(config: Path, env: dict[str, str]) -> subprocess.Popen:
    """`pref-pipeline run --config` in its own process group (so a test can kill the whole group)."""
    return subprocess.Popen([str(BIN / "pref-pipeline"), "run", "--config", str(config), "--no-progress"], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def run_cli(config: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "pref-pipeline"), "run", "--config", str(config), "--no-progress"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout)


def tables(home: Path | str) -> dict[str, pd.DataFrame]:
    """Every table the pipeline stored under the home, read whole (this fails on a damaged file)."""
    return read_tables(Home.at(home))


def exported_pairs(home: Path) -> list[dict]:
    """The published dataset, each line parsed (a half-written line fails here)."""
    path = home / "exports" / "preference_pairs.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def assert_outputs_whole(home: Path) -> dict[str, int]:
    """Every published file under the home is whole: JSON and JSONL parse, Parquet reads, and the Parquet
    and JSONL of a folder hold the same pairs. Returns the files checked by kind."""
    checked = {"jsonl": 0, "parquet": 0, "json": 0, "md": 0}
    for folder in (home / "exports", home / "reports"):
        for path in sorted(folder.rglob("*")) if folder.exists() else []:
            if path.name.startswith(".") or not path.is_file():
                continue  # a temporary file of an interrupted write is never read by anything
            if path.suffix == ".jsonl":
                [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
                parquet = path.with_suffix(".parquet")
                if parquet.exists():
                    ids = {json.loads(line)["pair_id"] for line in path.read_text().splitlines() if line.strip()}
                    frame = pd.read_parquet(parquet)
                    assert (set(frame["pair_id"]) if len(frame) else set()) == ids, f"{path} and {parquet} differ"
            elif path.suffix == ".parquet":
                pd.read_parquet(path)
            elif path.suffix == ".json":
                json.loads(path.read_text(encoding="utf-8"))
            elif path.suffix == ".md":
                assert path.read_text(encoding="utf-8").strip(), f"{path} is empty"
            else:
                continue
            checked[path.suffix.lstrip(".")] += 1
    return checked


def record_figures(name: str, figures: dict) -> None:
    """Keep what a test measured in ``test-artifacts/reliability/<name>.json`` (and show it with ``-s``)."""
    FIGURES.mkdir(parents=True, exist_ok=True)
    (FIGURES / f"{name}.json").write_text(json.dumps(figures, indent=2, sort_keys=True, default=str) + "\n")
    print(f"\n{name}: {json.dumps(figures, sort_keys=True, default=str)}")
