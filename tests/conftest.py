"""Shared fixtures: an isolated PREF_PIPELINE_HOME per test and prompt files to read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

SAMPLE_PROMPTS = [
    {"id": "p1", "category": "factual", "prompt": "What causes the seasons on Earth?"},
    {"id": "p2", "category": "coding", "prompt": "What is the difference between a list and a tuple in Python?"},
    {"id": "p3", "category": "advice", "prompt": "How can I prepare for a job interview in one evening?"},
]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh PREF_PIPELINE_HOME, so tests never share tables or exports."""
    root = tmp_path / "home"
    monkeypatch.setenv("PREF_PIPELINE_HOME", str(root))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    for key in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(key, raising=False)
    return root


@pytest.fixture
def prompts_file(tmp_path: Path) -> Path:
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in SAMPLE_PROMPTS), encoding="utf-8")
    return path


def calls():
    """The LLM call settings of a run in the test's home (its response cache and provider-batch folder)."""
    from pref_pipeline.paths import Home
    from pref_pipeline.providers.client import CallSettings

    return CallSettings.under(Home.from_env().ensure())


def generate(prompts, config):
    """``generate_candidates`` in the test's home: the ``Generated`` (candidates and usage)."""
    from pref_pipeline.generation import generate_candidates

    return generate_candidates(prompts, config, calls())


def judge(prompts, candidates, config):
    """``judge_comparisons`` in the test's home: the ``Judged`` (judgments and usage)."""
    from pref_pipeline.judgments import judge_comparisons

    return judge_comparisons(prompts, candidates, config, calls())


def resources(progress: bool = False) -> dict:
    """The pipeline's Dagster resources for the test's home."""
    from assets.resources import pipeline_resources
    from pref_pipeline.paths import Home

    return pipeline_resources(Home.from_env().ensure(), progress=progress)
