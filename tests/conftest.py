"""Fixtures: an isolated PREF_PIPELINE_HOME per test and a prompt file to read (helpers: tests/helpers.py)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# `datasets` and `huggingface_hub` keep their caches under HF_HOME, read when they are imported: the tests' go to
# a folder of their own, never the user's.
os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="pref-pipeline-tests-hf-"))

from tests.helpers import SAMPLE_PROMPTS, use_home, write_prompts  # noqa: E402


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh PREF_PIPELINE_HOME, so tests never share tables or exports."""
    return use_home(monkeypatch, tmp_path / "home")


@pytest.fixture
def prompts_file(tmp_path: Path) -> Path:
    return write_prompts(tmp_path / "prompts.jsonl", SAMPLE_PROMPTS)
