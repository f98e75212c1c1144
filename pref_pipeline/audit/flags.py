"""The audit's warnings: every section's, in the order of the sections (the order ``audit.json`` lists them)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pref_pipeline.audit.section import Section


def section_flags(section: Section, figures: dict[str, Any]) -> list[str]:
    """One section's warnings (none when it defines no ``flags``)."""
    flags = getattr(section, "flags", None)
    return list(flags(figures)) if flags is not None else []


def collect_flags(figures: dict[str, Any], sections: Iterable[Section]) -> list[str]:
    """Every section's warnings, section by section."""
    return [flag for section in sections for flag in section_flags(section, figures)]
