"""What a generation strategy is: one way of making candidate responses, and the comparisons they form.

A strategy (one module in this package) does two things, split as distilabel splits a task:

- ``generate``: ask its models for candidate rows of a prompt batch (async, through the step's
  ``CallSession``, so cache, budgets and cost accounting are shared);
- ``comparisons``: from the stored candidates alone (a pure function, so judging and pairing
  recompute the same plan), the pairs of candidates to compare, each with the winner known by
  construction (``expected``) when the strategy knows it, and whether the judges are asked.

``sampling`` knows no winner and asks the judges; a construction strategy (e.g. "the revision beats
the original") knows the winner and may ask the judges only to confirm it.
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import pandas as pd

from pref_pipeline.ids import short_hash

if TYPE_CHECKING:
    from pref_pipeline.config import PipelineConfig
    from pref_pipeline.providers.client import CallSession


@dataclass(frozen=True)
class PlannedComparison:
    """Two candidates of one prompt to compare; ``expected`` is the winner by construction, if known."""

    prompt_id: str
    x_id: str
    y_id: str
    strategy: str
    expected: Literal["x", "y"] | None = None
    judged: bool = True  # False: the construction alone decides, no judge is asked

    @property
    def comparison_id(self) -> str:
        return "cmp-" + short_hash(self.prompt_id, self.x_id, self.y_id)


class Strategy(ABC):
    """One generation method. Subclasses set ``method`` (the config's ``method`` and the export's
    ``generation_method``) and implement ``generate`` and ``comparisons``."""

    method: ClassVar[str]

    def __init__(self, config: PipelineConfig, params: dict[str, Any] | None = None):
        self.config = config
        self.params = params or {}

    @abstractmethod
    async def generate(self, prompts: pd.DataFrame, session: CallSession) -> list[dict[str, Any]]:
        """Candidate rows (``schema`` candidates columns) for every prompt of the batch; a failed call is a
        row with ``error`` set, never a gap."""

    @abstractmethod
    def comparisons(self, candidates: pd.DataFrame) -> Iterable[PlannedComparison]:
        """The comparisons this strategy's candidates (rows whose ``strategy`` is ``method``) form."""


def all_pairs(candidates: pd.DataFrame, strategy: str) -> list[PlannedComparison]:
    """Every unordered pair of each prompt's successful candidates, in candidate-index order: what the
    judges compare when no winner is known."""
    usable = candidates[candidates["error"].isna()].sort_values(["prompt_id", "candidate_index"])
    planned = []
    for prompt_id, ids in usable.groupby("prompt_id", sort=False)["candidate_id"]:
        planned += [PlannedComparison(prompt_id, x, y, strategy) for x, y in itertools.combinations(list(ids), 2)]
    return planned
