"""The panel: several judges' verdicts (each in both orders) become one decision per comparison.

``judging.aggregation`` in the configuration decides how:

- ``unanimous`` (the default, the pipeline's original rule): every judge must prefer the same response
  in both orders; the first judge that does not (by fingerprint) names the comparison's status.
- ``majority``: a judge that is consistent across orders votes for its response (or for a tie); a
  judge that is inconsistent, unparseable or failed abstains; the decision needs more than half of
  the votes cast. One position-biased judge no longer silences the dataset.
- ``weighted``: as majority, each vote counting the judge's ``weight``.

A rule judge that does not apply to a comparison (``parse_status = not_applicable``) abstains under
every aggregation. The record of each comparison keeps every member's verdicts in both orders, its
status, vote and weight (``votes``), the tally (``vote``), the ``agreement`` (share of the panel's
weight on the winning option) and the ``confidence`` (agreement x the mean verdict confidence of the
judges that voted for it, where a verdict's confidence is its label probability from log-probabilities
when the provider gave them, else what the judge said).

Set-based: ``sql/panel.sql`` over the judgments, run inside the connection that builds the pairs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING

import duckdb
import pandas as pd

from pref_pipeline.judging.base import fingerprint_for
from pref_pipeline.sql_inputs import typed_judgments

if TYPE_CHECKING:
    from pref_pipeline.config import PipelineConfig

PANEL_COLUMNS = ["comparison_id", "status", "preferred", "aggregation", "votes", "vote", "agreement", "confidence"]


@dataclass(frozen=True)
class Panel:
    """How verdicts combine: the aggregation and each judge's weight (by fingerprint; default 1)."""

    aggregation: str = "unanimous"
    weights: dict[str, float] = field(default_factory=dict)


def panel_for(config: PipelineConfig) -> Panel:
    return Panel(config.judging.aggregation, {fingerprint_for(spec): spec.weight for spec in config.judges})


@cache
def _query() -> str:
    return resources.files("pref_pipeline").joinpath("sql/panel.sql").read_text(encoding="utf-8")


def run_panel(con: duckdb.DuckDBPyConnection, panel: Panel) -> None:
    """Create ``panel_out`` in ``con``, where a ``judgments`` relation (with ``_row``) is registered."""
    weights = pd.DataFrame({"judge_fingerprint": list(panel.weights), "weight": list(panel.weights.values())},
                           columns=["judge_fingerprint", "weight"]).astype({"judge_fingerprint": "string",
                                                                            "weight": "float64"})
    con.register("panel_weights", weights)
    con.register("panel_rule", pd.DataFrame({"aggregation": [panel.aggregation]}))
    con.execute(_query())


def decide(judgments: pd.DataFrame, panel: Panel | None = None) -> pd.DataFrame:
    """The panel's decision per comparison (``PANEL_COLUMNS``), from a judgments frame."""
    con = duckdb.connect()
    try:
        con.register("judgments", typed_judgments(judgments))
        run_panel(con, panel or Panel())
        return con.execute(f"SELECT {', '.join(PANEL_COLUMNS)} FROM panel_out ORDER BY comparison_id").fetchdf()
    finally:
        con.close()
