"""``human_vs_model``: the prompt's ``reference`` (a human-written answer) against a model's answer.

Neither side wins by construction (a model may write a better answer than the reference), so the
judges decide, in both orders, as for ``sampling`` (``label_source: judge``). Useful to see how the
judges rate human answers, and as pairs where one side is known to be human-written. A prompt without
a reference gives no pair (``no_reference``).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from pref_pipeline.specs import ModelStrategySpec
from pref_pipeline.strategies.base import PlannedComparison, Strategy
from pref_pipeline.strategies.calls import (
    REFERENCE_MODEL,
    Ask,
    ask_all,
    by_prompt_and_role,
    candidate,
    continuing,
    conversations_of,
    seed_for,
)
from pref_pipeline.strategies.gold_corruption import _reference, no_reference

if TYPE_CHECKING:
    from pref_pipeline.providers.client import CallSession


class HumanVsModelSpec(ModelStrategySpec):
    """The prompt's ``reference`` (human-written) against a model answer; the judges decide."""

    method: Literal["human_vs_model"]


class HumanVsModelStrategy(Strategy):
    spec_class = HumanVsModelSpec

    def _todo(self, prompts: pd.DataFrame) -> list[tuple[str, str, str]]:
        refs = prompts["reference"] if "reference" in prompts.columns else [None] * len(prompts)
        return [(pid, q, ref) for pid, q, r in zip(prompts["prompt_id"], prompts["prompt"], refs)
                if (ref := _reference(r)) is not None]

    def _asks(self, prompts: pd.DataFrame) -> list[Ask]:
        prompts = self.prompts_of(prompts)
        conversations = conversations_of(prompts)
        return [continuing(pid, "model", self.model, conversations[pid], seed=seed_for(self.model, pid, self.method))
                for pid, _, _ in self._todo(prompts)]

    async def generate(self, prompts: pd.DataFrame, session: CallSession) -> list[dict[str, Any]]:
        now, params = datetime.now(timezone.utc), self.strategy_params
        rows = [candidate(self.method, params, pid, 0, "human", now, text=ref, model=REFERENCE_MODEL)
                for pid, _, ref in self._todo(self.prompts_of(prompts))]
        asks = self._asks(prompts)
        rows += [candidate(self.method, params, a.prompt_id, 1, "model", now, ask=a, outcome=o)
                 for a, o in zip(asks, await ask_all(asks, session, self.method))]
        return rows

    def comparisons(self, candidates: pd.DataFrame) -> list[PlannedComparison]:
        return [PlannedComparison(pid, roles["human"]["candidate_id"], roles["model"]["candidate_id"], self.method)
                for pid, roles in by_prompt_and_role(candidates).items() if "human" in roles and "model" in roles]

    def unpaired(self, prompts: pd.DataFrame) -> list[PlannedComparison]:
        return no_reference(self.prompts_of(prompts), self.method)

    def estimate_calls(self, prompts: pd.DataFrame) -> list[tuple[Any, Any]]:
        return [(a.spec, a.request()) for a in self._asks(prompts)]

    def estimate_judged(self, prompts: pd.DataFrame) -> list[str]:
        return [pid for pid, _, _ in self._todo(self.prompts_of(prompts))]
