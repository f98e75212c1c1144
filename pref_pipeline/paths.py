"""Where a run writes: everything lives under ``PREF_PIPELINE_HOME`` (default ``./.pref_pipeline``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DATABASE_FILE = "pref_pipeline.duckdb"  # not named like its schema ("pref"): DuckDB finds that ambiguous
SCHEMA = "pref"


@dataclass(frozen=True)
class Home:
    root: Path

    @classmethod
    def from_env(cls) -> Home:
        return cls(Path(os.environ.get("PREF_PIPELINE_HOME", ".pref_pipeline")).resolve())

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

    def ensure(self) -> Home:
        for folder in (self.root, self.exports, self.reports, self.cache):
            folder.mkdir(parents=True, exist_ok=True)
        return self
