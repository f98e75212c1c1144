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


@pytest.fixture(scope="session")
def label_studio_server(tmp_path_factory: pytest.TempPathFactory):
    """One real Label Studio for the session (tests/fakes/label_studio.py). Skipped only where its venv is absent
    and not in CI: CI=true fails instead, so a CI without it is noticed."""
    from tests.fakes.label_studio import LABEL_STUDIO_VENV, available, label_studio

    if not available():
        message = f"Label Studio's venv {LABEL_STUDIO_VENV} is missing: bash scripts/setup.sh --tests makes it"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    with label_studio(tmp_path_factory.mktemp("label-studio")) as server:
        yield server
