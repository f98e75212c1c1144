"""The metrics every stage shares, defined once: filters, gates, audit and known answers call these.

- ``word_count``: whitespace-separated words, the unit of every length figure;
- ``words`` and ``response_similarity``: word tokens, and how alike two texts are (filters, strategies);
- ``longer_chosen``: per pair, whether the longer response was the chosen one;
- ``judge_labelled``: per pair, whether a judge's verdict stands behind its label (the population of the
  judge's length bias: the audit's headline figure and the ``max_length_bias`` gate);
- ``order_consistency``: per (judge, comparison), whether both orders named the same candidate.
"""

from __future__ import annotations

import re

import pandas as pd

SAME_BOTH_ORDERS = "same_verdict_both_orders"
JUDGE_LABEL = "judge"  # a label_source containing it was decided, or confirmed, by the judges
SHINGLE = 3  # words per shingle in response_similarity
_WORD = re.compile(r"\w+", re.UNICODE)


def word_count(text: object) -> int:
    """Whitespace-separated words, the unit of every length figure (the audit's SQL counts the same way)."""
    return len(text.split()) if isinstance(text, str) else 0


def words(text: object) -> list[str]:
    """Lower-cased word tokens (punctuation ignored)."""
    return _WORD.findall(text.lower()) if isinstance(text, str) else []


def shingles(tokens: list[str], size: int = SHINGLE) -> set[str]:
    """Word n-grams; texts shorter than ``size`` words use their words."""
    if len(tokens) < size:
        return set(tokens)
    return set(map(" ".join, zip(*(tokens[i:] for i in range(size)))))


def jaccard(a: set[str], b: set[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def response_similarity(a: object, b: object) -> float:
    """Jaccard similarity of word 3-shingles (1.0 for texts equal up to case, spacing and punctuation)."""
    return jaccard(shingles(words(a)), shingles(words(b)))


def longer_chosen(pairs: pd.DataFrame) -> pd.Series:
    """Per pair: 1.0 when the chosen response has more words, 0.0 when fewer, NaN when equal."""
    if pairs.empty:
        return pd.Series(dtype="float64")
    chosen = pairs["chosen"].map(word_count)
    rejected = pairs["rejected"].map(word_count)
    out = (chosen > rejected).astype("float64")
    return out.where(chosen != rejected)


def judge_labelled(pairs: pd.DataFrame) -> pd.Series:
    """Per pair: True when its ``label_source`` names the judges (``judge``, ``construction+judge``): the pairs
    whose length says something about the judge. A construction pair's lengths follow from how it was made (a
    dropped sentence makes the chosen longer by design), so it tells nothing about the judge. A pair without a
    ``label_source`` (a table from before the column, when every pair was judged) counts as judge-labelled."""
    if "label_source" not in pairs.columns:
        return pd.Series(True, index=pairs.index, dtype="bool")
    sources = pairs["label_source"].astype("object")
    return sources.map(lambda s: not isinstance(s, str) or JUDGE_LABEL in s).astype("bool")


def order_consistency(judgments: pd.DataFrame) -> pd.DataFrame:
    """One row per (judge, comparison) judged and parsed in both orders: did both orders pick the same one?"""
    columns = ["judge_fingerprint", "comparison_id", SAME_BOTH_ORDERS]
    if judgments.empty:
        return pd.DataFrame(columns=columns)
    parsed = judgments[judgments["error"].isna() & judgments["preferred"].notna()
                       & (judgments["parse_status"] != "unparseable")]
    wide = parsed.pivot_table(index=["judge_fingerprint", "comparison_id"], columns="order", values="preferred",
                              aggfunc="first")
    if not {"xy", "yx"} <= set(wide.columns):
        return pd.DataFrame(columns=columns)
    wide = wide.dropna(subset=["xy", "yx"])
    frame = wide.reset_index()
    frame[SAME_BOTH_ORDERS] = (frame["xy"] == frame["yx"]).astype("float64")
    return frame[columns]


def longer_chosen_share(pairs: pd.DataFrame) -> float | None:
    """Share of pairs of unequal length (in words) where the longer response was chosen."""
    flags = longer_chosen(pairs)
    return round(float(flags.mean()), 4) if flags.notna().any() else None
