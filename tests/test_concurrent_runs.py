"""Two runs at once on one home, through the real CLI in two processes, against one local server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import SAMPLE_PROMPTS
from tests.fakes import FakeLLMServer

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def write_config(folder: Path, base_url: str) -> Path:
    prompts = folder / "prompts.jsonl"
    prompts.write_text("".join(json.dumps(p) + "\n" for p in SAMPLE_PROMPTS), encoding="utf-8")
    config = folder / "pipeline.yaml"
    config.write_text(
        "prompts:\n  - path: prompts.jsonl\n"
        f"generators:\n  - model: openai:gen-a\n    base_url: {base_url}\n    temperature: 0.3\n"
        f"  - model: openai:gen-b\n    base_url: {base_url}\n    temperature: 0.9\n"
        f"judges:\n  - model: openai:judge\n    base_url: {base_url}\n", encoding="utf-8")
    return config


def test_the_same_batch_started_twice_at_once_pays_once(home, tmp_path):
    """Both runs finish; the second waits for the first's calls and takes them from the cache."""
    with FakeLLMServer(latency_s=0.3) as server:
        config = write_config(tmp_path, server.openai_base_url)
        env = {**os.environ, "PREF_PIPELINE_HOME": str(home)}
        runs = [subprocess.Popen([str(BIN / "pref-pipeline"), "run", "--config", str(config)], cwd=ROOT, env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        outputs = [run.communicate(timeout=600) for run in runs]
        paid = server.count("/chat/completions")
    assert [run.returncode for run in runs] == [0, 0], [err[-3000:] for _, err in outputs]
    # One run: 3 prompts x 2 candidates, then 3 comparisons x 2 orders. Nothing was asked twice.
    assert paid == 3 * 2 + 3 * 2
    rows = (home / "exports" / "preference_pairs.jsonl").read_text().splitlines()
    assert len(rows) == len({json.loads(row)["pair_id"] for row in rows}) > 0  # no duplicated pair
