"""``human_ranked`` (seed 003): LLMs generate several responses, people rank them; no judge is asked.

"LLM-generated, human-evaluated datasets: LLMs generate multiple responses to prompts, and humans rank these
responses." Candidates are sampled as ``sampling`` samples them (``sampling.sample_tasks``: sample ``i`` from
generator ``i mod len(generators)``), with seeds of its own, so beside ``sampling`` it asks for (and stores) its
own samples, never the cached answers of ``sampling``. Every pair of a prompt's candidates is a comparison that
waits for people (status ``awaiting_label``, ``construction.apply_plan``) until a label in ``human_labels``
decides it in the pairs step (``human_pairs``).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from pref_pipeline.specs import StrategySpec
from pref_pipeline.strategies.base import PlannedComparison, Strategy, all_pairs
from pref_pipeline.strategies.calls import candidate
from pref_pipeline.strategies.sampling import ROLE, CandidateTask, run_tasks, sample_tasks

if TYPE_CHECKING:
    from pref_pipeline.providers.client import CallSession


class HumanRankedSpec(StrategySpec):
    """Candidates from ``generators``, ``candidates_per_prompt`` per prompt; people label every pair (no judge)."""

    method: Literal["human_ranked"]


class HumanRankedStrategy(Strategy):
    spec_class = HumanRankedSpec
    asks_judges = False

    def plan(self, prompts: pd.DataFrame) -> list[CandidateTask]:
        return sample_tasks(self.config, self.prompts_of(prompts), salt=self.method)

    async def generate(self, prompts: pd.DataFrame, session: CallSession) -> list[dict[str, Any]]:
        tasks = self.plan(prompts)
        outcomes = await run_tasks(tasks, session)
        now, params = datetime.now(timezone.utc), self.strategy_params
        # Ids of its own (strategy, parameters and ask), as best_of_n's: never taken for sampling's candidates.
        return [candidate(self.method, params, t.prompt_id, t.index, ROLE, now, ask=t.ask(), outcome=o)
                for t, o in zip(tasks, outcomes)]

    def comparisons(self, candidates: pd.DataFrame) -> list[PlannedComparison]:
        return [replace(p, judged=False) for p in all_pairs(candidates, self.method)]

    def estimate_calls(self, prompts: pd.DataFrame) -> list[tuple[Any, Any]]:
        return [(t.generator, t.ask().request()) for t in self.plan(prompts)]
