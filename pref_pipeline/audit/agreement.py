"""Agreement: Cohen's kappa between judges on the same verdicts, and the judges against human labels.

Kappa (statsmodels) is computed from contingency tables that DuckDB counts, so no verdict list is
loaded into Python however many there are.
"""

from __future__ import annotations

from itertools import combinations, groupby
from typing import Any

import duckdb
import pandas as pd

from pref_pipeline.audit.queries import sql
from pref_pipeline.audit.relations import conform
from pref_pipeline.audit.report import ci, ci_cell, pct, table
from pref_pipeline.audit.section import AuditContext
from pref_pipeline.quarantine import AWAITING_LABEL
from pref_pipeline.audit.stats import (
    cohens_kappa,
    contingency,
    kappa_from_labels,
    ratio,
    share_entry,
    weighted_agreement,
    wilson_interval,
)

NAME = "agreement"
KAPPA_FLAG_BELOW, KAPPA_FLAG_MIN = 0.2, 20  # flag judges whose kappa is below this on at least this many verdicts
HUMAN_FLAG_BELOW, HUMAN_FLAG_MIN = 0.6, 10  # flag agreement with people below this on at least this many labels
SHOWN_DISAGREEMENTS = 50  # disagreements between a person and the machine listed in audit.json (all are counted)


def compute(con: duckdb.DuckDBPyConnection, context: AuditContext) -> dict[str, Any]:
    models = dict(con.execute(sql("judges")).fetchall())
    return {"agreement": {"judge_vs_judge": _judge_vs_judge(con, models), "human": _human(con),
                          "n_judges": len(models)}}


def _judge_vs_judge(con: duckdb.DuckDBPyConnection, models: dict[str, str]) -> list[dict[str, Any]]:
    out = []
    cells = con.execute(sql("judge_agreement")).fetchall()
    for (fa, fb), rows in groupby(cells, key=lambda row: (row[0], row[1])):
        counts = contingency((la, lb, n) for _, _, la, lb, n in rows)
        n, n_agree = int(counts.sum()), int(counts.trace())
        out.append({"judge_a": models.get(fa), "fingerprint_a": fa, "judge_b": models.get(fb), "fingerprint_b": fb,
                    "n": n, "observed_agreement": ratio(n_agree, n), "kappa": cohens_kappa(counts)})
    return out


