"""Human labels as a label source: in the pairs step, what people labelled decides the comparison.

People label comparisons (``pref-pipeline review ...``: the CSV sheet, Label Studio) into ``human_labels``, one row
per (source, comparison, labeller). In the pairs step of a batch, after the judges and the construction settled
its comparisons (``construction.apply_plan``), every comparison of the batch that people labelled is settled by
them, whatever strategy planned it:

- the people's decision is the majority of the labellers' decisive labels (each labeller's newest label counts
  once; labels of known-answer sets are not people labelling this batch and are left out); labellers split
  evenly give no decision, and the comparison stays as the machine left it (an ``awaiting_label`` one waits on);
- every label a tie: no pair, status ``human_tie`` (quarantined with that reason, as a judges' tie is);
- the machine (judges or construction) chose the same winner: its pair is kept, ``label_source`` becomes
  ``human+judge`` or ``human+construction``;
- the machine chose the other one, or gave no pair, or was never asked (``human_ranked``): one pair with the
  people's winner as chosen, status ``human``, ``label_source: human``; a disagreement with the machine keeps
  the people's label and stays visible (``machine_winner_id`` names what the machine chose).

Every comparison keeps what the machine decided before people (``machine_status``, ``machine_winner_id``,
``machine_label_source``) beside ``human_winner_id`` and ``n_human_labels``: the audit compares the two.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pandas as pd

from pref_pipeline import schema
from pref_pipeline.construction import critiques_by_parent, unjudged_pair
from pref_pipeline.ids import pair_id_of
from pref_pipeline.ids import short_hash
from pref_pipeline.quarantine import AWAITING_LABEL, HUMAN_TIE
from pref_pipeline.strategies import PlannedComparison

# The sources of labels people made for the pipeline's own comparisons (the CSV sheet, Label Studio); any other
# source is a known-answer set, whose labels are about its own comparisons.
PEOPLE_SOURCES = ("review", "label_studio")
HUMAN = "human"  # label_source, and status, of a comparison people decided against or without the machine
HUMAN_JUDGE, HUMAN_CONSTRUCTION = "human+judge", "human+construction"  # people agreed with the judges / construction
LABELS_DIGEST = "human_labels_digest"  # metadata of a batch's comparisons: the labels its pairs step applied


@dataclass(frozen=True)
class HumanDecision:
    """What the labellers of one comparison decided."""

    winner: str | None  # the majority of the decisive labels (None: all ties, or split evenly)
    tie: bool  # every labeller labelled a tie
    labellers: tuple[str, ...]

    @property
    def decided(self) -> bool:
        return self.winner is not None or self.tie


def people_labels(labels: pd.DataFrame | None, comparison_ids) -> pd.DataFrame:
    """The labels people made (``PEOPLE_SOURCES``) of these comparisons (empty when there are none)."""
    if labels is None or labels.empty:
        return schema.from_rows("human_labels", [])
    ids = set(comparison_ids)
    mine = labels["source"].isin(PEOPLE_SOURCES) & labels["comparison_id"].isin(ids)
    return labels[mine.fillna(False).astype(bool)]


def labels_digest(labels: pd.DataFrame) -> str:
    """A hash of the labels (ids, winners, times): the pairs step records it, the label sensor compares it with
    the stored labels to know which batches got new ones ("" for none)."""
    if labels.empty:
        return ""
    stamps = [pd.Timestamp(t).isoformat() if pd.notna(t) else "" for t in labels["labelled_at"]]
    keys = sorted(zip(labels["label_id"].astype(str), labels["human_winner_id"].astype(object).fillna(""), stamps))
    return short_hash(*("/".join(k) for k in keys))


def batch_label_digests(labels: pd.DataFrame | None, comparisons: pd.DataFrame | None) -> dict[str, str]:
    """Per batch (the stored comparisons' ``batch_id``), the digest of what people labelled of its comparisons:
    the same ``labels_digest`` its pairs step records when it applies them (batches without labels left out)."""
    if labels is None or comparisons is None or labels.empty or comparisons.empty:
        return {}
    out = {}
    for batch, ids in comparisons.groupby(schema.BATCH_COLUMN, sort=True)["comparison_id"]:
        digest = labels_digest(people_labels(labels, ids))
        if digest:
            out[str(batch)] = digest
    return out


def decisions(labels: pd.DataFrame, candidates_of: dict[str, tuple[str, str]]) -> dict[str, HumanDecision]:
    """Per labelled comparison, the people's decision (see the module docstring). ``candidates_of``: the two
    candidate ids of each comparison; a label naming neither is left out."""
    out: dict[str, HumanDecision] = {}
    ordered = labels.assign(_who=labels["labeller"].astype(object).where(labels["labeller"].notna(), labels["label_id"]))
    ordered = ordered.sort_values("labelled_at", kind="stable", na_position="first")
    for comparison_id, group in ordered.groupby("comparison_id", sort=True):
        pair = candidates_of.get(comparison_id)
        if pair is None:
            continue
        newest = group.drop_duplicates("_who", keep="last")  # a labeller's newest label counts, once
        winners = [w if pd.notna(w) else None for w in newest["human_winner_id"]]
        valid = [w for w in winners if w is None or w in pair]
        if not valid:
            continue
        votes = Counter(w for w in valid if w is not None).most_common()
        winner = votes[0][0] if votes and (len(votes) == 1 or votes[0][1] > votes[1][1]) else None
        who = tuple(sorted(str(w) for w, v in zip(newest["_who"], winners) if v is None or v in pair))
        out[str(comparison_id)] = HumanDecision(winner, tie=not votes, labellers=who)
    return out


def _with_people(machine: object) -> str:
    return HUMAN_CONSTRUCTION if isinstance(machine, str) and machine.startswith("construction") else HUMAN_JUDGE


def apply_human_labels(pairs: pd.DataFrame, comparisons: pd.DataFrame, labels: pd.DataFrame | None,
                       planned: list[PlannedComparison], prompts: pd.DataFrame, candidates: pd.DataFrame,
                       ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The pairs and comparisons settled by the machine, then by people where they labelled (module docstring)."""
    comps = comparisons.to_dict("records")
    for row in comps:
        row.update(machine_status=row["status"], machine_winner_id=row["winner_id"],
                   machine_label_source=row.get("label_source"), human_winner_id=None, n_human_labels=0)
    candidates_of = {r["comparison_id"]: (r["candidate_x_id"], r["candidate_y_id"]) for r in comps
                     if isinstance(r["candidate_x_id"], str) and isinstance(r["candidate_y_id"], str)}
    decided = decisions(people_labels(labels, candidates_of), candidates_of)
    if not decided:
        return pairs, schema.from_rows("comparisons", comps)

    plan = {p.comparison_id: p for p in planned}
    cands = {r["candidate_id"]: r for r in candidates.to_dict("records")} if len(candidates) else {}
    prompt_texts = dict(zip(prompts["prompt_id"], prompts["prompt"])) if len(prompts) else {}
    categories = dict(zip(prompts["prompt_id"], prompts["category"])) if len(prompts) else {}
    by_parent = critiques_by_parent(cands)
    dropped: set[str] = set()
    relabelled: dict[str, str] = {}  # pair id -> label_source of a machine pair people agreed with
    made: list[dict] = []
    for row in comps:
        decision = decided.get(row["comparison_id"])
        if decision is None:
            continue
        row["n_human_labels"] = len(decision.labellers)
        who = ", ".join(decision.labellers)
        pair_id = pair_id_of(row["comparison_id"])
        if not decision.decided:
            if row["status"] == AWAITING_LABEL:
                row["detail"] = f"labellers split evenly ({who}): waits for another label"
            continue
        machine = row["machine_winner_id"] if pd.notna(row["machine_winner_id"]) else None
        if decision.tie:
            dropped.add(pair_id)
            row.update(status=HUMAN_TIE, winner_id=None, label_source=None,
                       detail=f"labelled a tie by {who}" + (f"; the machine chose {machine}" if machine else ""))
            continue
        row["human_winner_id"] = decision.winner
        if machine == decision.winner:
            row["label_source"] = relabelled[pair_id] = _with_people(row["machine_label_source"])
            continue
        dropped.add(pair_id)
        row.update(status=HUMAN, winner_id=decision.winner, label_source=HUMAN,
                   detail=(f"people ({who}) chose {decision.winner}; the {row['machine_label_source']} chose {machine}"
                           if machine else f"people ({who}) chose {decision.winner}"))
        p = plan.get(row["comparison_id"]) or PlannedComparison(
            row["prompt_id"], row["candidate_x_id"], row["candidate_y_id"], row.get("strategy") or HUMAN)
        made.append(unjudged_pair(p, decision.winner, prompt_texts, categories, cands, by_parent, label_source=HUMAN,
                                  criteria=f"human: {who}"))

    kept = pairs[~pairs["pair_id"].isin(dropped)].copy()
    kept["label_source"] = [relabelled.get(pid, ls) for pid, ls in zip(kept["pair_id"], kept["label_source"])]
    out = schema.conform("preference_pairs", kept)
    if made:
        out = pd.concat([out, schema.from_rows("preference_pairs", made)], ignore_index=True)
    return schema.conform("preference_pairs", out)[schema.names("preference_pairs")], \
        schema.from_rows("comparisons", comps)
