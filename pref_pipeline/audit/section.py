"""What an audit section is: a module with a name, figures from SQL, its part of the report, its warnings.

A section module defines

- ``NAME``: a short name (``length``, ``position``, ...);
- ``compute(con, context) -> dict``: its figures, as top-level ``audit.json`` keys it owns (e.g.
  ``{"position_bias": {...}}``), from a connection where the relations of ``relations.RELATIONS`` and
  the shared views (``kept_pairs``, ``parsed``, ``both_orders``) are in place;
- ``render(figures, images) -> str``: its Markdown, from the whole audit dict and the plot images
  (name -> file name or ``data:`` URI);
- optionally ``flags(figures) -> list[str]``: its warnings, read from the whole audit dict.

Sections run, render and flag in the order of ``pref_pipeline.audit.SECTIONS``: a new section is one
module and one line there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import duckdb

LENGTH_BIAS_BAND = 0.15  # flag when the longer response wins more than 0.5 ± this


@dataclass(frozen=True)
class AuditContext:
    """What every section may need besides the connection."""

    band: float = LENGTH_BIAS_BAND
    # What the export mixes in from human-annotated sets (``human_sets.human_share``): the roll-up audit only.
    human_share: dict[str, Any] | None = None


class Section(Protocol):
    NAME: str

    def compute(self, con: duckdb.DuckDBPyConnection, context: AuditContext) -> dict[str, Any]: ...

    def render(self, figures: dict[str, Any], images: dict[str, str]) -> str: ...
