"""Drift: how a judge's verdicts change between its versions, from ``judgment_history``, and how the people
who label change, from ``human_labels``.

A judge is a slot of the configuration's judge list (``judge_slot``; the judge model where unknown),
each of its fingerprints a version. Figures: every version's position figures and when it judged;
the flip rate between consecutive versions on the same (comparison, order), overall and by category;
each version's figures by week. Annotators (``annotators``): per labeller and week of ``labelled_at``, the
labels given and how often they agree with the pairs (the seed's "as models improve, human annotators change
their standards": a labeller whose agreement moves from week to week is drifting, or the pairs are).
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import duckdb
import pandas as pd

from pref_pipeline.audit.queries import sql
from pref_pipeline.audit.report import ci_cell, image, pct, table
from pref_pipeline.audit.section import AuditContext
from pref_pipeline.audit.stats import ratio, wilson_interval

NAME = "drift"
DRIFT_FLAG_RATE = 0.2  # flag a judge change that flips at least this share ...
DRIFT_FLAG_MIN = 10  # ... of at least this many shared verdicts


def compute(con: duckdb.DuckDBPyConnection, context: AuditContext) -> dict[str, Any]:
    versions = []
    models = {}
    for fp, model, first, last, n, n_dec, n_first, n_both, n_same, weight, slot in \
            con.execute(sql("judge_versions")).fetchall():
        models[fp] = model
        versions.append({"judge_fingerprint": fp, "judge_model": model, "first_seen": _iso(first),
                         "last_seen": _iso(last), "n": int(n), "first_position_win_rate": ratio(n_first, n_dec),
                         "consistency_rate": ratio(int(n_same or 0), int(n_both or 0)),
                         "n_both_orders": int(n_both or 0),
                         "mean_recency_weight": None if weight is None else round(float(weight), 4),
                         "slot": slot})
    flips = con.execute(sql("judge_flips")).fetchdf()
    transitions = []
    for (old, new), group in flips.groupby(["old_fp", "new_fp"], sort=False):
        n, n_flipped = int(group["n"].sum()), int(group["n_flipped"].sum())
        transitions.append({
            "from": old, "from_model": models.get(old), "to": new, "to_model": models.get(new), "n": n,
            "flip_rate": ratio(n_flipped, n), "flip_ci95": wilson_interval(n_flipped, n),
            "by_category": [{"category": c, "n": int(k), "flip_rate": ratio(int(f), int(k))}
                            for c, k, f in zip(group["category"], group["n"], group["n_flipped"])],
            "slot": group["slot"].iloc[0],
        })
    weekly = []
    for fp, model, week, n, n_dec, n_first, n_unparseable in con.execute(sql("judge_weekly")).fetchall():
        weekly.append({"judge_fingerprint": fp, "judge_model": model, "week": _iso(week)[:10] if week else None,
                       "n": int(n), "first_position_win_rate": ratio(n_first, n_dec),
                       "unparseable_rate": ratio(n_unparseable, n)})
    return {"drift": {"versions": versions, "transitions": transitions, "weekly": weekly,
                      "annotators": annotators(con)}}


def annotators(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Per labeller and week: labels, decisive ones, those whose comparison made a pair, and the share of those
    where the person chose the pair's chosen response (with a 95% Wilson interval)."""
    return [{"labeller": who, "week": _iso(week)[:10] if week is not None else None, "n_labels": int(n),
             "n_decisive": int(n_dec), "n_with_pair": int(n_pair), "n_agree": int(n_agree),
             "agreement_rate": ratio(int(n_agree), int(n_pair)), "agreement_ci95": wilson_interval(n_agree, n_pair)}
            for who, week, n, n_dec, n_pair, n_agree in con.execute(sql("annotator_weekly")).fetchall()]


