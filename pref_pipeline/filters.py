"""Row filters applied to the pairs before the gate; what they drop goes to quarantine (``quarantine.py``).

Nothing is dropped without a trace: every comparison that did not become a pair (tie, position-
inconsistent, unparseable, failed call, judges disagree), every pair a filter drops and every failed
generation call gets one ``quarantine`` row with its ``stage``, ``reason``, a readable ``detail`` and
the original row as JSON (``record``). Each filter runs over whole columns; near-duplicate prompts use
MinHash (datasketch).

Reasons, in the order they are tried (a pair gets the first that applies, ``detail`` lists all):
``duplicate_prompt``, ``near_duplicate_prompt``, ``empty_response``, ``degenerate_response``,
``response_too_long``, ``identical_responses``, ``near_identical_responses``, ``low_confidence``.
A comparison that waits for people (``awaiting_label``) is not quarantined: it is not lost, it waits.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cache

import numpy as np
import pandas as pd

from pref_pipeline import schema
from pref_pipeline.config import FiltersSpec
from pref_pipeline.metrics import jaccard, shingles, word_count, words
from pref_pipeline.quarantine import (
    AWAITING_LABEL,
    CANDIDATES_STAGE,
    EXPORT_STAGE,
    FILTERS_STAGE,
    GENERATION_ERROR,
    LENGTH_REBALANCE,
    PAIRS_STAGE,
    concat,
    empty_quarantine,
    quarantine_rows,
)

PAIRS = "preference_pairs"
DEGENERATE_MIN_WORDS = 8  # the distinct-word test applies from this many words on
MINHASH_PERMUTATIONS = 128


@dataclass(frozen=True)
class FilterResult:
    pairs: pd.DataFrame  # the kept pairs, same columns as given
    quarantine: pd.DataFrame  # quarantine.QUARANTINE_COLUMNS (+ batch_id when the inputs carry one)


# --------------------------------------------------------------------------- text helpers

def _normalized(text: object) -> str:
    return " ".join(words(text))


def response_problem(text: object, spec: FiltersSpec) -> tuple[str, str] | None:
    """(reason, detail) when a single response is unusable, else None."""
    raw = text if isinstance(text, str) else ""
    tokens = raw.split()
    if spec.min_response_words is not None and len(tokens) < spec.min_response_words:
        return "empty_response", f"{len(tokens)} word(s), fewer than {spec.min_response_words}"
    if spec.min_distinct_word_ratio is not None and tokens:
        lowered = [t.lower() for t in tokens]
        distinct = len(set(lowered))
        if (len(tokens) >= 3 and distinct == 1) or (
                len(tokens) >= DEGENERATE_MIN_WORDS and distinct / len(tokens) < spec.min_distinct_word_ratio):
            return "degenerate_response", f"{distinct} distinct of {len(tokens)} words (repetition)"
    if spec.max_response_chars is not None and len(raw) > spec.max_response_chars:
        return "response_too_long", f"{len(raw)} characters, more than {spec.max_response_chars}"
    return None


# --------------------------------------------------------------------------- prompts

@cache
def _lsh_bands(threshold: float) -> list[tuple[int, int]]:
    """The (start, end) of each LSH band datasketch picks for this threshold (its search costs ~0.1 s: once)."""
    from datasketch import MinHashLSH

    return list(MinHashLSH(threshold=threshold, num_perm=MINHASH_PERMUTATIONS).hashranges)


def duplicate_prompts(prompts: pd.DataFrame, threshold: float | None) -> dict[str, tuple[str, str, float]]:
    """``{prompt_id: (reason, kept_prompt_id, similarity)}`` for prompts that repeat an earlier one.

    Exact repeats after normalising case, spacing and punctuation are ``duplicate_prompt``; with a
    ``threshold``, prompts whose MinHash-estimated Jaccard similarity of word 3-shingles reaches it
    are ``near_duplicate_prompt``. The first prompt (in frame order) of each group is kept.
    """
    found: dict[str, tuple[str, str, float]] = {}
    seen: dict[str, str] = {}
    distinct: list[tuple[str, str]] = []  # (prompt_id, normalised text) of the first of each exact group
    for prompt_id, text in zip(prompts["prompt_id"], prompts["prompt"]):
        key = _normalized(text)
        if key in seen:
            found[prompt_id] = ("duplicate_prompt", seen[key], 1.0)
        else:
            seen[key] = prompt_id
            distinct.append((prompt_id, key))
    if threshold is None or len(distinct) < 2:
        return found
    from datasketch import MinHash

    # MinHash signatures of every distinct prompt at once (one set of permutations), as a matrix.
    grams = ([g.encode("utf-8") for g in shingles(key.split())] for _, key in distinct)
    signatures = np.vstack([m.hashvalues for m in MinHash.generator(grams, num_perm=MINHASH_PERMUTATIONS)])
    ids = [prompt_id for prompt_id, _ in distinct]
    # LSH candidates: prompts whose signatures agree on a whole band (datasketch's bands for this threshold).
    earlier: dict[int, set[int]] = {}
    for start, end in _lsh_bands(threshold):
        band = np.ascontiguousarray(signatures[:, start:end])
        keys = band.view(np.dtype((np.void, band.dtype.itemsize * (end - start)))).ravel()
        _, bucket = np.unique(keys, return_inverse=True)
        shared = np.flatnonzero(np.bincount(bucket)[bucket] > 1)
        for members in pd.Series(shared).groupby(bucket[shared]).agg(list):
            for position, i in enumerate(members):
                earlier.setdefault(i, set()).update(members[:position])
    # Earlier first: a prompt is a near duplicate of the most similar earlier prompt that was kept, when the
    # estimated similarity reaches the threshold (as querying a MinHashLSH of the kept prompts would find).
    near: set[int] = set()
    for i in sorted(earlier):
        best = max(((float(np.count_nonzero(signatures[i] == signatures[j])) / MINHASH_PERMUTATIONS, ids[j])
                    for j in earlier[i] if j not in near), default=(0.0, None))
        if best[1] is not None and best[0] >= threshold:
            found[ids[i]] = ("near_duplicate_prompt", best[1], round(best[0], 3))
            near.add(i)
    return found
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=MINHASH_PERMUTATIONS)
    # All signatures at once (one set of permutations, hashed in batches), then the earlier-first scan.
    grams = ([g.encode("utf-8") for g in shingles(key.split())] for _, key in distinct)
    kept: dict[str, MinHash] = {}
    for (prompt_id, _), signature in zip(distinct, MinHash.generator(grams, num_perm=MINHASH_PERMUTATIONS)):
        # LSH gives candidates; keep the best one whose estimated similarity really reaches the threshold.
        best = max(((signature.jaccard(kept[c]), c) for c in lsh.query(signature)), default=(0.0, None))
        if best[1] is not None and best[0] >= threshold:
            found[prompt_id] = ("near_duplicate_prompt", best[1], round(float(best[0]), 3))
            continue
        lsh.insert(prompt_id, signature)
        kept[prompt_id] = signature
    return found


# --------------------------------------------------------------------------- the filters

def _low_confidence(pairs: pd.DataFrame, spec: FiltersSpec) -> list[tuple[str, str] | None]:
    """Pairs whose confidence is below ``min_confidence`` (no confidence: kept)."""
    if spec.min_confidence is None or "confidence" not in pairs.columns:
        return [None] * len(pairs)
    confidence = pd.to_numeric(pairs["confidence"], errors="coerce").astype("float64")
    low = (confidence < spec.min_confidence).fillna(False)
    return [("low_confidence", f"confidence {c:.2f} < {spec.min_confidence}") if is_low else None
            for c, is_low in zip(confidence, low)]


def _same_responses(pairs: pd.DataFrame, spec: FiltersSpec) -> list[tuple[str, str] | None]:
    """Identical (up to case, spacing and punctuation) or near-identical chosen and rejected texts."""
    chosen = [words(t) for t in pairs["chosen"]]
    rejected = [words(t) for t in pairs["rejected"]]
    out: list[tuple[str, str] | None] = []
    for a, b in zip(chosen, rejected):
        if a == b:
            out.append(("identical_responses", "chosen and rejected are the same text"))
            continue
        if spec.max_response_similarity is not None:
            similarity = jaccard(shingles(a), shingles(b))
            if similarity >= spec.max_response_similarity:
                out.append(("near_identical_responses", f"similarity {similarity:.2f} >= {spec.max_response_similarity}"))
                continue
        out.append(None)
    return out


def pair_problems(pairs: pd.DataFrame, prompts: pd.DataFrame, spec: FiltersSpec) -> list[list[tuple[str, str]]]:
    """For each pair, every (reason, detail) that rejects it, in filter order.

    Each filter runs over a whole column; only the word-level text checks look at one text at a time.
    """
    if pairs.empty:
        return []
    dupes = duplicate_prompts(prompts, spec.near_duplicate_prompt_threshold) if len(prompts) else {}
    repeats = pairs["prompt_id"].map(dupes) if dupes else pd.Series([None] * len(pairs), dtype=object)
    checks = [
        [(d[0], f"repeats prompt {d[1]} (similarity {d[2]:.2f})") if isinstance(d, tuple) else None for d in repeats],
        *([(p[0], f"{side}: {p[1]}") if p else None for p in (response_problem(t, spec) for t in pairs[side])]
          for side in ("chosen", "rejected")),
        _same_responses(pairs, spec),
        _low_confidence(pairs, spec),
    ]
    return [[problem for problem in row if problem] for row in zip(*checks)]


def filter_pairs(pairs: pd.DataFrame, comparisons: pd.DataFrame, prompts: pd.DataFrame, candidates: pd.DataFrame,
                 spec: FiltersSpec, now: datetime | None = None) -> FilterResult:
    """Keep the pairs no filter rejects; quarantine the rest, the comparisons that gave no pair and failed calls."""
    now = now or datetime.now(timezone.utc)
    prompt_texts = dict(zip(prompts["prompt_id"], prompts["prompt"])) if len(prompts) else {}
    texts = dict(zip(candidates["candidate_id"], candidates["text"])) if len(candidates) else {}
    parts: list[pd.DataFrame] = []

    # Comparisons that never became a pair: their status is the reason.
    if len(comparisons):
        # No winner (by the judges, the construction or people): lost, with its status as the reason. A comparison
        # awaiting a human label is not lost: it waits (no quarantine row).
        lost = comparisons[(comparisons["winner_id"].isna() & (comparisons["status"] != AWAITING_LABEL)).astype(bool)]
        if len(lost):
            lost = lost.assign(text_x=lost["candidate_x_id"].map(texts), text_y=lost["candidate_y_id"].map(texts))
            notes = lost["detail"] if "detail" in lost.columns else pd.Series([None] * len(lost), index=lost.index)
            details = [note if isinstance(note, str) and note else f"{status} ({judges})"
                       for status, judges, note in zip(lost["status"], lost["judge_models"], notes)]
            parts.append(quarantine_rows(lost, stage=PAIRS_STAGE, reasons=list(lost["status"]), details=details,
                                         id_column="comparison_id", prompt_texts=prompt_texts,
                                         text_columns=("text_x", "text_y"), now=now))

    # Generation calls that failed after retries: no text, never compared.
    if len(candidates) and "error" in candidates.columns:
        failed = candidates[candidates["error"].notna()]
        if len(failed):
            parts.append(quarantine_rows(failed, stage=CANDIDATES_STAGE, reasons=[GENERATION_ERROR] * len(failed),
                                         details=[str(e)[:300] for e in failed["error"]], id_column="candidate_id",
                                         prompt_texts=prompt_texts, text_columns=("text", "text"), now=now))

    # The pair filters.
    problems = pair_problems(pairs, prompts, spec)
    rejected = pd.Series([bool(p) for p in problems], index=pairs.index, dtype=bool)
    if rejected.any():
        found = [p for p in problems if p]
        parts.append(quarantine_rows(pairs[rejected], stage=FILTERS_STAGE, reasons=[p[0][0] for p in found],
                                     details=["; ".join(f"{r}: {d}" for r, d in p) for p in found],
                                     id_column="pair_id", text_columns=("chosen", "rejected"), now=now))
    kept = pairs[~rejected].reset_index(drop=True)
    return FilterResult(with_word_counts(schema.conform(PAIRS, kept, add_missing=False)), concat(parts))


def with_word_counts(pairs: pd.DataFrame) -> pd.DataFrame:
    """``chosen_words`` and ``rejected_words`` (whitespace-separated words), which the audit reads instead
    of the texts. Added before ``batch_id`` so a partitioned table keeps that column last."""
    out = pairs.copy()
    position = list(out.columns).index(schema.BATCH_COLUMN) if schema.BATCH_COLUMN in out.columns else len(out.columns)
    dtype = schema.dtypes(PAIRS)["chosen_words"]
    out.insert(position, "chosen_words", pd.array([word_count(t) for t in out["chosen"]], dtype=dtype))
    out.insert(position + 1, "rejected_words", pd.array([word_count(t) for t in out["rejected"]], dtype=dtype))
    return out


# --------------------------------------------------------------------------- export: length rebalancing

def _words_of(pairs: pd.DataFrame, side: str) -> pd.Series:
    column = f"{side}_words"
    if column in pairs.columns and pairs[column].notna().all():
        return pairs[column].astype("int64")
    return pairs[side].map(word_count).astype("int64")


def rebalance_length(pairs: pd.DataFrame, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Leave out pairs so the longer response is chosen in half of the pairs of unequal length.

    The larger group (longer chosen, or shorter chosen) loses randomly picked pairs (a stable hash of
    ``pair_id`` and ``seed``) until both are the same size; pairs of equal length stay. Returns (kept
    pairs in their original order, quarantine rows for the left-out pairs: stage ``EXPORT_STAGE``, reason
    ``LENGTH_REBALANCE``).
    """
    if pairs.empty:
        return pairs, empty_quarantine()
    chosen, rejected = _words_of(pairs, "chosen"), _words_of(pairs, "rejected")
    longer, shorter = chosen > rejected, chosen < rejected
    excess = int(longer.sum() - shorter.sum())
    if excess == 0:
        return pairs, empty_quarantine()
    majority = pairs[longer if excess > 0 else shorter]
    order = majority["pair_id"].map(lambda p: hashlib.sha256(f"{seed}|{p}".encode()).hexdigest())
    drop_index = order.sort_values(kind="stable").index[:abs(excess)]
    dropped = pairs.loc[drop_index]
    kept = pairs.drop(index=drop_index)
    side = "longer" if excess > 0 else "shorter"
    detail = (f"the {side} response was chosen in {int(longer.sum() if excess > 0 else shorter.sum())} pairs and the "
              f"other in {int(shorter.sum() if excess > 0 else longer.sum())}; {abs(excess)} of the first left out")
    return kept, quarantine_rows(dropped, stage=EXPORT_STAGE, reasons=[LENGTH_REBALANCE] * len(dropped),
                                 details=[detail] * len(dropped), id_column="pair_id",
                                 text_columns=("chosen", "rejected"))
