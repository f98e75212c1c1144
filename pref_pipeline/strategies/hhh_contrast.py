"""``hhh_contrast`` (AutoPM in-breadth): an answer told to follow a principle (helpful, honest,
harmless) is chosen over one told to violate it.

AutoPM elicits pairs "based on helpful-honest-harmless criteria": the same model answers the same
prompt twice, once with a system prompt that follows one principle and once with one that violates it
(``hhh_principles.json``; the principle is picked per prompt from ``principles``). The label is right
by construction as far as the model obeys its instructions; no judge is asked.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Annotated, Any, Literal

import pandas as pd
from pydantic import Field

from pref_pipeline.ids import derived_seed
from pref_pipeline.specs import ModelStrategySpec
from pref_pipeline.strategies.base import PlannedComparison, Strategy
from pref_pipeline.strategies.calls import (
    Ask,
    ask_all,
    by_prompt_and_role,
    candidate,
    continuing,
    conversations_of,
    seed_for,
)
from pref_pipeline.strategies.templates import data, render

if TYPE_CHECKING:
    from pref_pipeline.providers.client import CallSession

ROLES = ("follow", "violate")
# The principles and their follow/violate instructions: a new principle is a new entry in the file.
PRINCIPLES = tuple(data("hhh_principles.json"))


class HhhContrastSpec(ModelStrategySpec):
    """AutoPM in-breadth: an answer told to follow a principle beats one told to violate it."""

    method: Literal["hhh_contrast"]
    principles: Annotated[list[Literal[PRINCIPLES]], Field(min_length=1)] = Field(  # type: ignore[valid-type]
        default_factory=lambda: list(PRINCIPLES))


class HhhContrastStrategy(Strategy):
    spec_class = HhhContrastSpec
    templates = ("hhh_system.j2", "hhh_principles.json")

    asks_judges = False

    def principle(self, prompt_id: str) -> str:
        principles = list(self.spec.principles)
        return principles[derived_seed(prompt_id, self.method) % len(principles)]

    def _asks(self, prompts: pd.DataFrame) -> list[Ask]:
        asks = []
        for pid, conversation in conversations_of(prompts).items():
            principle = self.principle(pid)
            for role in ROLES:
                system = render("hhh_system.j2", instruction=data("hhh_principles.json")[principle][role])
                asks.append(continuing(pid, role, self.model, conversation, system=system,
                                seed=seed_for(self.model, pid, self.method, role)))
        return asks

    async def generate(self, prompts: pd.DataFrame, session: CallSession) -> list[dict[str, Any]]:
        asks = self._asks(self.prompts_of(prompts))
        now, params = datetime.now(timezone.utc), self.strategy_params
        return [candidate(self.method, params, a.prompt_id, ROLES.index(a.role), a.role, now, ask=a, outcome=o,
                          notes={"principle": self.principle(a.prompt_id)})
                for a, o in zip(asks, await ask_all(asks, session, self.method))]

    def comparisons(self, candidates: pd.DataFrame) -> list[PlannedComparison]:
        return [PlannedComparison(pid, roles["follow"]["candidate_id"], roles["violate"]["candidate_id"], self.method,
                                  expected="x", judged=False)
                for pid, roles in by_prompt_and_role(candidates).items() if "follow" in roles and "violate" in roles]

    def estimate_calls(self, prompts: pd.DataFrame) -> list[tuple[Any, Any]]:
        return [(a.spec, a.request()) for a in self._asks(self.prompts_of(prompts))]
