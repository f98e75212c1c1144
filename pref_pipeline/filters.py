"""Row filters applied to the pairs before the gate, and the quarantine table that keeps what they drop.

Nothing is dropped without a trace: every comparison that did not become a pair (tie, position-
inconsistent, unparseable, failed call, judges disagree), every pair a filter drops and every failed
generation call gets one ``quarantine`` row with its ``stage``, ``reason``, a readable ``detail`` and
the original row as JSON (``record``). Plain pandas; near-duplicate prompts use MinHash (datasketch).

Reasons, in the order they are tried (a pair gets the first that applies, ``detail`` lists all):
``duplicate_prompt``, ``near_duplicate_prompt``, ``empty_response``, ``degenerate_response``,
``response_too_long``, ``identical_responses``, ``near_identical_responses``, ``low_confidence``.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone

import pandas as pd

from pref_pipeline.config import FiltersSpec
from pref_pipeline.pairs import typed_if_empty

QUARANTINE_COLUMNS = [
    "quarantine_id", "stage", "reason", "detail", "prompt_id", "comparison_id", "pair_id", "item_id", "prompt",
    "response_1", "response_2", "record", "quarantined_at",
]
# Text columns are stored as VARCHAR even when every value is null (an all-null object column would
# become DuckDB's NULL type and refuse later strings).
_TEXT_COLUMNS = [c for c in QUARANTINE_COLUMNS if c != "quarantined_at"]

DEGENERATE_MIN_WORDS = 8  # the distinct-word test applies from this many words on
MINHASH_PERMUTATIONS = 128
SHINGLE = 3

_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class FilterResult:
    pairs: pd.DataFrame  # the kept pairs, same columns as given
    quarantine: pd.DataFrame  # QUARANTINE_COLUMNS (+ batch_id when the inputs carry one)


# --------------------------------------------------------------------------- text helpers

def words(text: object) -> list[str]:
    """Lower-cased word tokens (punctuation ignored)."""
    return _WORD.findall(text.lower()) if isinstance(text, str) else []


def shingles(tokens: list[str], size: int = SHINGLE) -> set[str]:
    """Word n-grams; texts shorter than ``size`` words use their words."""
    if len(tokens) < size:
        return set(tokens)
    return {" ".join(tokens[i:i + size]) for i in range(len(tokens) - size + 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def response_similarity(a: object, b: object) -> float:
    """Jaccard similarity of word 3-shingles (1.0 for texts equal up to case, spacing and punctuation)."""
    return jaccard(shingles(words(a)), shingles(words(b)))


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

def duplicate_prompts(prompts: pd.DataFrame, threshold: float | None) -> dict[str, tuple[str, str, float]]:
    """``{prompt_id: (reason, kept_prompt_id, similarity)}`` for prompts that repeat an earlier one.

    Exact repeats after normalising case, spacing and punctuation are ``duplicate_prompt``; with a
    ``threshold``, prompts whose MinHash-estimated Jaccard similarity of word 3-shingles reaches it
    are ``near_duplicate_prompt``. The first prompt (in frame order) of each group is kept.
    """
    found: dict[str, tuple[str, str, float]] = {}
    seen: dict[str, str] = {}
    lsh = minhashes = None
    if threshold is not None:
        from datasketch import MinHash, MinHashLSH

        lsh = MinHashLSH(threshold=threshold, num_perm=MINHASH_PERMUTATIONS)
        minhashes = {}
    for prompt_id, text in zip(prompts["prompt_id"], prompts["prompt"]):
        key = _normalized(text)
        if key in seen:
            found[prompt_id] = ("duplicate_prompt", seen[key], 1.0)
            continue
        seen[key] = prompt_id
        if lsh is None:
            continue
        grams = shingles(key.split())
        signature = MinHash(num_perm=MINHASH_PERMUTATIONS)
        for gram in grams:
            signature.update(gram.encode("utf-8"))
        # LSH gives candidates; keep the best one whose estimated similarity really reaches the threshold.
        best = max(((signature.jaccard(minhashes[c]), c) for c in lsh.query(signature)), default=(0.0, None))
        if best[1] is not None and best[0] >= threshold:
            found[prompt_id] = ("near_duplicate_prompt", best[1], round(float(best[0]), 3))
            continue
        lsh.insert(prompt_id, signature)
        minhashes[prompt_id] = signature
    return found


# --------------------------------------------------------------------------- quarantine rows

def _quarantine_id(stage: str, reason: str, item_id: object) -> str:
    return "q-" + hashlib.sha256(f"{stage}|{reason}|{item_id}".encode()).hexdigest()[:16]


def _records(frame: pd.DataFrame) -> list[str]:
    if frame.empty:
        return []
    return frame.to_json(orient="records", lines=True, date_format="iso", force_ascii=False,
                         default_handler=str).splitlines()


def quarantine_frame(rows: list[dict], now: datetime | None = None) -> pd.DataFrame:
    """Quarantine rows with stable types; ``batch_id`` is kept last when the rows carry one."""
    now = now or datetime.now(timezone.utc)
    columns = QUARANTINE_COLUMNS + (["batch_id"] if any("batch_id" in r for r in rows) else [])
    for row in rows:
        row.setdefault("quarantine_id", _quarantine_id(row["stage"], row["reason"], row.get("item_id")))
        row.setdefault("quarantined_at", now)
    frame = pd.DataFrame(rows, columns=columns)
    for column in _TEXT_COLUMNS + (["batch_id"] if "batch_id" in columns else []):
        frame[column] = frame[column].astype("string")
    frame["quarantined_at"] = pd.to_datetime(frame["quarantined_at"], utc=True)
    return frame


def empty_quarantine() -> pd.DataFrame:
    return quarantine_frame([])


def rows_to_quarantine(frame: pd.DataFrame, *, stage: str, reasons: list[str], details: list[str],
                       id_column: str, prompt_texts: dict | None = None, text_columns: tuple[str, str] | None = None
                       ) -> list[dict]:
    """One quarantine row per row of ``frame`` (same order as ``reasons``/``details``)."""
    prompt_texts = prompt_texts or {}
    out = []
    for (_, row), record, reason, detail in zip(frame.iterrows(), _records(frame), reasons, details):
        entry = {
            "stage": stage, "reason": reason, "detail": detail,
            "prompt_id": row.get("prompt_id"), "comparison_id": row.get("comparison_id"),
            "pair_id": row.get("pair_id"), "item_id": row.get(id_column),
            "prompt": row.get("prompt") if isinstance(row.get("prompt"), str) else prompt_texts.get(row.get("prompt_id")),
            "response_1": row.get(text_columns[0]) if text_columns else None,
            "response_2": row.get(text_columns[1]) if text_columns else None,
            "record": record,
        }
        if "batch_id" in frame.columns:
            entry["batch_id"] = row.get("batch_id")
        out.append({k: (None if _is_missing(v) else v) for k, v in entry.items()})
    return out


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NA


# --------------------------------------------------------------------------- the filters

def pair_problems(pairs: pd.DataFrame, prompts: pd.DataFrame, spec: FiltersSpec) -> list[list[tuple[str, str]]]:
    """For each pair, every (reason, detail) that rejects it, in filter order."""
    dupes = duplicate_prompts(prompts, spec.near_duplicate_prompt_threshold) if len(prompts) else {}
    problems: list[list[tuple[str, str]]] = []
    for row in pairs.itertuples(index=False):
        found: list[tuple[str, str]] = []
        if row.prompt_id in dupes:
            reason, kept, similarity = dupes[row.prompt_id]
            found.append((reason, f"repeats prompt {kept} (similarity {similarity:.2f})"))
        for side in ("chosen", "rejected"):
            problem = response_problem(getattr(row, side), spec)
            if problem:
                found.append((problem[0], f"{side}: {problem[1]}"))
        if _normalized(row.chosen) == _normalized(row.rejected):
            found.append(("identical_responses", "chosen and rejected are the same text"))
        elif spec.max_response_similarity is not None:
            similarity = response_similarity(row.chosen, row.rejected)
            if similarity >= spec.max_response_similarity:
                found.append(("near_identical_responses",
                              f"similarity {similarity:.2f} >= {spec.max_response_similarity}"))
        confidence = getattr(row, "confidence", None)
        if spec.min_confidence is not None and not _is_missing(confidence) and confidence < spec.min_confidence:
            found.append(("low_confidence", f"confidence {confidence:.2f} < {spec.min_confidence}"))
        problems.append(found)
    return problems


def filter_pairs(pairs: pd.DataFrame, comparisons: pd.DataFrame, prompts: pd.DataFrame, candidates: pd.DataFrame,
                 spec: FiltersSpec, now: datetime | None = None) -> FilterResult:
    """Keep the pairs no filter rejects; quarantine the rest, the comparisons that gave no pair and failed calls."""
    prompt_texts = dict(zip(prompts["prompt_id"], prompts["prompt"])) if len(prompts) else {}
    texts = dict(zip(candidates["candidate_id"], candidates["text"])) if len(candidates) else {}
    rows: list[dict] = []

    # Comparisons that never became a pair: their status is the reason.
    lost = comparisons[comparisons["status"] != "consistent"] if len(comparisons) else comparisons
    if len(lost):
        lost = lost.assign(text_x=lost["candidate_x_id"].map(texts), text_y=lost["candidate_y_id"].map(texts))
        details = [f"{status} ({judges})" for status, judges in zip(lost["status"], lost["judge_models"])]
        rows += rows_to_quarantine(lost, stage="pairs", reasons=list(lost["status"]), details=details,
                                   id_column="comparison_id", prompt_texts=prompt_texts,
                                   text_columns=("text_x", "text_y"))

    # Generation calls that failed after retries: no text, never compared.
    if len(candidates) and "error" in candidates.columns:
        failed = candidates[candidates["error"].notna()]
        if len(failed):
            rows += rows_to_quarantine(failed, stage="candidates", reasons=["generation_error"] * len(failed),
                                       details=[str(e)[:300] for e in failed["error"]], id_column="candidate_id",
                                       prompt_texts=prompt_texts, text_columns=("text", "text"))

    # The pair filters.
    problems = pair_problems(pairs, prompts, spec) if len(pairs) else []
    rejected = [bool(p) for p in problems]
    if any(rejected):
        dropped = pairs[rejected]
        found = [p for p in problems if p]
        rows += rows_to_quarantine(dropped, stage="filters", reasons=[p[0][0] for p in found],
                                   details=["; ".join(f"{r}: {d}" for r, d in p) for p in found],
                                   id_column="pair_id", text_columns=("chosen", "rejected"))
    kept = (pairs[[not r for r in rejected]] if len(pairs) else pairs).reset_index(drop=True)
    return FilterResult(with_word_counts(typed_if_empty(kept)), quarantine_frame(rows, now))


def with_word_counts(pairs: pd.DataFrame) -> pd.DataFrame:
    """``chosen_words`` and ``rejected_words`` (whitespace-separated words), which the audit reads instead
    of the texts. Added before ``batch_id`` so a partitioned table keeps that column last."""
    from pref_pipeline.metrics import word_count

    out = pairs.copy()
    position = list(out.columns).index("batch_id") if "batch_id" in out.columns else len(out.columns)
    out.insert(position, "chosen_words", out["chosen"].map(word_count).astype("int64"))
    out.insert(position + 1, "rejected_words", out["rejected"].map(word_count).astype("int64"))
    return out


def reason_counts(quarantine: pd.DataFrame) -> dict[str, int]:
    """``{"stage:reason": n}``, most frequent first, for metadata and reports."""
    if quarantine.empty:
        return {}
    counts = (quarantine["stage"].astype(str) + ":" + quarantine["reason"].astype(str)).value_counts()
    return {k: int(v) for k, v in counts.items()}


def record_of(quarantine_row: pd.Series) -> dict:
    """The original row a quarantine entry keeps, as a dict."""
    return json.loads(quarantine_row["record"])


# --------------------------------------------------------------------------- export: length rebalancing

def _words_of(pairs: pd.DataFrame, side: str) -> pd.Series:
    from pref_pipeline.metrics import word_count

    column = f"{side}_words"
    if column in pairs.columns and pairs[column].notna().all():
        return pairs[column].astype("int64")
    return pairs[side].map(word_count).astype("int64")


def rebalance_length(pairs: pd.DataFrame, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Leave out pairs so the longer response is chosen in half of the pairs of unequal length.

    The larger group (longer chosen, or shorter chosen) loses randomly picked pairs (a stable hash of
    ``pair_id`` and ``seed``) until both are the same size; pairs of equal length stay. Returns (kept
    pairs in their original order, quarantine rows for the left-out pairs: stage ``export``, reason
    ``length_rebalance``).
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
    rows = rows_to_quarantine(dropped, stage="export", reasons=["length_rebalance"] * len(dropped),
                              details=[detail] * len(dropped), id_column="pair_id", text_columns=("chosen", "rejected"))
    return kept, quarantine_frame(rows)
