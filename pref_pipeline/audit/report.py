"""The audit report: ``audit.json`` and ``audit.md``, and the Markdown helpers the sections render with.

The Markdown is a header (pairs kept, warnings) followed by every section's part, in section order.
A table with no rows says why it is empty instead of showing nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pref_pipeline.atomic import write_text_atomically
from pref_pipeline.audit.section import Section


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def ci(interval: list | tuple | None) -> str:
    """`` (95% CI 40%–60%)``, or nothing without an interval."""
    return "" if not interval else f" (95% CI {interval[0]:.0%}–{interval[1]:.0%})"


def ci_cell(interval: list | tuple | None) -> str:
    """``40%–60%`` for a table cell."""
    return ci(interval).strip(" ()").replace("95% CI ", "")


def table(header: list[str], rows: list[list[Any]], *, why_empty: str) -> str:
    """A Markdown table; with no rows, ``why_empty`` in italics (a reader must learn why a figure is missing)."""
    if not rows:
        return f"_{why_empty}_"
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def image(images: dict[str, str], name: str, alt: str) -> str:
    return f"\n![{alt}]({images[name]})\n" if name in images else ""


def _left_out(pairs: dict[str, Any]) -> str:
    n = pairs.get("left_out_by_export") or 0
    return (f" Of the kept pairs, {n} were left out of the published files by the export's length rebalancing "
            "(the figures below are measured before it)." if n else "")


def _batch_rows(pairs: dict[str, Any]) -> str:
    n = pairs.get("quarantined_batch_rows") or 0
    return f", {n} of them a row standing for a whole blocked batch rather than a pair" if n else ""


def header(audit: dict[str, Any]) -> str:
    pairs = audit["pairs"]
    flags = "\n".join(f"- ⚠ {flag}" for flag in audit["flags"]) or "- none"
    return f"""# Preference data audit

**{pairs['kept']} pairs kept** from {pairs['comparisons']} comparisons; {pairs.get('quarantined', 0)} comparisons or
pairs quarantined{_batch_rows(pairs)} (see below: nothing is dropped without a reason).{_left_out(pairs)}

## Warnings
{flags}
"""


def render(audit: dict[str, Any], images: dict[str, str] | None, sections: Iterable[Section]) -> str:
    """The header, then each section's Markdown."""
    images = images or {}
    return "\n".join([header(audit), *(section.render(audit, images) for section in sections)])


def write(audit: dict[str, Any], folder: Path, sections: Iterable[Section], plots: bool = False) -> tuple[Path, Path]:
    """``audit.json`` and ``audit.md`` (and, with ``plots``, PNG plots the Markdown links to)."""
    folder.mkdir(parents=True, exist_ok=True)
    json_path, md_path = folder / "audit.json", folder / "audit.md"
    images: dict[str, str] = {}
    if plots:
        from pref_pipeline.audit.plots import make_plots

        images = {name: path.name for name, path in make_plots(audit, folder).items()}
    write_text_atomically(json_path, json.dumps(audit, indent=2, ensure_ascii=False) + "\n")  # never half a file
    write_text_atomically(md_path, render(audit, images, sections))
    return json_path, md_path
