"""Which comparisons people label, each with the probability it had of being chosen.

Three ways to choose (``select_items``):

- ``to_label``: every comparison waiting for people (status ``awaiting_label``, e.g. the ``human_ranked``
  strategy's); inclusion probability 1.
- ``random`` (the seed's exercise, ``review export``'s default): ``n`` kept pairs drawn at random within
  each category (``allocate``); an item's inclusion probability is its category's share drawn.
- ``uncertain``: the comparisons where a label teaches most — the judges disagreed (a split panel vote, or
  the judges against the construction), were inconsistent across orders, or were least confident — plus
  a random share (``random_share`` of ``n``, at least one) drawn uniformly from the other reviewable
  comparisons, so that the agreement estimate stays unbiased. The targeted items have inclusion
  probability 1; each random one ``k / M`` (``k`` drawn of the ``M`` comparisons not targeted).

The agreement of people with the pipeline over all reviewable comparisons is then estimated by weighting
each labelled item by ``1 / inclusion_probability`` (Horvitz-Thompson weights, normalised as a ratio:
``sum(w * agree) / sum(w)``, the Hajek estimator; ``audit.stats.weighted_agreement``, which the audit reports
as ``agreement.human.agreement_rate_weighted``). The targeted items stand for
themselves only and the random share for everything not targeted, so the hard cases do not drag the
estimate down. Every item carries ``selection`` and ``inclusion_probability`` into the sheet's key, the
Label Studio key and the stored ``human_labels`` rows.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from pref_pipeline import store
from pref_pipeline.ids import comparison_id_of, pair_id_of
from pref_pipeline.paths import Home
from pref_pipeline.quarantine import AWAITING_LABEL, PAIRS_GATE_STAGE

STRATEGIES = ("random", "uncertain")
DEFAULT_RANDOM_SHARE = 0.25
ITEM_COLUMNS = ["comparison_id", "pair_id", "prompt_id", "category", "prompt", "messages", "candidate_x_id",
                "candidate_y_id", "text_x", "text_y", "chosen_candidate_id", "strategy", "status", "batch_id",
                "selection", "inclusion_probability", "uncertainty"]
# Comparison statuses that say the judges disagreed (among themselves or with the construction).
DISAGREEMENT_STATUSES = ("judges_disagree", "judge_disagrees_with_construction")
INCONSISTENT_STATUSES = ("inconsistent",)


class SelectionError(ValueError):
    """Nothing can be chosen as asked (no tables, an unknown strategy)."""


def allocate(counts: dict[str, int], n: int) -> dict[str, int]:
    """How many pairs to draw from each category: proportional to its size (largest remainders), at least
    one from every category when ``n`` allows, never more than it has."""
    total = sum(counts.values())
    if n >= total:
        return dict(counts)
    categories = sorted(counts)
    take = {c: 0 for c in categories}
    if n >= len(categories):
        for c in categories:
            take[c] = 1
    remaining = n - sum(take.values())
    spare = {c: counts[c] - take[c] for c in categories}
    spare_total = sum(spare.values())
    if remaining and spare_total:
        quotas = {c: remaining * spare[c] / spare_total for c in categories}
        for c in categories:
            take[c] += min(spare[c], math.floor(quotas[c]))
        left = n - sum(take.values())
        by_remainder = sorted(categories, key=lambda c: (-(quotas[c] - math.floor(quotas[c])), c))
        for c in by_remainder:
            if left <= 0:
                break
            if take[c] < counts[c]:
                take[c] += 1
                left -= 1
    return take


def stratified_sample(pairs: pd.DataFrame, n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` pairs drawn at random within each category (see ``allocate``), sorted by category, with each
    one's ``inclusion_probability`` (drawn / size of its category)."""
    if pairs.empty:
        return pairs.assign(inclusion_probability=pd.Series(dtype=float))
    frame = pairs.assign(category=pairs["category"].fillna("uncategorized"))
    counts = frame["category"].value_counts().to_dict()
    take = allocate(counts, n)
    parts = [group.sample(n=take[category], random_state=seed).assign(inclusion_probability=take[category] / len(group))
             for category, group in frame.groupby("category", sort=True) if take.get(category)]
    return pd.concat(parts).sort_values(["category", "pair_id"]).reset_index(drop=True)


