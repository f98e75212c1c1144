"""Generation strategies: one module per method, each a ``Strategy`` (see ``base.py``).

A new method is a new module here and one line in ``STRATEGIES``; the pipeline runs whatever the
configuration names, and the method name becomes the export's ``generation_method``.
"""

from __future__ import annotations

from pref_pipeline.strategies.base import PlannedComparison, Strategy
from pref_pipeline.strategies.critique_revise import CritiqueReviseStrategy
from pref_pipeline.strategies.few_shot_contrast import FewShotContrastStrategy
from pref_pipeline.strategies.gold_corruption import GoldCorruptionStrategy
from pref_pipeline.strategies.hhh_contrast import HhhContrastStrategy
from pref_pipeline.strategies.human_vs_model import HumanVsModelStrategy
from pref_pipeline.strategies.sampling import SamplingStrategy
from pref_pipeline.strategies.score_extremes import ScoreExtremesStrategy
from pref_pipeline.strategies.strong_vs_weak import StrongVsWeakStrategy

STRATEGIES: dict[str, type[Strategy]] = {
    SamplingStrategy.method: SamplingStrategy,
    StrongVsWeakStrategy.method: StrongVsWeakStrategy,
    FewShotContrastStrategy.method: FewShotContrastStrategy,
    CritiqueReviseStrategy.method: CritiqueReviseStrategy,
    GoldCorruptionStrategy.method: GoldCorruptionStrategy,
    HhhContrastStrategy.method: HhhContrastStrategy,
    HumanVsModelStrategy.method: HumanVsModelStrategy,
    ScoreExtremesStrategy.method: ScoreExtremesStrategy,
}

__all__ = ["STRATEGIES", "PlannedComparison", "Strategy"]
