"""The audit: DuckDB SQL over the pipeline's tables, measuring the biases the judge may have.

``audit.json`` keys are a contract for other tools: ``length_bias.pct_longer_chosen``,
``length_bias.flagged``, ``position_bias.consistency_rate``, ``position_bias.first_position_win_rate``,
``pairs.kept``, ``pairs.quarantined`` and ``flags`` stay; new figures are added beside them.

Two ways in: ``compute_audit(pairs, judgments, comparisons, ...)`` on DataFrames, and
``audit_home(home)`` over the stored tables of a pipeline home (DuckDB views over its Parquet files, so
nothing is loaded into pandas but the small aggregates). Both run the same SQL (``sql/*.sql``).

The figures come from sections, one module each (see ``section.py`` for the interface), run, warned
about and rendered in the order of ``SECTIONS``: the batches covered and those their pairs gate blocked
(``batches``), length bias and the length-controlled view
(``length``), position bias (``position``), agreement between judges and with human labels
(``agreement``), drift between judge versions (``drift``), outcomes and quarantine (``outcomes``),
the judge calls (``judge_calls``), self-preference and a judge that is also a generator
(``self_preference``), the strategies (``strategies``), the human-annotated pairs the export mixes in
(``human_share``, roll-up only). A new section is a new module and one line in ``SECTIONS``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
from filelock import FileLock

from pref_pipeline import table_files
from pref_pipeline.paths import SCHEMA, Home

from pref_pipeline.audit import (
    agreement,
    batches,
    drift,
    human_share,
    judge_calls,
    length,
    outcomes,
    position,
    report,
    self_preference,
    strategies,
)
from pref_pipeline.audit.agreement import KAPPA_FLAG_BELOW, KAPPA_FLAG_MIN
from pref_pipeline.audit.drift import DRIFT_FLAG_MIN, DRIFT_FLAG_RATE
from pref_pipeline.audit.flags import collect_flags
from pref_pipeline.audit.headline import headline_figures
from pref_pipeline.audit.judge_calls import STAND_IN_MODELS
from pref_pipeline.audit.length import (
    HISTOGRAM_CLIP,
    MIN_GROUP_PAIRS,
    length_controlled,
)
from pref_pipeline.audit.queries import sql
from pref_pipeline.audit.relations import (
    COMPARISONS_SCHEMA,
    HISTORY_SCHEMA,
    HUMAN_SCHEMA,
    JUDGMENTS_SCHEMA,
    PAIRS_SCHEMA,
    QUARANTINE_SCHEMA,
    RELATIONS,
    STORED_TABLES,
    conform,
)
from pref_pipeline.audit.section import LENGTH_BIAS_BAND, AuditContext, Section
from pref_pipeline.audit.stats import cohens_kappa, kappa_from_labels, wilson_interval
from pref_pipeline import schema as tables  # the one declaration of every table (not the DuckDB schema name)
from pref_pipeline.metrics import longer_chosen_share  # defined once there; re-exported
from pref_pipeline.quarantine import PAIR_STAGES, PAIRS_GATE_STAGE  # the stages are named there (PAIR_STAGES re-exported)

__all__ = [  # the public names: the audit, its statistics and thresholds, the relations it reads
    "COMPARISONS_SCHEMA",
    "DRIFT_FLAG_MIN",
    "DRIFT_FLAG_RATE",
    "HISTOGRAM_CLIP",
    "HISTORY_SCHEMA",
    "HUMAN_SCHEMA",
    "JUDGMENTS_SCHEMA",
    "KAPPA_FLAG_BELOW",
    "KAPPA_FLAG_MIN",
    "LENGTH_BIAS_BAND",
    "MIN_GROUP_PAIRS",
    "PAIRS_SCHEMA",
    "PAIR_STAGES",
    "QUARANTINE_SCHEMA",
    "RELATIONS",
    "SECTIONS",
    "STAND_IN_MODELS",
    "STORED_TABLES",
    "AuditContext",
    "Section",
    "audit_connection",
    "audit_home",
    "cohens_kappa",
    "compute_audit",
    "conform",
    "headline_figures",
    "kappa_from_labels",
    "length_controlled",
    "longer_chosen_share",
    "render_markdown",
    "report_home",
    "wilson_interval",
    "write_report",
]

SECTIONS: list[Section] = [batches, length, position, agreement, drift, outcomes, judge_calls, self_preference,
                           strategies, human_share]
# Set up once per audit, before the sections run; every section may read them.
SHARED_VIEWS = ("kept_pairs", "parsed", "both_orders", "labelled")
VIEW_PARAMETERS = {"kept_pairs": {"gate_stage": PAIRS_GATE_STAGE}}


def audit_connection(con: duckdb.DuckDBPyConnection, band: float = LENGTH_BIAS_BAND,
                     sections: list[Section] | None = None, human_share: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every figure, from a connection with the relations of ``RELATIONS`` in place (see ``relations.conform``);
    ``human_share``: what the export mixes in from human-annotated sets (``export.human_share``)."""
    sections = SECTIONS if sections is None else sections
    for view in SHARED_VIEWS:
        con.execute(sql(view), VIEW_PARAMETERS.get(view))
    context = AuditContext(band=band, human_share=human_share)
    figures: dict[str, Any] = {}
    for section in sections:
        figures.update(section.compute(con, context))
    # "pairs" (the headline) first, as audit.json has always begun; then the sections' keys; then the warnings.
    ordered = {key: figures[key] for key in ("pairs",) if key in figures} | figures
    ordered["flags"] = collect_flags(ordered, sections)
    return ordered


