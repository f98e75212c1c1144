"""``few_shot_contrast`` (ALMoST): an answer written after more or better demonstrations is chosen over
one written after fewer or worse ones.

ALMoST's heuristics "more few-shots > less few-shots" and "better demonstration > worse demonstration": the
same model answers each prompt twice, once after ``shots`` good demonstrations (chosen) and once after the
demonstrations ``contrast`` says (rejected):

- ``both`` (the default): a single poor one, fewer *and* worse at once;
- ``shots``: a single good one, the same quality, only fewer (needs ``shots`` of at least 2);
- ``quality``: ``shots`` poor ones, as many, only worse.

The demonstrations are ``few_shot_demos.json`` (a question with a good and a poor answer each; which are
used rotates per prompt, the same questions for both answers). No judge is asked. Two entries with different
``contrast`` run side by side as ALMoST combines its heuristics (each plans only its own candidates).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Annotated, Any, Literal

import pandas as pd
from pydantic import Field, model_validator

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

POOR_SHOTS = 1  # demonstrations in the rejected answer's prompt with ``contrast: both``
FEWER_SHOTS = 1  # good demonstrations in the rejected answer's prompt with ``contrast: shots``
DEFAULT_CONTRAST = "both"


class FewShotContrastSpec(ModelStrategySpec):
    """ALMoST: an answer written after more or better demonstrations beats one written after fewer or worse ones."""

    method: Literal["few_shot_contrast"]
    shots: Annotated[int, Field(ge=1, le=8)] = 3  # good demonstrations in the chosen answer's prompt
    # What the rejected answer's demonstrations differ in: ``both`` (one poor: fewer and worse), ``shots`` (one
    # good: fewer) or ``quality`` (``shots`` poor: worse). Left out of ``strategy_params`` at its default, so
    # today's configurations keep their identity.
    contrast: Literal["both", "shots", "quality"] = Field(DEFAULT_CONTRAST,
                                                          exclude_if=lambda v: v == DEFAULT_CONTRAST)

    @model_validator(mode="after")
    def _fewer_than_shots(self) -> FewShotContrastSpec:
        if self.contrast == "shots" and self.shots <= FEWER_SHOTS:
            raise ValueError(f"`contrast: shots` compares `shots` good demonstrations with {FEWER_SHOTS}: "
                             f"`shots` must be at least {FEWER_SHOTS + 1}")
        return self


class FewShotContrastStrategy(Strategy):
    spec_class = FewShotContrastSpec
    templates = ("few_shot_contrast.j2", "few_shot_demos.json")

    asks_judges = False

    def demos(self, prompt_id: str, quality: str, count: int) -> list[dict[str, str]]:
        pool = data("few_shot_demos.json")
        start = derived_seed(prompt_id, self.method) % len(pool)
        return [{"question": d["question"], "answer": d[quality]}
                for d in (pool[(start + i) % len(pool)] for i in range(min(count, len(pool))))]

    def rejected(self) -> tuple[str, str, int]:
        """The rejected answer's role, demonstration quality and count, by ``contrast``."""
        return {"both": ("poor_shots", "poor", POOR_SHOTS), "shots": ("fewer_shots", "good", FEWER_SHOTS),
                "quality": ("poor_shots", "poor", self.spec.shots)}[self.spec.contrast]

    def _asks(self, prompts: pd.DataFrame) -> list[Ask]:
        asks = []
        for pid, conversation in conversations_of(prompts).items():
            for role, quality, count in (("good_shots", "good", self.spec.shots), self.rejected()):
                # The demonstrations lead the turn to answer; a conversation's earlier turns come before it.
                user = render("few_shot_contrast.j2", demos=self.demos(pid, quality, count), question=conversation.final)
                asks.append(continuing(pid, role, self.model, conversation, user=user,
                                       seed=seed_for(self.model, pid, self.method, role)))
        return asks

    async def generate(self, prompts: pd.DataFrame, session: CallSession) -> list[dict[str, Any]]:
        asks = self._asks(self.prompts_of(prompts))
        now, params = datetime.now(timezone.utc), self.strategy_params
        rows = []
        role, quality, count = self.rejected()
        for a, o in zip(asks, await ask_all(asks, session, self.method)):
            good = a.role == "good_shots"
            notes = ({"demonstrations": self.spec.shots, "quality": "good"} if good
                     else {"demonstrations": count, "quality": quality})
            if self.spec.contrast != DEFAULT_CONTRAST:
                notes["contrast"] = self.spec.contrast
            rows.append(candidate(self.method, params, a.prompt_id, 0 if good else 1, a.role, now, ask=a, outcome=o,
                                  notes=notes))
        return rows

    def comparisons(self, candidates: pd.DataFrame) -> list[PlannedComparison]:
        rejected = self.rejected()[0]
        return [PlannedComparison(pid, roles["good_shots"]["candidate_id"], roles[rejected]["candidate_id"],
                                  self.method, expected="x", judged=False)
                for pid, roles in by_prompt_and_role(candidates).items()
                if "good_shots" in roles and rejected in roles]

    def estimate_calls(self, prompts: pd.DataFrame) -> list[tuple[Any, Any]]:
        return [(a.spec, a.request()) for a in self._asks(self.prompts_of(prompts))]
