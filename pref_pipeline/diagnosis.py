"""Why a batch's pairs gate failed, said in the user's terms rather than the expectation's name.

``expect_table_row_count_to_be_between`` tells a person nothing; "position consistency 0 %: every
verdict flipped with the order" or "pairs 20 < gates.min_pairs 1000" tells them what to change. The
check's description and the CLI's failure summary both use ``pairs_gate_cause``.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from pref_pipeline.config import GatesSpec
from pref_pipeline.metrics import SAME_BOTH_ORDERS, order_consistency


def _pct(value: float) -> str:
    return f"{value:.0%}"


def _why_no_pairs(comparisons: pd.DataFrame, judgments: pd.DataFrame) -> str:
    """What the comparisons ended as, when too few became pairs."""
    if comparisons is None or comparisons.empty:
        return "no comparison was judged (no two usable candidates for any prompt?)"
    statuses = comparisons["status"].value_counts()
    total = int(statuses.sum())
    parts = [f"{int(n)} {status}" for status, n in statuses.items() if status != "consistent"]
    reason = f"of {total} comparison(s): " + ", ".join(parts) if parts else f"{total} comparison(s) all consistent"
    consistency = order_consistency(judgments) if judgments is not None and len(judgments) else None
    if consistency is not None and len(consistency):
        rate = float(consistency[SAME_BOTH_ORDERS].mean())
        if rate == 0:
            reason += "; position consistency 0 %: every verdict flipped with the order (a position-biased judge)"
        elif rate < 0.5:
            reason += f"; position consistency {_pct(rate)}: most verdicts flipped with the order"
    if "unparseable" in statuses and int(statuses["unparseable"]) == total:
        reason += "; the judge's output could never be read (see judgments.raw_output)"
    return reason


def pairs_gate_cause(failures: list[dict[str, Any]], figures: dict[str, Any], spec: GatesSpec, n_pairs: int,
                     comparisons: pd.DataFrame | None = None, judgments: pd.DataFrame | None = None) -> str:
    """One or two lines naming what failed and why, from the gate's failed expectations and figures."""
    causes: list[str] = []
    for failure in failures:
        expectation = failure.get("expectation", "")
        column = failure.get("column")
        if expectation == "expect_table_row_count_to_be_between":
            causes.append(f"pairs {n_pairs} < gates.min_pairs {spec.min_pairs} ("
                          f"{_why_no_pairs(comparisons, judgments)})")
        elif expectation == "expect_column_mean_to_be_between" and column == SAME_BOTH_ORDERS:
            found = figures.get("position_consistency", {})
            rate = found.get("rate")
            shown = "n/a (no comparison judged in both orders)" if rate is None else _pct(rate)
            causes.append(f"position consistency {shown} < gates.min_position_consistency "
                          f"{_pct(spec.min_position_consistency or 0)}: verdicts change with the order the "
                          "responses are shown in")
        elif expectation == "expect_column_mean_to_be_between":
            found = figures.get("length_bias", {})
            share = found.get("pct_longer_chosen")
            causes.append(f"length bias: the longer response was chosen in {_pct(share or 0)} of judge-labelled "
                          f"pairs, outside 50% ± gates.max_length_bias {_pct(spec.max_length_bias or 0)}")
        else:
            rows = failure.get("unexpected_count")
            where = f" in {column}" if column else ""
            causes.append(f"{expectation}{where}" + (f": {rows} row(s)" if rows else ""))
    return "; ".join(causes) if causes else "the pairs gate failed"