def compute_audit(pairs: pd.DataFrame, judgments: pd.DataFrame, comparisons: pd.DataFrame, *,
                  quarantine: pd.DataFrame | None = None, judgment_history: pd.DataFrame | None = None,
                  human_labels: pd.DataFrame | None = None, candidates: pd.DataFrame | None = None,
                  band: float = LENGTH_BIAS_BAND) -> dict[str, Any]:
    """Every audit figure from DataFrames, as a JSON-ready dict (``candidates``: for self-preference)."""
    frames = {"pairs": pairs, "judgments": judgments, "comparisons": comparisons, "quarantine": quarantine,
              "judgment_history": judgment_history, "human_labels": human_labels, "candidates": candidates}
    con = duckdb.connect()
    try:
        for name, frame in frames.items():
            if frame is None:
                conform(con, name, None)
                continue
            con.register(f"{name}_frame", tables.conform(STORED_TABLES[name], frame, add_missing=False))
            conform(con, name, f"{name}_frame")
        return audit_connection(con, band)
    finally:
        con.close()


def audit_home(home: Home, band: float = LENGTH_BIAS_BAND, memory_limit: str | None = "1GB",
               human_share: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every audit figure over the stored tables of a pipeline home (its Parquet files, ``table_files``)."""
    con = table_files.connect(home, memory_limit=memory_limit)
    try:
        for name, table in STORED_TABLES.items():  # the views connect made: no second listing of the files
            conform(con, name, f"{SCHEMA}.{table}" if table_files.table_exists(con, table) else None)
        return audit_connection(con, band, human_share=human_share)
    finally:
        con.close()


def report_home(home: Home, band: float = LENGTH_BIAS_BAND, plots: bool = False,
                human_share: dict[str, Any] | None = None) -> tuple[dict[str, Any], Path, Path]:
    """The audit over every batch stored under ``home``, written to its ``reports/`` (``audit.json``, ``audit.md``,
    plots): the figures and the two paths. Read and written under one lock: when two runs roll up at once, the
    later reads every batch both stored, and an earlier read can no longer overwrite a newer report."""
    home.reports.mkdir(parents=True, exist_ok=True)
    with FileLock(str(home.reports / ".audit.lock")):
        figures = audit_home(home, band=band, human_share=human_share)
        json_path, md_path = write_report(figures, home.reports, plots=plots)
    return figures, json_path, md_path


def render_markdown(audit: dict[str, Any], images: dict[str, str] | None = None) -> str:
    """A report a person who did not build the pipeline can read.

    ``images`` maps plot names (``length_difference``, ``length_by_category``, ``position``, ``drift``)
    to an image reference (a file name, or a ``data:`` URI for the Dagster UI).
    """
    return report.render(audit, images, SECTIONS)


def write_report(audit: dict[str, Any], folder: Path, plots: bool = False) -> tuple[Path, Path]:
    """``audit.json`` and ``audit.md`` (and, with ``plots``, PNG plots the Markdown links to)."""
    return report.write(audit, folder, SECTIONS, plots=plots)