def _iso(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return pd.Timestamp(value).isoformat()


def flags(figures: dict[str, Any]) -> list[str]:
    out = []
    for change in figures["drift"]["transitions"]:
        if change["n"] >= DRIFT_FLAG_MIN and change["flip_rate"] is not None and change["flip_rate"] >= DRIFT_FLAG_RATE:
            out.append(f"judge change {change['from_model']} ({change['from']}) -> {change['to_model']} "
                       f"({change['to']}) flipped {change['flip_rate']:.0%} of {change['n']} shared verdicts")
    return out


# --------------------------------------------------------------------------- the report

INTRO = """## Drift
Every verdict any judge version gave is kept in `judgment_history`. A new version (another model, prompt
or sampling: a new fingerprint) that judged the same comparisons as an older one shows how many verdicts
it flipped."""
NO_HISTORY = "Nothing in `judgment_history` yet: drift is measured on the verdicts recorded there."


def why_no_flips(drift: dict[str, Any]) -> str:
    if not drift["versions"]:
        return NO_HISTORY
    per_judge = Counter(v.get("slot") or v["judge_model"] for v in drift["versions"])
    if max(per_judge.values()) < 2:
        return ("No judge change recorded yet: drift needs two versions of a judge (another model, prompt or "
                "sampling) that judged the same comparisons.")
    return ("The versions of each judge share no judged comparison (in the same order): a flip rate needs both "
            "versions' verdicts on the same comparisons, e.g. re-judging a batch after a change.")


NO_LABELS = ("No human labels yet: `pref-pipeline review export` writes a sheet to label; each label's time "
             "(`labelled_at`) places it in a week here.")


def render_annotators(drift: dict[str, Any]) -> str:
    rows = [[a['labeller'], a['week'] or 'n/a', a['n_labels'], a['n_decisive'], a['n_with_pair'],
             f"{pct(a['agreement_rate'])} {ci_cell(a['agreement_ci95'])}".strip()] for a in drift.get('annotators') or []]
    body = table(['labeller', 'week', 'labels', 'decisive', 'with a pair', 'agree with the pair (95% CI)'], rows,
                 why_empty=NO_LABELS)
    return f"""Annotators by week (human labels by `labelled_at`): standards drift too; a labeller whose agreement with the
pairs moves from week to week is changing, or the pairs are.

{body}
"""


def render(figures: dict[str, Any], images: dict[str, str]) -> str:
    drift = figures.get("drift") or {"versions": [], "transitions": [], "weekly": []}
    if not drift["versions"]:
        return f"{INTRO}\n\n_{NO_HISTORY}_\n\n{render_annotators(drift)}"
    versions = table(
        ['fingerprint', 'judge', 'first seen', 'verdicts', 'same verdict both orders', 'first shown wins'],
        [[v['judge_fingerprint'], v['judge_model'], (v['first_seen'] or '')[:16], v['n'], pct(v['consistency_rate']),
          pct(v['first_position_win_rate'])] for v in drift['versions']],
        why_empty=NO_HISTORY)
    flips = table(
        ['from', 'to', 'shared verdicts', 'flipped', 'by category'],
        [[f"{t['from_model']} ({t['from']})", f"{t['to_model']} ({t['to']})", t['n'], pct(t['flip_rate']),
          ", ".join(f"{c['category']} {pct(c['flip_rate'])}" for c in t['by_category'])]
         for t in drift['transitions']],
        why_empty=why_no_flips(drift))
    weekly = table(
        ['week', 'judge', 'fingerprint', 'verdicts', 'first shown wins', 'unparseable'],
        [[w['week'], w['judge_model'], w['judge_fingerprint'], w['n'], pct(w['first_position_win_rate']),
          pct(w['unparseable_rate'])] for w in drift['weekly']],
        why_empty=NO_HISTORY)
    return f"""{INTRO}
{image(images, 'drift', 'judge versions')}
{versions}

Flips between versions:

{flips}

By week:

{weekly}

{render_annotators(drift)}"""
