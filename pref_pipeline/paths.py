"""Where a run writes: one folder (``PREF_PIPELINE_HOME``, default ``./.pref_pipeline``) holds it all.

The core never reads the environment: it is given a ``Home``. Only the CLI and the Dagster code
location turn ``PREF_PIPELINE_HOME`` into one (``Home.from_env``); Dagster assets reach it through
the ``home`` resource (``assets/resources.py``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

HOME_ENV = "PREF_PIPELINE_HOME"
DEFAULT_HOME = ".pref_pipeline"
DATABASE_FILE = "pref_pipeline.duckdb"  # not named like its schema ("pref"): DuckDB finds that ambiguous
SCHEMA = "pref"


@dataclass(frozen=True)
class Home:
    root: Path

    @classmethod
    def from_env(cls) -> Home:
        """For the CLI and the code location only: the home ``PREF_PIPELINE_HOME`` names."""
        return cls.at(os.environ.get(HOME_ENV, DEFAULT_HOME))

    @classmethod
    def at(cls, root: str | Path) -> Home:
        return cls(Path(root).expanduser().resolve())

    @property
    def database(self) -> Path:
        return self.root / DATABASE_FILE

    @property
    def exports(self) -> Path:
        return self.root / "exports"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def provider_batches(self) -> Path:
        """Pending provider batch-API jobs (OpenAI Batch, Anthropic Message Batches), so a restart resumes them."""
        return self.root / "llm_batches"

    def batch_exports(self, batch: str) -> Path:
        """One prompt batch's published pairs."""
        return self.exports / "batches" / batch

    def batch_reports(self, batch: str) -> Path:
        """One prompt batch's own audit."""
        return self.reports / "batches" / batch

    def ensure(self) -> Home:
        for folder in (self.root, self.exports, self.reports, self.cache):
            folder.mkdir(parents=True, exist_ok=True)
        return self
