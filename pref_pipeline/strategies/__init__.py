"""Generation strategies: one module per method, each a ``Strategy`` (see ``base.py``).

A new method is a new module here and one line in ``STRATEGIES``; the pipeline runs whatever the
configuration names, and the method name becomes the export's ``generation_method``.
"""

from __future__ import annotations

from pref_pipeline.strategies.base import PlannedComparison, Strategy
from pref_pipeline.strategies.sampling import SamplingStrategy
from pref_pipeline.strategies.score_extremes import ScoreExtremesStrategy

STRATEGIES: dict[str, type[Strategy]] = {
    SamplingStrategy.method: SamplingStrategy,
    ScoreExtremesStrategy.method: ScoreExtremesStrategy,
}

__all__ = ["STRATEGIES", "PlannedComparison", "Strategy"]
