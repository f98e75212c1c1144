"""``few_shot_contrast`` (ALMoST): an answer written after more and better demonstrations is chosen over
one written after fewer and worse ones.

ALMoST's heuristics "more few-shots > fewer few-shots" and "better demonstrations > worse ones": the
same model answers each prompt twice, once after ``shots`` good demonstrations and once after a single
poor one (``few_shot_demos.json``, a question with a good and a poor answer each; which demonstrations
are used rotates per prompt). No judge is asked.
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

POOR_SHOTS = 1


class FewShotContrastSpec(ModelStrategySpec):
    """ALMoST: an answer written after good demonstrations beats one written after poor ones."""

    method: Literal["few_shot_contrast"]
    shots: Annotated[int, Field(ge=1, le=8)] = 3  # good demonstrations in the chosen answer's prompt


class FewShotContrastStrategy(Strategy):
    spec_class = FewShotContrastSpec
    templates = ("few_shot_contrast.j2", "few_shot_demos.json")

    asks_judges = False

    def demos(self, prompt_id: str, quality: str, count: int) -> list[dict[str, str]]:
        pool = data("few_shot_demos.json")
        start = derived_seed(prompt_id, self.method) % len(pool)
        return [{"question": d["question"], "answer": d[quality]}
                for d in (pool[(start + i) % len(pool)] for i in range(min(count, len(pool))))]

    def _asks(self, prompts: pd.DataFrame) -> list[Ask]:
        asks = []
        for pid, conversation in conversations_of(prompts).items():
            for role, quality, count in (("good_shots", "good", self.spec.shots), ("poor_shots", "poor", POOR_SHOTS)):
                # The demonstrations lead the turn to answer; a conversation's earlier turns come before it.
                user = render("few_shot_contrast.j2", demos=self.demos(pid, quality, count), question=conversation.final)
                asks.append(continuing(pid, role, self.model, conversation, user=user,
                                       seed=seed_for(self.model, pid, self.method, role)))
        return asks

    async def generate(self, prompts: pd.DataFrame, session: CallSession) -> list[dict[str, Any]]:
        asks = self._asks(self.prompts_of(prompts))
        now, params = datetime.now(timezone.utc), self.strategy_params
        rows = []
        for a, o in zip(asks, await ask_all(asks, session, self.method)):
            good = a.role == "good_shots"
            notes = {"demonstrations": self.spec.shots if good else POOR_SHOTS, "quality": "good" if good else "poor"}
            rows.append(candidate(self.method, params, a.prompt_id, 0 if good else 1, a.role, now, ask=a, outcome=o,
                                  notes=notes))
        return rows

    def comparisons(self, candidates: pd.DataFrame) -> list[PlannedComparison]:
        return [PlannedComparison(pid, roles["good_shots"]["candidate_id"], roles["poor_shots"]["candidate_id"],
                                  self.method, expected="x", judged=False)
                for pid, roles in by_prompt_and_role(candidates).items()
                if "good_shots" in roles and "poor_shots" in roles]

    def estimate_calls(self, prompts: pd.DataFrame) -> list[tuple[Any, Any]]:
        return [(a.spec, a.request()) for a in self._asks(self.prompts_of(prompts))]
