"""Where a run writes: one home (``PREF_PIPELINE_HOME``, default ``./.pref_pipeline``) holds it all.

The home is a local folder or an object-store URL (``s3://bucket/prefix``, through fsspec/UPath).
Tables are Parquet files under ``<home>/tables`` (``pref_pipeline/table_files.py``). What must be a
local file (the response cache, the SQLite rate-limit file, pending provider batch jobs, exports,
reports) lives in the local home: the home itself when it is a folder, else ``PREF_PIPELINE_LOCAL_HOME``
(default ``./.pref_pipeline_local``).

The core never reads the environment: it is given a ``Home``. Only the CLI and the Dagster code
location turn ``PREF_PIPELINE_HOME`` into one (``Home.from_env``); Dagster assets reach it through
the ``home`` resource (``assets/resources.py``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from upath import UPath

HOME_ENV = "PREF_PIPELINE_HOME"
LOCAL_HOME_ENV = "PREF_PIPELINE_LOCAL_HOME"
DEFAULT_HOME = ".pref_pipeline"
DEFAULT_LOCAL_HOME = ".pref_pipeline_local"  # the local files of an object-store home
TABLES_FOLDER = "tables"
OLD_DATABASE_FILE = "pref_pipeline.duckdb"  # the old single-file layout, refused with a clear error
SCHEMA = "pref"


class OldLayoutError(RuntimeError):
    """The home holds the single DuckDB file of the old layout and no Parquet tables (``table_files.check_layout``)."""


def is_url(location: str | Path) -> bool:
    """True for an object-store location (``s3://...``, ``memory://...``); a plain or ``file://`` path is local."""
    text = str(location)
    return "://" in text and not text.startswith("file://")


@dataclass(frozen=True)
class Home:
    root: Path  # the local home: every file that must be local (and, for a local home, the tables too)
    url: str | None = None  # the object-store home, when there is one: the tables live there

    @classmethod
    def from_env(cls) -> Home:
        """For the CLI and the code location only: the home ``PREF_PIPELINE_HOME`` names (and, for an object-store
        home, the local folder ``PREF_PIPELINE_LOCAL_HOME`` names)."""
        return cls.at(os.environ.get(HOME_ENV, DEFAULT_HOME), local=os.environ.get(LOCAL_HOME_ENV) or None)

    @classmethod
    def at(cls, root: str | Path, local: str | Path | None = None) -> Home:
        """A home at a folder or an object-store URL; ``local`` (an object-store home's local files) defaults to
        ``./.pref_pipeline_local``. A local home keeps everything in its folder."""
        text = str(root)
        if is_url(text):
            return cls(Path(local or DEFAULT_LOCAL_HOME).expanduser().resolve(), url=text.rstrip("/"))
        if text.startswith("file://"):
            text = text[len("file://"):]
        return cls(Path(text).expanduser().resolve())

    @property
    def location(self) -> str:
        """The home as given: its URL, or its folder."""
        return self.url or str(self.root)

    @property
    def tables(self) -> UPath:
        """Every table's Parquet files: ``<home>/tables/<table>/batch=<key>/*.parquet``."""
        from upath import UPath  # fsspec: imported when tables are touched, not by every command

        return UPath(self.url) / TABLES_FOLDER if self.url else UPath(self.root / TABLES_FOLDER)

    @property
    def old_database(self) -> UPath:
        """Where the single DuckDB file of the old layout was (``table_files.OldLayoutError``)."""
        from upath import UPath

        return UPath(self.url) / OLD_DATABASE_FILE if self.url else UPath(self.root / OLD_DATABASE_FILE)

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

    @property
    def logs(self) -> Path:
        """Dagster's event log of each ``pref-pipeline run`` (``run-<time>.log``)."""
        return self.root / "logs"

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