def kept_pairs(home: Home) -> pd.DataFrame:
    """Stored pairs, minus those of batches whose gate failed (they are not in the dataset)."""
    pairs = store.read_table(home, "preference_pairs")
    if pairs is None or pairs.empty:
        return pd.DataFrame(columns=["pair_id", "category"])
    quarantine = store.read_table(home, store.QUARANTINE_TABLE)
    if quarantine is not None and len(quarantine):
        rejected = set(quarantine.loc[quarantine["stage"] == PAIRS_GATE_STAGE, "item_id"].dropna())
        pairs = pairs[~pairs["pair_id"].isin(rejected)]
    return pairs


def reviewable(home: Home) -> pd.DataFrame:
    """Every stored comparison of two candidates with both texts (ITEM_COLUMNS but the selection's), whatever
    its status or its batch's gate: the texts from ``candidates`` (or the stored pair), the prompt and its
    ``messages`` from ``prompts`` (or the pair), the pair's chosen candidate when there is a pair."""
    tables = {name: store.read_table(home, name) for name in ("comparisons", "candidates", "prompts",
                                                               "preference_pairs")}
    comparisons = tables["comparisons"]
    if comparisons is None or comparisons.empty:
        return pd.DataFrame(columns=ITEM_COLUMNS)
    texts: dict[str, str] = {}
    prompt_text: dict[str, str] = {}
    category: dict[str, str] = {}
    messages: dict[str, str] = {}
    chosen: dict[str, str] = {}
    pairs = tables["preference_pairs"]
    if pairs is not None and len(pairs):
        for p in pairs.to_dict(orient="records"):
            texts[p["chosen_candidate_id"]] = p["chosen"]
            texts[p["rejected_candidate_id"]] = p["rejected"]
            prompt_text[p["prompt_id"]] = p["prompt"]
            category[p["prompt_id"]] = p.get("category")
            if _present(p.get("messages")):
                messages[p["prompt_id"]] = p["messages"]
            chosen[comparison_id_of(p["pair_id"])] = p["chosen_candidate_id"]
    candidates = tables["candidates"]
    if candidates is not None and len(candidates):
        ok = candidates[candidates["error"].isna() & candidates["text"].fillna("").str.strip().ne("")]
        texts.update(zip(ok["candidate_id"], ok["text"]))
    prompts = tables["prompts"]
    if prompts is not None and len(prompts):
        prompt_text.update(zip(prompts["prompt_id"], prompts["prompt"]))
        category.update(zip(prompts["prompt_id"], prompts["category"]))
        if "messages" in prompts:
            messages.update((k, v) for k, v in zip(prompts["prompt_id"], prompts["messages"]) if _present(v))
    frame = comparisons.drop_duplicates("comparison_id", keep="last").copy()
    frame = frame[frame["candidate_x_id"].isin(texts.keys()) & frame["candidate_y_id"].isin(texts.keys())
                  & frame["prompt_id"].isin(prompt_text.keys())]
    out = pd.DataFrame({
        "comparison_id": frame["comparison_id"], "pair_id": frame["comparison_id"].map(pair_id_of),
        "prompt_id": frame["prompt_id"], "category": frame["prompt_id"].map(category).fillna("uncategorized"),
        "prompt": frame["prompt_id"].map(prompt_text), "messages": frame["prompt_id"].map(messages),
        "candidate_x_id": frame["candidate_x_id"], "candidate_y_id": frame["candidate_y_id"],
        "text_x": frame["candidate_x_id"].map(texts), "text_y": frame["candidate_y_id"].map(texts),
        "chosen_candidate_id": frame["comparison_id"].map(chosen), "strategy": frame.get("strategy"),
        "status": frame["status"], "batch_id": frame.get("batch_id"),
        "uncertainty": uncertainty(frame),
    })
    return out.reindex(columns=ITEM_COLUMNS).reset_index(drop=True)


