"""Labels by construction: the strategies' planned comparisons applied to the judged outcome.

``pairs.build_preference_pairs`` turns verdicts into pairs; given the plan (``generation.plan_comparisons``
with the prompts) this module then settles every planned comparison by what its strategy knows:

- ``expected`` and not judged (gold over its corrupted copy, revision over original, ...): the pair is
  made by construction (status ``construction``, ``label_source: construction``), no judge involved;
- ``expected`` and judged (``strong_vs_weak`` with ``confirm``): the judges agree with the construction
  -> kept, ``label_source: construction+judge``; they prefer the other -> no pair, status
  ``judge_disagrees_with_construction`` (quarantined with that reason); no verdict (tie, inconsistent,
  unparseable, error) -> the construction decides (``construction``), the judges' status kept in
  ``judge_status``;
- judged with no ``expected`` (``sampling``, ``human_vs_model``): as the judges decide (``judge``);
- a no-pair entry (``reason``: ``no_reference``, ``revision_identical``, ...): a comparison row with
  that status and ``detail``, which the filters quarantine;
- neither judged nor ``expected`` (``human_ranked``): it waits for people, status ``awaiting_label``, no
  winner, not quarantined; a label in ``human_labels`` decides it (``human_pairs``).

Every pair's ``generation_method`` is its strategy's method and ``strategy_params`` its parameters (the chosen
candidate's), with what the planned comparison adds of its own (``PlannedComparison.params``: a graded pair's
``edit_distance``, an axiom, the scores that decided it) merged in. A pair made by construction has no judge's
``judgment``; its ``critique`` is the critique of the rejected response the chosen one answers
(``critique_of``), as ``sql/pairs.sql`` finds it for the judged pairs.
"""

from __future__ import annotations

import json

import pandas as pd

from pref_pipeline import schema
from pref_pipeline.ids import pair_id_of
from pref_pipeline.quarantine import AWAITING_LABEL
from pref_pipeline.strategies import PlannedComparison
from pref_pipeline.strategies.calls import notes_of

CONSTRUCTION = "construction"
JUDGE = "judge"
CONFIRMED = "construction+judge"
DISAGREES = "judge_disagrees_with_construction"
NO_JUDGE = "none"  # judge_model_id of a pair no judge decided


def _expected_id(p: PlannedComparison) -> str | None:
    return None if p.expected is None else (p.x_id if p.expected == "x" else p.y_id)


def _with_pair_params(params: object, extra: object) -> object:
    """A candidate's ``strategy_params`` with a planned comparison's own ``params`` merged in (as they were without)."""
    if not extra:
        return params
    return json.dumps({**params_text(params), **dict(extra)}, sort_keys=True, separators=(",", ":"))


def critiques_by_parent(cands: dict) -> dict[str, str]:
    """Per candidate id, the critique of it that a candidate made from it keeps in its notes (critique_revise: the
    revision's, whose parent is the original); the first by candidate id when several do."""
    out: dict[str, str] = {}
    for cid in sorted(cands):
        row = cands[cid]
        parent, critique = row.get("parent_id"), notes_of(row).get("critique")
        if isinstance(parent, str) and isinstance(critique, str) and parent not in out:
            out[parent] = critique
    return out


def critique_of(chosen: dict, rejected_id: str, by_parent: dict[str, str]) -> str | None:
    """The critique of the rejected response that the chosen one answers: in the chosen one's notes, or kept by a
    candidate made from the rejected one (the revised answer beats the original; the separate good answer beats the
    original the revision did not fix)."""
    own = notes_of(chosen).get("critique")
    return own if isinstance(own, str) else by_parent.get(rejected_id)


def unjudged_pair(p: PlannedComparison, winner: str, prompts: dict, categories: dict, cands: dict,
                  by_parent: dict[str, str], *, label_source: str = CONSTRUCTION, criteria: str | None = None) -> dict:
    """A pair no judge decided: ``winner`` over the other candidate of ``p``, by construction (``criteria``
    unset: "construction: <role> over <role>") or by people (``human_pairs``, with its own ``label_source``)."""
    loser = p.y_id if winner == p.x_id else p.x_id
    ch, rj = cands[winner], cands[loser]
    return {
        "pair_id": pair_id_of(p.comparison_id), "prompt_id": p.prompt_id, "prompt": prompts.get(p.prompt_id),
        "chosen": ch["text"], "rejected": rj["text"], "generation_method": p.strategy,
        "judge_model_id": NO_JUDGE, "criteria": criteria or f"construction: {ch.get('role')} over {rj.get('role')}",
        "category": categories.get(p.prompt_id), "confidence": None, "verdict_ab": None, "verdict_ba": None,
        "reasoning": None, "judge_fingerprint": label_source,
        "chosen_candidate_id": winner, "rejected_candidate_id": loser,
        "chosen_model": ch["generator_model"], "rejected_model": rj["generator_model"],
        "chosen_generator": ch["generator_label"], "rejected_generator": rj["generator_label"],
        "chosen_sampling": ch["sampling"], "rejected_sampling": rj["sampling"],
        "chosen_strategy": ch["strategy"], "rejected_strategy": rj["strategy"],
        "judged_at": None, "generated_at": max(ch["created_at"], rj["created_at"]),
        "label_source": label_source, "strategy_params": _with_pair_params(ch.get("strategy_params"), p.params),
        "judgment": None, "critique": critique_of(ch, loser, by_parent),
    }


