"""The audit's small statistics: statsmodels computes them, this module rounds them for the report.

Figures are rounded to 4 decimals, and a figure that cannot be computed (no data, an undefined
kappa) is None rather than NaN, so that ``audit.json`` stays valid JSON.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

# statsmodels is imported where it is used: it takes about a second, which importing the package
# (e.g. loading the Dagster code location) should not pay.


def ratio(numerator: int, denominator: int) -> float | None:
    """numerator / denominator rounded to 4 decimals; None when the denominator is 0."""
    return round(numerator / denominator, 4) if denominator else None


def wilson_interval(successes: int, n: int, alpha: float = 0.05) -> tuple[float, float] | None:
    """The Wilson score interval for a proportion (95% by default); None when n is 0."""
    if not n:
        return None
    from statsmodels.stats.proportion import proportion_confint

    low, high = proportion_confint(int(successes), int(n), alpha=alpha, method="wilson")
    return round(max(0.0, float(low)), 4), round(min(1.0, float(high)), 4)


def cohens_kappa(table: Sequence[Sequence[float]] | np.ndarray) -> float | None:
    """Cohen's kappa of a square contingency table (rater A's labels in rows, rater B's in columns).

    None when the table is empty, or when kappa is undefined: both raters gave one and the same label
    throughout, so agreement expected by chance is already 1.
    """
    counts = np.asarray(table, dtype="float64")
    total = counts.sum()
    if not total:
        return None
    if counts.shape == (1, 1) or math.isclose((counts.sum(1) @ counts.sum(0)) / (total * total), 1.0):
        return None
    from statsmodels.stats.inter_rater import cohens_kappa as statsmodels_kappa

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        kappa = float(statsmodels_kappa(counts, return_results=False))
    return round(kappa, 4) if math.isfinite(kappa) else None


def contingency(cells: Iterable[tuple[Any, Any, int]]) -> np.ndarray:
    """A square table from (label of rater A, label of rater B, count) cells, over the labels either gave."""
    cells = list(cells)
    labels = sorted({a for a, _, _ in cells} | {b for _, b, _ in cells}, key=str)
    index = {label: i for i, label in enumerate(labels)}
    table = np.zeros((len(labels), len(labels)))
    for a, b, n in cells:
        table[index[a], index[b]] += n
    return table


def kappa_from_labels(a: list, b: list) -> float | None:
    """Cohen's kappa of two equal-length label lists (None is a label of its own)."""
    if len(a) != len(b):
        raise ValueError(f"label lists differ in length: {len(a)} and {len(b)}")
    counts: dict[tuple[Any, Any], int] = {}
    for x, y in zip(a, b):
        counts[(x, y)] = counts.get((x, y), 0) + 1
    return cohens_kappa(contingency((x, y, n) for (x, y), n in counts.items()))


def share_entry(group: str, successes: int, n: int, band: float | None = None) -> dict[str, Any]:
    """One group's share with its interval (and, with a band, whether it lies outside 0.5 ± band)."""
    share = ratio(successes, n)
    entry = {"group": group, "n": int(n), "share": share, "ci95": wilson_interval(successes, n)}
    if band is not None:
        entry["flagged"] = bool(share is not None and round(abs(share - 0.5), 4) > band)
    return entry


def weighted_agreement(inclusion_probability: Iterable[float], agrees: Iterable[bool]) -> float | None:
    """The agreement over every reviewable comparison, estimated from labelled items chosen with unequal
    probabilities: each weighted by 1 / inclusion probability (Horvitz-Thompson), as a ratio (Hajek)."""
    weights = 1 / np.asarray(list(inclusion_probability), dtype=float)
    agree = np.asarray(list(agrees), dtype=float)
    if not len(weights) or not weights.sum():
        return None
    return float((weights * agree).sum() / weights.sum())
