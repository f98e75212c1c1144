"""``human_vs_model``: the prompt's ``reference`` (a human-written answer) against a model's answer.

``winner: judge`` (the default): neither side wins by construction (a model may write a better answer than
the reference), so the judges decide, in both orders, as for ``sampling`` (``label_source: judge``). Useful to
see how the judges rate human answers, and as pairs where one side is known to be human-written.

``winner: human``: the human-written text is chosen by construction and no judge is asked
(``label_source: construction``), as the seed describes comparing model output "with human-written text":
"This can be used to copy a particular style and give a more authentic tone to the model."

A prompt without a reference gives no pair (``no_reference``).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd
from pydantic import SerializerFunctionWrapHandler, model_serializer

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
    no_reference,
    reference_text,
    seed_for,
)

if TYPE_CHECKING:
    from pref_pipeline.providers.client import CallSession


JUDGE_DECIDES = "judge"  # winner: the judges decide (the default); "human": the reference wins by construction


class HumanVsModelSpec(ModelStrategySpec):
    """The prompt's ``reference`` (human-written) against a model answer; the judges decide, or the human text
    is chosen by construction (``winner: human``)."""

    method: Literal["human_vs_model"]
    winner: Literal["judge", "human"] = JUDGE_DECIDES

    @model_serializer(mode="wrap")
    def _default_left_out(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """``winner`` at its default is left out of the dump, so ``strategy_params`` (hashed into candidate ids and
        cache keys) of a configuration that does not set it stays what it was before the key existed."""
        data = handler(self)
        if self.winner == JUDGE_DECIDES:
            data.pop("winner", None)
        return data


class HumanVsModelStrategy(Strategy):
    spec_class = HumanVsModelSpec

    @property
    def asks_judges(self) -> bool:
        return self.spec.winner == JUDGE_DECIDES

    def _todo(self, prompts: pd.DataFrame) -> list[tuple[str, str, str]]:
        refs = prompts["reference"] if "reference" in prompts.columns else [None] * len(prompts)
        return [(pid, q, ref) for pid, q, r in zip(prompts["prompt_id"], prompts["prompt"], refs)
                if (ref := reference_text(r)) is not None]

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
        """Human against model: judged, or (``winner: human``) the human text chosen by construction, unjudged."""
        by_construction = {} if self.asks_judges else {"expected": "x", "judged": False}
        return [PlannedComparison(pid, roles["human"]["candidate_id"], roles["model"]["candidate_id"], self.method,
                                  **by_construction)
                for pid, roles in by_prompt_and_role(candidates).items() if "human" in roles and "model" in roles]

    def unpaired(self, prompts: pd.DataFrame) -> list[PlannedComparison]:
        return no_reference(self.prompts_of(prompts), self.method)

    def estimate_calls(self, prompts: pd.DataFrame) -> list[tuple[Any, Any]]:
        return [(a.spec, a.request()) for a in self._asks(prompts)]

    def estimate_judged(self, prompts: pd.DataFrame) -> list[str]:
        if not self.asks_judges:
            return []
        return [pid for pid, _, _ in self._todo(self.prompts_of(prompts))]
