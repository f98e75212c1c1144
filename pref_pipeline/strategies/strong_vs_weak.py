"""``strong_vs_weak`` (ALMoST, orca_dpo_pairs): the strong model's answer is chosen over the weak one's.

ALMoST's rule "a larger model beats a smaller one" (and orca_dpo_pairs' GPT-4 answer over a smaller
model's) needs no judge. With ``confirm: true`` the judges compare too: a pair is kept when they agree
with the construction or give no verdict, and quarantined (``judge_disagrees_with_construction``) when
they prefer the weak answer; the audit reports how often they agree.

Left out, ``strong`` is the first generator at temperature 0.3 with a careful system prompt and ``weak``
the same model at 1.3 told to be brief and sloppy: one small model against itself, a weak contrast.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd
from pydantic import field_validator

from pref_pipeline.specs import GeneratorSpec, StrategySpec, no_none_model
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
from pref_pipeline.strategies.templates import render

if TYPE_CHECKING:
    from pref_pipeline.providers.client import CallSession

STRONG_TEMPERATURE, WEAK_TEMPERATURE = 0.3, 1.3


class StrongVsWeakSpec(StrategySpec):
    """ALMoST / orca_dpo_pairs: the strong model's answer is chosen over the weak model's.

    Unset, ``strong`` is the first generator at temperature 0.3 with a careful system prompt and ``weak``
    the same model at temperature 1.3 told to be brief and sloppy (a weak contrast on one small model).
    """

    method: Literal["strong_vs_weak"]
    strong: GeneratorSpec | None = None
    weak: GeneratorSpec | None = None
    confirm: bool = False  # true: the judges also compare; disagreements are quarantined

    _strong_not_none = field_validator("strong", "weak", mode="before")(classmethod(lambda cls, v: no_none_model(v)))


class StrongVsWeakStrategy(Strategy):
    spec_class = StrongVsWeakSpec
    templates = ("strong_system.j2", "weak_system.j2")

    @property
    def asks_judges(self) -> bool:
        return self.spec.confirm

    def models(self) -> dict[str, GeneratorSpec]:
        base = self.config.generators[0]
        strong = self.spec.strong or base.model_copy(update={
            "temperature": STRONG_TEMPERATURE if base.takes("temperature") else None,
            "system_prompt": render("strong_system.j2"), "label": "strong"})
        weak = self.spec.weak or base.model_copy(update={
            "temperature": WEAK_TEMPERATURE if base.takes("temperature") else None,
            "system_prompt": render("weak_system.j2"), "label": "weak"})
        return {"strong": strong, "weak": weak}

    def asks(self, prompts: pd.DataFrame) -> list[Ask]:
        models = self.models()
        return [continuing(pid, role, spec, conversation, seed=seed_for(spec, pid, self.method, role))
                for pid, conversation in conversations_of(prompts).items() for role, spec in models.items()]

    async def generate(self, prompts: pd.DataFrame, session: CallSession) -> list[dict[str, Any]]:
        asks = self.asks(self.prompts_of(prompts))
        outcomes = await ask_all(asks, session, self.method)
        now, params = datetime.now(timezone.utc), self.strategy_params
        return [candidate(self.method, params, a.prompt_id, 0 if a.role == "strong" else 1, a.role, now, ask=a,
                          outcome=o) for a, o in zip(asks, outcomes)]

    def comparisons(self, candidates: pd.DataFrame) -> list[PlannedComparison]:
        out = []
        for prompt_id, roles in by_prompt_and_role(candidates).items():
            if "strong" in roles and "weak" in roles:
                out.append(PlannedComparison(prompt_id, roles["strong"]["candidate_id"], roles["weak"]["candidate_id"],
                                             self.method, expected="x", judged=self.spec.confirm))
        return out

    def estimate_calls(self, prompts: pd.DataFrame) -> list[tuple[Any, Any]]:
        return [(a.spec, a.request()) for a in self.asks(self.prompts_of(prompts))]

    def estimate_judged(self, prompts: pd.DataFrame) -> list[str]:
        return list(self.prompts_of(prompts)["prompt_id"]) if self.spec.confirm else []