def apply_plan(pairs: pd.DataFrame, comparisons: pd.DataFrame, planned: list[PlannedComparison],
               prompts: pd.DataFrame, candidates: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The judged pairs and comparisons, settled by the plan (see the module docstring)."""
    plan = {p.comparison_id: p for p in planned}
    cands = {r["candidate_id"]: r for r in candidates.to_dict("records")} if len(candidates) else {}
    prompt_texts = dict(zip(prompts["prompt_id"], prompts["prompt"])) if len(prompts) else {}
    categories = dict(zip(prompts["prompt_id"], prompts["category"])) if len(prompts) else {}
    by_parent = critiques_by_parent(cands)

    comps = comparisons.to_dict("records")
    dropped: set[str] = set()  # pair ids of judged pairs the construction overrules
    confirmed: set[str] = set()
    constructed: list[dict] = []
    for row in comps:
        p = plan.get(row["comparison_id"])
        row["strategy"] = p.strategy if p else None
        row["judge_status"] = row["status"]
        row["label_source"] = JUDGE if pd.notna(row["winner_id"]) else None
        expected = _expected_id(p) if p else None
        row["expected_id"] = expected
        if expected is None:
            continue
        if row["status"] == "consistent" and row["winner_id"] == expected:
            row["label_source"] = CONFIRMED
            confirmed.add(pair_id_of(row["comparison_id"]))
        elif row["status"] == "consistent":
            dropped.add(pair_id_of(row["comparison_id"]))
            row.update(status=DISAGREES, winner_id=None, label_source=None,
                       detail=f"the judges preferred {row['winner_id']} in both orders; by construction "
                              f"{expected} ({cands.get(expected, {}).get('role')}) wins")
        else:
            row.update(status=CONSTRUCTION, winner_id=expected, label_source=CONSTRUCTION,
                       detail=f"the judges gave no verdict ({row['judge_status']}); the construction decides")
            constructed.append(unjudged_pair(p, expected, prompt_texts, categories, cands, by_parent))
    judged_ids = {r["comparison_id"] for r in comps}
    for p in planned:
        if p.comparison_id in judged_ids or p.judged and not p.reason:
            continue  # judged: settled above (a judged comparison without verdicts has no row, as before)
        base = {"comparison_id": p.comparison_id, "prompt_id": p.prompt_id, "candidate_x_id": p.x_id or None,
                "candidate_y_id": p.y_id or None, "judge_models": None, "judge_fingerprints": None,
                "strategy": p.strategy, "judge_status": None, "expected_id": _expected_id(p)}
        if p.reason:
            comps.append({**base, "status": p.reason, "winner_id": None, "label_source": None, "detail": p.detail})
        elif p.expected is not None:
            winner = _expected_id(p)
            comps.append({**base, "status": CONSTRUCTION, "winner_id": winner, "label_source": CONSTRUCTION,
                          "detail": None})
            constructed.append(unjudged_pair(p, winner, prompt_texts, categories, cands, by_parent))
        else:  # no judge asked and no winner known: people decide (human_pairs), until then it waits
            comps.append({**base, "status": AWAITING_LABEL, "winner_id": None, "label_source": None,
                          "detail": "no judge is asked: waits for a human label"})
        judged_ids.add(p.comparison_id)

    kept = pairs[~pairs["pair_id"].isin(dropped)].copy()
    method_of = {pair_id_of(cid): p.strategy for cid, p in plan.items()}
    kept["generation_method"] = [method_of.get(pid, m) for pid, m in zip(kept["pair_id"], kept["generation_method"])]
    kept["label_source"] = [CONFIRMED if pid in confirmed else JUDGE for pid in kept["pair_id"]]
    params_of = {pair_id_of(cid): p.params for cid, p in plan.items() if p.params}
    kept["strategy_params"] = [_with_pair_params(cands.get(c, {}).get("strategy_params"), params_of.get(pid))
                               for pid, c in zip(kept["pair_id"], kept["chosen_candidate_id"])]
    out_pairs = pd.concat([schema.conform("preference_pairs", kept),
                           schema.from_rows("preference_pairs", constructed)], ignore_index=True) \
        if constructed else schema.conform("preference_pairs", kept)
    return (schema.conform("preference_pairs", out_pairs)[schema.names("preference_pairs")],
            schema.from_rows("comparisons", comps))


def params_text(value: object) -> dict:
    """A ``strategy_params`` cell as a dict ({} when missing)."""
    return json.loads(value) if isinstance(value, str) and value else {}
