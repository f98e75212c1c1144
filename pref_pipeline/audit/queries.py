"""The audit's SQL, one statement per file under ``pref_pipeline/audit/sql/`` (package data)."""

from __future__ import annotations

from functools import cache
from importlib.resources import files


@cache
def sql(name: str) -> str:
    """The text of ``sql/<name>.sql``."""
    return files("pref_pipeline.audit").joinpath("sql", f"{name}.sql").read_text(encoding="utf-8")
