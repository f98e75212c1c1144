"""What a generation strategy is: one way of making candidate responses, and the comparisons they form.

A strategy (one module in this package) does two things, split as distilabel splits a task:

- ``generate``: ask its models for candidate rows of a prompt batch (async, through the step's
  ``CallSession``, so cache, budgets and cost accounting are shared);
- ``comparisons``: from the stored candidates alone (a pure function, so judging and pairing
  recompute the same plan), the pairs of candidates to compare, each with the winner known by
  construction (``expected``) when the strategy knows it, and whether the judges are asked.

``sampling`` knows no winner and asks the judges; a construction strategy (e.g. "the revision beats
the original") knows the winner and may ask the judges only to confirm it.

A strategy declares its parameters as a ``specs.StrategySpec`` subclass next to its class (``spec_class``);
its ``method`` is the spec's ``method`` literal. The registry and the configuration's ``strategies`` union
are found from the modules of this package (``strategies/__init__.py``).
"""

from __future__ import annotations

import itertools
import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import pandas as pd

from pref_pipeline.ids import short_hash
from pref_pipeline.specs import WHERE_NOT_WHAT, GeneratorSpec, StrategySpec
from pref_pipeline.strategies.templates import templates_hash

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
    # Set when the strategy could not make this comparison (no reference, a revision identical to its
    # original, ...): no pair, and the reason is quarantined. ``judged`` is then False.
    reason: str | None = None
    detail: str | None = None
    # What this pair adds to its strategy's parameters in the pair's ``strategy_params`` (the axiom it stands for,
    # the scores that decided it, ...); not part of the comparison's identity.
    params: Mapping[str, Any] | None = field(default=None, compare=False)
    # Tells apart the no-pair entries of two ``strategies`` entries of one method (set by ``plan_comparisons``
    # only then: a no-pair entry names no candidate, so the method alone would give both the same id).
    entry: str | None = None

    @property
    def comparison_id(self) -> str:
        if self.reason:
            extra = (self.entry,) if self.entry else ()
            return "cmp-" + short_hash(self.prompt_id, self.x_id, self.y_id, self.strategy, self.reason, *extra)
        return "cmp-" + short_hash(self.prompt_id, self.x_id, self.y_id)


def no_pair(prompt_id: str, strategy: str, reason: str, detail: str, x_id: str = "", y_id: str = "") -> PlannedComparison:
    """A comparison the strategy could not make: quarantined with ``reason``, never judged."""
    return PlannedComparison(prompt_id, x_id, y_id, strategy, judged=False, reason=reason, detail=detail)


class Strategy(ABC):
    """One generation method. Subclasses set ``spec_class`` (their parameters; its ``method`` is the config's
    ``method`` and the export's ``generation_method``) and implement ``generate`` and ``comparisons``."""

    spec_class: ClassVar[type[StrategySpec]]
    method: ClassVar[str]  # from ``spec_class``
    templates: ClassVar[tuple[str, ...]] = ()  # its prompt templates (files under templates/strategies/)
    # Whether any of its comparisons is shown to the judges; False when the winner is known by construction.
    asks_judges: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "spec_class" in cls.__dict__:
            cls.method = cls.spec_class.method_name()

    def __init__(self, config: PipelineConfig, params: dict[str, Any] | None = None):
        self.config = config
        self.params = params or {}
        self.spec = self.spec_class.model_validate({**self.params, "method": self.method})

    @classmethod
    def config_problem(cls, config: PipelineConfig) -> str | None:
        """Why the rest of the configuration cannot serve this strategy (e.g. it needs a kind of judge), or None."""
        return None

    @property
    def model(self) -> GeneratorSpec:
        """The model it asks: its own ``model``, or the first of ``generators`` when that is omitted."""
        own = getattr(self.spec, "model", None)
        return own if isinstance(own, GeneratorSpec) else self.config.generators[0]

    @property
    def strategy_params(self) -> str:
        """Its parameters as JSON (stored with every candidate and pair), with the hash of its templates, so
        a changed template is a new identity (new candidate ids, new cache keys)."""
        params = {k: ({n: v for n, v in value.items() if n not in WHERE_NOT_WHAT} if isinstance(value, dict) else value)
                  for k, value in self.spec.model_dump(mode="json", exclude_none=True).items()}
        if self.templates:
            params["templates"] = templates_hash(self.templates)
        return json.dumps(params, sort_keys=True, separators=(",", ":"))

    def prompts_of(self, prompts: pd.DataFrame) -> pd.DataFrame:
        """The prompts it runs on: the batch, or its first ``max_prompts``."""
        limit = getattr(self.spec, "max_prompts", None)
        return prompts.head(limit) if limit is not None else prompts

    def unpaired(self, prompts: pd.DataFrame) -> list[PlannedComparison]:
        """No-pair entries (``reason`` set) known from the prompts alone, e.g. a prompt without a reference."""
        return []

    def estimate_calls(self, prompts: pd.DataFrame) -> list[tuple[Any, Any]]:
        """(generator spec, ChatRequest) of every call ``generate`` would make, for the dry-run estimate;
        a call whose input depends on an earlier answer is built with a placeholder of ``max_tokens`` length."""
        return []

    def estimate_judged(self, prompts: pd.DataFrame) -> list[str]:
        """The prompt id of every comparison it would show the judges (for the dry-run estimate)."""
        return []

    @abstractmethod
    async def generate(self, prompts: pd.DataFrame, session: CallSession) -> list[dict[str, Any]]:
        """Candidate rows (``schema`` candidates columns) for every prompt of the batch; a failed call is a
        row with ``error`` set, never a gap."""

    @abstractmethod
    def comparisons(self, candidates: pd.DataFrame) -> Iterable[PlannedComparison]:
        """The comparisons this strategy's candidates (rows whose ``strategy`` is ``method`` and whose
        ``strategy_params`` are its own) form."""


def all_pairs(candidates: pd.DataFrame, strategy: str) -> list[PlannedComparison]:
    """Every unordered pair of each prompt's successful candidates, in candidate-index order: what the
    judges compare when no winner is known."""
    usable = candidates[candidates["error"].isna()].sort_values(["prompt_id", "candidate_index"])
    planned = []
    for prompt_id, ids in usable.groupby("prompt_id", sort=False)["candidate_id"]:
        planned += [PlannedComparison(prompt_id, x, y, strategy) for x, y in itertools.combinations(list(ids), 2)]
    return planned
