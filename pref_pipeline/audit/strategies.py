"""Strategies: per generation method, the pairs it made and kept, their length bias, and the
judges' agreement with the construction.

``strategies`` in ``audit.json``: one entry per strategy with ``comparisons`` (planned), ``pairs_made``
(a winner, by the judges or by construction), ``by_construction``, ``pairs_kept`` (in the dataset after the
filters and the gate), ``pct_longer_chosen`` (with a 95% Wilson interval), ``no_pair`` (comparisons without
a winner by reason), and ``judge_agreement``: where the judges compared candidates whose winner is known by
construction (``strong_vs_weak`` with ``confirm``), how often their consistent verdict named that winner,
the cheapest judge-quality signal there is.
"""

from __future__ import annotations

from typing import Any

import duckdb

from pref_pipeline.audit.queries import sql
from pref_pipeline.audit.report import ci_cell, pct, table
from pref_pipeline.audit.section import AuditContext
from pref_pipeline.audit.stats import ratio, wilson_interval

NAME = "strategies"
AGREEMENT_FLAG_BELOW = 0.6  # warn when the judges agree with the construction less often than this
AGREEMENT_FLAG_MIN = 5  # ... from this many verdicts on


def compute(con: duckdb.DuckDBPyConnection, context: AuditContext) -> dict[str, Any]:
    no_pair: dict[str, dict[str, int]] = {}
    for strategy, status, n in con.execute(sql("strategy_no_pair")).fetchall():
        no_pair.setdefault(strategy, {})[status] = int(n)
    out = []
    for (strategy, comparisons, made, constructed, kept, n_compared, n_longer, judged, agree,
         disagree) in con.execute(sql("strategies")).fetchall():
        decided = int(agree) + int(disagree)
        out.append({
            "strategy": strategy,
            "comparisons": int(comparisons),
            "pairs_made": int(made),
            "by_construction": int(constructed),
            "pairs_kept": int(kept),
            "pct_longer_chosen": ratio(n_longer, n_compared),
            "length_ci95": wilson_interval(n_longer, n_compared),
            "n_compared": int(n_compared),
            "no_pair": no_pair.get(strategy, {}),
            "judge_agreement": None if not judged else {
                "judged": int(judged), "agree": int(agree), "disagree": int(disagree),
                "no_verdict": int(judged) - decided, "rate": ratio(agree, decided),
                "ci95": wilson_interval(agree, decided),
            },
        })
    return {"strategies": out}


def flags(figures: dict[str, Any]) -> list[str]:
    out = []
    for entry in figures.get("strategies") or []:
        agreement = entry["judge_agreement"]
        decided = (agreement or {}).get("agree", 0) + (agreement or {}).get("disagree", 0)
        if agreement and decided >= AGREEMENT_FLAG_MIN and agreement["rate"] < AGREEMENT_FLAG_BELOW:
            out.append(f"{entry['strategy']}: the judges agree with the construction in only {pct(agreement['rate'])} "
                       f"of {decided} verdicts; the judge is weak, or the construction is")
    return out


def render(figures: dict[str, Any], images: dict[str, str]) -> str:
    entries = figures.get("strategies") or []
    rows = []
    for e in entries:
        agreement = e["judge_agreement"]
        agree = ("n/a" if not agreement else
                 f"{pct(agreement['rate'])} ({agreement['agree']}/{agreement['agree'] + agreement['disagree']}; "
                 f"{agreement['no_verdict']} without a verdict) {ci_cell(agreement['ci95'])}")
        no_pair = ", ".join(f"{k}: {v}" for k, v in e["no_pair"].items()) or "none"
        rows.append([e["strategy"], e["comparisons"], e["pairs_made"], e["by_construction"], e["pairs_kept"],
                     f"{pct(e['pct_longer_chosen'])} {ci_cell(e['length_ci95'])}".strip(), agree, no_pair])
    body = table(["strategy", "comparisons", "pairs made", "by construction", "kept", "longer chosen (95% CI)",
                  "judges agree with construction", "no pair (reason: n)"], rows,
                 why_empty="No comparison planned yet.")
    return f"""## Strategies
How each generation method did: pairs made (a winner, by the judges or by construction), kept after the
filters and the gate, how often the longer response was chosen, and where the judges compared a pair
whose winner is known by construction, how often they agreed with it.

{body}
"""