def _human(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """People against the machine's decision before them: the pair that was exported, whether the judges or the
    construction made it (the ``labelled`` view), and against each judge's own verdicts."""
    outcome = con.execute(sql("human_outcome")).fetchdf()
    decisive = outcome[outcome["human_winner_id"].notna()]
    compared = decisive[decisive["machine_winner_id"].notna()]  # the machine made a pair: judges or construction
    agree = compared["machine_winner_id"] == compared["human_winner_id"]
    waiting = decisive["machine_status"] == AWAITING_LABEL  # no machine was asked (human_ranked)

    def rows_by(column: str) -> list[dict[str, Any]]:
        out = []
        for key, group in compared.assign(agree=agree).groupby(column, sort=True):
            entry = share_entry(str(key), int(group["agree"].sum()), len(group))
            out.append({column: key, "n": entry["n"], "ci95": entry["ci95"], "agreement_rate": entry["share"]})
        return sorted(out, key=lambda e: (e["agreement_rate"] if e["agreement_rate"] is not None else 1.0, -e["n"]))

    tables = {fp: contingency((h, j, n) for _, h, j, n in rows)
              for fp, rows in groupby(con.execute(sql("human_verdict_table")).fetchall(), key=lambda row: row[0])}
    verdicts = []
    for fp, model, n, n_dec, n_agree in con.execute(sql("human_verdict")).fetchall():
        verdicts.append({"judge_model": model, "judge_fingerprint": fp, "n": int(n), "n_decisive": int(n_dec),
                         "accuracy": ratio(n_agree, n_dec), "accuracy_ci95": wilson_interval(n_agree, n_dec),
                         "kappa": cohens_kappa(tables[fp]) if fp in tables else None})
    differ = compared[~agree]
    by_category = rows_by("category")
    return {
        "n_labels": len(outcome),
        "n_human_ties": int(outcome["human_winner_id"].isna().sum()),
        "n_compared": len(compared),  # decisive human label and a pair from the machine (judges or construction)
        # decisive human label, and the machine gave no pair (tie, inconsistent, ...; not asked: n_no_machine)
        "n_judge_undecided": int(len(decisive) - len(compared) - waiting.sum()),
        "n_no_machine": int(waiting.sum()),  # decisive labels of comparisons no judge or construction decides
        "agreement_rate": ratio(int(agree.sum()), len(compared)),
        "agreement_ci95": wilson_interval(int(agree.sum()), len(compared)),
        # The same over every reviewable comparison: each label weighted by 1 / the probability it had of being
        # chosen for review (review --strategy uncertain targets the hard cases; its random share stands for the
        # rest): Horvitz-Thompson weights as a ratio (Hajek). Equal to agreement_rate when nothing was sampled.
        "agreement_rate_weighted": weighted_agreement(compared["inclusion_probability"], agree),
        "by_category": by_category,
        "most_divergent_category": by_category[0]["category"] if by_category else None,
        "by_source": rows_by("source"),
        "by_strategy": rows_by("strategy"),
        "by_label_source": rows_by("label_source"),  # the machine's label source: judge, construction, ...
        "by_labeller": rows_by("labeller"),
        "per_verdict": verdicts,
        # Where a person and the machine chose differently: the person's label is kept (label_source human).
        "disagreements": {
            "n": len(differ),
            "by_label_source": {str(k): int(v) for k, v in differ["label_source"].value_counts().sort_index().items()},
            "rows": [{k: (None if pd.isna(v) else v) for k, v in row.items()} for row in differ[
                ["comparison_id", "strategy", "label_source", "category", "labeller", "human_winner_id",
                 "machine_winner_id"]].head(SHOWN_DISAGREEMENTS).to_dict("records")],
        },
        "inter_annotator": inter_annotator(con.execute(sql("labeller_sides")).fetchdf()),
    }


def inter_annotator(sides: pd.DataFrame) -> list[dict[str, Any]]:
    """Cohen's kappa (statsmodels) of every two labellers on the comparisons both labelled (``sides``: one row per
    comparison and labeller, the label as x / y / tie, from ``sql/labeller_sides.sql``)."""
    by_labeller = {who: dict(zip(g["comparison_id"], g["side"])) for who, g in sides.groupby("labeller", sort=True)}
    out = []
    for a, b in combinations(sorted(by_labeller), 2):
        shared = sorted(set(by_labeller[a]) & set(by_labeller[b]))
        if not shared:
            continue
        la, lb = [by_labeller[a][c] for c in shared], [by_labeller[b][c] for c in shared]
        out.append({"labeller_a": a, "labeller_b": b, "n": len(shared),
                    "observed_agreement": ratio(sum(x == y for x, y in zip(la, lb)), len(shared)),
                    "kappa": kappa_from_labels(la, lb)})
    return out


def labeller_agreement(labels: pd.DataFrame, comparisons: pd.DataFrame | None = None) -> list[dict[str, Any]]:
    """``inter_annotator`` of stored labels (and the comparisons they label, when known) outside an audit run:
    what ``pref-pipeline review import`` prints."""
    con = duckdb.connect()
    try:
        for name, frame in (("human_labels", labels), ("comparisons", comparisons)):
            if frame is None:
                conform(con, name, None)
            else:
                con.register(f"{name}_frame", frame)
                conform(con, name, f"{name}_frame")
        con.execute(sql("labelled"))
        return inter_annotator(con.execute(sql("labeller_sides")).fetchdf())
    finally:
        con.close()


def flags(figures: dict[str, Any]) -> list[str]:
    agreement = figures["agreement"]
    out = []
    for pair in agreement["judge_vs_judge"]:
        if pair["kappa"] is not None and pair["n"] >= KAPPA_FLAG_MIN and pair["kappa"] < KAPPA_FLAG_BELOW:
            out.append(f"judges {pair['judge_a']} and {pair['judge_b']} barely agree (kappa {pair['kappa']:.2f} "
                       f"on {pair['n']} verdicts)")
    human = agreement["human"]
    if human["agreement_rate"] is not None and human["n_compared"] >= HUMAN_FLAG_MIN and \
            human["agreement_rate"] < HUMAN_FLAG_BELOW:
        out.append(f"judge agrees with human labels on only {human['agreement_rate']:.0%} of "
                   f"{human['n_compared']} labelled comparisons")
    return out


# --------------------------------------------------------------------------- the report

def why_no_kappa(agreement: dict[str, Any]) -> str:
    n_judges = agreement.get("n_judges")
    if n_judges == 0:
        return "No parsed verdict yet: kappa compares two judges' verdicts."
    if n_judges == 1:
        return ("One judge only: kappa needs two judges (or two versions of one) that judged the same comparisons; "
                "add a second judge to `judges` in the configuration.")
    return "No two judges judged the same comparison in the same order: kappa needs shared verdicts."


def render(figures: dict[str, Any], images: dict[str, str]) -> str:
    agreement = figures.get("agreement") or {"judge_vs_judge": [], "human": {}}
    human = agreement.get("human") or {}
    parts = ["## Agreement\nBetween judges (Cohen's kappa on the same verdicts; 1 = always agree, 0 = chance level):\n",
             table(["judge A", "judge B", "verdicts", "agree", "kappa"],
                   [[p["judge_a"], p["judge_b"], p["n"], pct(p["observed_agreement"]), p["kappa"]]
                    for p in agreement.get("judge_vs_judge", [])], why_empty=why_no_kappa(agreement)) + "\n"]
    if not human.get("n_labels"):
        parts.append("\nNo human labels yet: `pref-pipeline review export` writes a sheet to label, "
                     "`pref-pipeline review import FILE` reads it back.\n")
        return "\n".join(parts)
    categories = table(['category', 'labelled pairs', 'judge agrees', '95% CI'],
                       [[c['category'], c['n'], pct(c['agreement_rate']), ci_cell(c['ci95'])]
                        for c in human.get('by_category', [])],
                       why_empty="No labelled comparison has both a decisive human label and a pair from the judge: "
                                 "the human labels are ties, or the judge kept no pair for them.")
    verdicts = table(['judge', 'fingerprint', 'verdicts', 'accuracy', 'kappa'],
                     [[v['judge_model'], v['judge_fingerprint'], v['n_decisive'], pct(v['accuracy']), v['kappa']]
                      for v in human.get('per_verdict', [])],
                     why_empty="No parsed judge verdict on a labelled comparison: the labels are of comparisons "
                               "this database has no verdicts for.")
    parts.append(f"""
With human labels ({human['n_labels']} labels, {human['n_human_ties']} of them ties): the judge's pair matches the
human choice in **{pct(human['agreement_rate'])}**{ci(human.get('agreement_ci95'))} of {human['n_compared']} comparisons;
on {human['n_judge_undecided']} more the human chose but the judge gave no pair. Most divergent category:
**{human.get('most_divergent_category') or 'n/a'}**.

{categories}

Every single verdict (each order) against the human label:

{verdicts}
""")
    parts.append(_human_breakdowns(human))
    return "\n".join(parts)


def _human_breakdowns(human: dict[str, Any]) -> str:
    """The comparison with the machine's pair (the judges' or the construction's) by strategy, label source and
    labeller; the disagreements; inter-annotator kappa."""
    def shares(key: str, title: str) -> str:
        column = key.removeprefix("by_")
        return f"By {title}:\n\n" + table([column, "labels", "agrees", "95% CI"], [
            [e[column], e["n"], pct(e["agreement_rate"]), ci_cell(e["ci95"])] for e in human.get(key) or []],
            why_empty="No decisive human label of a comparison the machine made a pair of.")
    disagreements = human.get("disagreements") or {"n": 0, "rows": []}
    rows = table(["comparison", "strategy", "label source", "labeller", "person chose", "machine chose"], [
        [d["comparison_id"], d["strategy"], d["label_source"], d["labeller"], d["human_winner_id"],
         d["machine_winner_id"]] for d in disagreements.get("rows") or []],
        why_empty="No person chose differently from the judges or the construction.")
    kappas = table(["labeller A", "labeller B", "shared", "agree", "kappa"], [
        [k["labeller_a"], k["labeller_b"], k["n"], pct(k["observed_agreement"]), k["kappa"]]
        for k in human.get("inter_annotator") or []],
        why_empty="No two labellers labelled the same comparison.")
    return f"""
People against the pair the machine made (the judges', or the construction's: gold corruption, critique-revise,
strong vs weak...); {human.get('n_no_machine', 0)} label(s) of comparisons no machine decides (`human_ranked`).

{shares('by_strategy', 'strategy')}

{shares('by_label_source', 'label source (before people)')}

{shares('by_labeller', 'labeller')}

{disagreements['n']} disagreement(s) between a person and the machine (the person's label is kept, `label_source:
human`):

{rows}

Between labellers (Cohen's kappa on the comparisons both labelled):

{kappas}
"""
