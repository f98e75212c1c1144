"""Position bias: does a judge give the same verdict with the responses swapped, and does the first shown win?

Overall and per judge version (fingerprint), with 95% Wilson intervals.
"""

from __future__ import annotations

from typing import Any

import duckdb

from pref_pipeline.audit.queries import sql
from pref_pipeline.audit.report import ci, image, pct, table
from pref_pipeline.audit.section import AuditContext
from pref_pipeline.audit.stats import ratio, wilson_interval

NAME = "position"
CONSISTENCY_FLAG_BELOW = 0.5  # flag when fewer comparisons than this get the same verdict in both orders


def compute(con: duckdb.DuckDBPyConnection, context: AuditContext) -> dict[str, Any]:
    n_both, n_consistent, n_decisive, n_first_wins = con.execute(sql("position_bias")).fetchall()[0]
    by_judge = []
    for fp, model, n_dec, n_first, n_ties, n_bo, n_cons in con.execute(sql("position_by_judge")).fetchall():
        by_judge.append({
            "judge_model": model, "judge_fingerprint": fp, "n_both_orders": int(n_bo),
            "consistency_rate": ratio(n_cons, n_bo), "consistency_ci95": wilson_interval(n_cons, n_bo),
            "n_decisive": int(n_dec), "first_position_win_rate": ratio(n_first, n_dec),
            "first_position_ci95": wilson_interval(n_first, n_dec), "n_ties": int(n_ties),
        })
    return {"position_bias": {
        "consistency_rate": ratio(n_consistent, n_both),
        "consistency_ci95": wilson_interval(n_consistent, n_both),
        "first_position_win_rate": ratio(n_first_wins, n_decisive),
        "first_position_ci95": wilson_interval(n_first_wins, n_decisive),
        "n_both_orders": int(n_both),
        "by_judge": by_judge,
    }}


def flags(figures: dict[str, Any]) -> list[str]:
    out = []
    consistency = figures["position_bias"]["consistency_rate"]
    if consistency is not None and consistency < CONSISTENCY_FLAG_BELOW:
        out.append(f"position bias: only {consistency:.0%} of comparisons got the same verdict in both orders")
    # Unparseable outputs are verdicts missing from these figures: warned about here, right after them.
    judging = figures.get("judging") or {}
    if judging.get("unparseable"):
        out.append(f"{judging['unparseable']} of {judging['judgments']} judge outputs could not be parsed after retries")
    return out


def render(figures: dict[str, Any], images: dict[str, str]) -> str:
    pb = figures["position_bias"]
    judges = table(['judge', 'fingerprint', 'both orders', 'same verdict', 'first shown wins', 'ties'],
                   [[j['judge_model'], j['judge_fingerprint'], j['n_both_orders'], pct(j['consistency_rate']),
                     pct(j['first_position_win_rate']), j['n_ties']] for j in pb.get('by_judge', [])],
                   why_empty="No parsed verdict yet: position bias is measured on judged comparisons.")
    return f"""## Position bias
Each pair is judged twice, with the responses swapped. Same verdict in both orders:
**{pct(pb['consistency_rate'])}**{ci(pb.get('consistency_ci95'))} of {pb['n_both_orders']} comparisons. The response shown
first won {pct(pb['first_position_win_rate'])}{ci(pb.get('first_position_ci95'))} of decisive verdicts (an unbiased judge: about 50%).
{image(images, 'position', 'position bias by judge')}
{judges}
"""