def uncertainty(comparisons: pd.DataFrame) -> pd.Series:
    """How much a person's label would teach, higher first: 3 + (1 - agreement) where the judges disagreed
    (among themselves, with the construction, or a split panel), 2 + ... where they were inconsistent across
    orders, else 1 - confidence (0 without one)."""
    status = comparisons["status"].astype("string")
    agreement = pd.to_numeric(comparisons.get("agreement"), errors="coerce") if "agreement" in comparisons else None
    confidence = (pd.to_numeric(comparisons["confidence"], errors="coerce") if "confidence" in comparisons
                  else pd.Series(np.nan, index=comparisons.index))
    split = (agreement < 1).fillna(False) if agreement is not None else pd.Series(False, index=comparisons.index)
    disagree = status.isin(DISAGREEMENT_STATUSES).fillna(False) | split
    inconsistent = status.isin(INCONSISTENT_STATUSES).fillna(False)
    spread = (1 - (agreement if agreement is not None else confidence)).fillna(0).clip(0, 1)
    score = (1 - confidence).fillna(0).clip(0, 1)
    score = score.where(~inconsistent, 2 + spread)
    return score.where(~disagree, 3 + spread).astype(float)


def awaiting(home: Home) -> pd.DataFrame:
    """The comparisons waiting for people (status ``awaiting_label``), inclusion probability 1."""
    items = reviewable(home)
    items = items[items["status"] == AWAITING_LABEL]
    return items.assign(selection="to_label", inclusion_probability=1.0).sort_values(
        ["batch_id", "comparison_id"]).reset_index(drop=True)


def random_items(home: Home, n: int, seed: int = 0) -> pd.DataFrame:
    """The seed's exercise: ``n`` kept pairs, stratified by category, as items."""
    pairs = kept_pairs(home)
    sample = stratified_sample(pairs, n, seed)
    if sample.empty:
        return pd.DataFrame(columns=ITEM_COLUMNS)
    items = reviewable(home).set_index("comparison_id")
    wanted = sample["pair_id"].map(comparison_id_of).to_numpy()
    chosen = items.reindex(wanted).rename_axis("comparison_id")
    chosen["inclusion_probability"] = sample["inclusion_probability"].to_numpy()
    chosen["selection"] = "random"
    return chosen.dropna(subset=["text_x"]).reset_index().reindex(columns=ITEM_COLUMNS)


def uncertain_items(home: Home, n: int, seed: int = 0, random_share: float = DEFAULT_RANDOM_SHARE) -> pd.DataFrame:
    """The ``n - k`` most uncertain judged comparisons and ``k = max(1, round(n * random_share))`` drawn
    uniformly from the rest (see the module's docstring for the weights)."""
    items = reviewable(home)
    items = items[(items["status"] != AWAITING_LABEL) & items["status"].notna()]
    if items.empty or n <= 0:
        return pd.DataFrame(columns=ITEM_COLUMNS)
    k = min(max(1, round(n * random_share)), n) if n > 1 else 0
    ranked = items.sort_values(["uncertainty", "comparison_id"], ascending=[False, True])
    targeted = ranked.head(n - k).assign(selection="uncertain", inclusion_probability=1.0)
    rest = ranked.iloc[len(targeted):]
    k = min(k, len(rest))
    drawn = rest.sample(n=k, random_state=seed) if k else rest.head(0)
    drawn = drawn.assign(selection="uncertain_random", inclusion_probability=(k / len(rest)) if len(rest) else 1.0)
    return pd.concat([targeted, drawn]).reset_index(drop=True).reindex(columns=ITEM_COLUMNS)


def select_items(home: Home, *, to_label: bool = False, sample: int | None = None, strategy: str = "random",
                 seed: int = 0, random_share: float = DEFAULT_RANDOM_SHARE) -> pd.DataFrame:
    """What people label (ITEM_COLUMNS): the comparisons awaiting labels (``to_label``), or a sample of
    ``sample`` items by ``strategy`` (``random``: kept pairs by category; ``uncertain``: see the module)."""
    if to_label:
        return awaiting(home)
    if strategy not in STRATEGIES:
        raise SelectionError(f"unknown review strategy {strategy!r}: use one of {', '.join(STRATEGIES)}")
    n = 20 if sample is None else sample
    if strategy == "uncertain":
        return uncertain_items(home, n, seed, random_share)
    return random_items(home, n, seed)


def _present(value: object) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value)) and value is not pd.NA \
        and str(value).strip() != ""
