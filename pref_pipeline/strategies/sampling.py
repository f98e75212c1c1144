"""``sampling``: several candidates per prompt, spread over the configured generators; the judges pick.

Candidate ``i`` of a prompt comes from generator ``i mod len(generators)`` with a seed derived from
the prompt and ``i``, so a temperature/top-p sweep, system-prompt variants or a strong-vs-weak
setup is just a list of generators, and a re-run asks for exactly the same samples. A generator whose
``temperature`` or ``top_p`` is a range (``{min: 0.3, max: 1.3}``) gives each sample its own value, drawn
from the sample's seed (``GeneratorSpec.drawn``): the same on a re-run, and kept in the candidate's
``sampling`` with the range it came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from pref_pipeline.conversations import Conversation
from pref_pipeline.ids import derived_seed, short_hash
from pref_pipeline.specs import GeneratorSpec, StrategySpec, generator_label
from pref_pipeline.strategies.base import PlannedComparison, Strategy, all_pairs
from pref_pipeline.strategies.calls import Ask, ask_all, candidate, continuing, conversations_of

if TYPE_CHECKING:
    from pref_pipeline.config import PipelineConfig
    from pref_pipeline.providers.client import CallSession
    from pref_pipeline.runner import Outcome

ROLE = "sample"


@dataclass(frozen=True)
class CandidateTask:
    prompt_id: str
    conversation: Conversation
    index: int
    generator: GeneratorSpec
    seed: int

    @property
    def candidate_id(self) -> str:
        return "c-" + short_hash(self.prompt_id, generator_label(self.generator), self.index, self.seed)

    def ask(self) -> Ask:
        return continuing(self.prompt_id, ROLE, self.generator, self.conversation, seed=self.seed)


def candidate_row(task: CandidateTask, outcome: Outcome, strategy: str, now: datetime,
                  params: str | None = None) -> dict[str, Any]:
    """One candidates row for a sampled answer (its id is the sample's own: prompt, generator, index, seed)."""
    return candidate(strategy, params, task.prompt_id, task.index, ROLE, now, ask=task.ask(), outcome=outcome,
                     candidate_id=task.candidate_id)


async def run_tasks(tasks: list[CandidateTask], session: CallSession) -> list[Outcome]:
    """One outcome per task, in order; different generators run side by side (one model's share its budget)."""
    return await ask_all([t.ask() for t in tasks], session, "generate")


def sample_tasks(config: PipelineConfig, prompts: pd.DataFrame, salt: str | None = None) -> list[CandidateTask]:
    """``candidates_per_prompt`` samples of every prompt, sample ``i`` from generator ``i mod len(generators)``.

    Without ``salt`` (``sampling``), sample ``i``'s seed is the generator's own seed + ``i``, else one derived
    from the prompt and ``i``. A ``salt`` (another strategy sampling the same way, e.g. ``human_ranked``) derives
    every seed from it too, so that strategy asks for samples of its own, never the cached ones of ``sampling``.
    """
    generators, tasks = config.generators, []
    for prompt_id, conversation in conversations_of(prompts).items():
        for index in range(config.candidates_per_prompt):
            generator = generators[index % len(generators)]
            if salt is not None:
                seed = derived_seed(generator.seed, prompt_id, index, salt)
            elif generator.seed is not None:
                seed = generator.seed + index
            else:
                seed = derived_seed(prompt_id, index)
            tasks.append(CandidateTask(prompt_id, conversation, index, generator, seed))
    return tasks


class SamplingSpec(StrategySpec):
    """Candidates from ``generators``, ``candidates_per_prompt`` per prompt; the judges pick (no winner known)."""

    method: Literal["sampling"]


class SamplingStrategy(Strategy):
    spec_class = SamplingSpec

    @classmethod
    def config_problem(cls, config: PipelineConfig) -> str | None:
        # Its candidates are the generators' samples, so a second entry would ask (and store) the same ones again.
        if sum(s.method == cls.method for s in config.strategies) > 1:
            return f"{cls.method} takes its candidates from generators: give it once (max_prompts limits it)"
        return None

    def plan(self, prompts: pd.DataFrame) -> list[CandidateTask]:
        return sample_tasks(self.config, self.prompts_of(prompts))

    async def generate(self, prompts: pd.DataFrame, session: CallSession) -> list[dict[str, Any]]:
        tasks = self.plan(prompts)
        outcomes = await run_tasks(tasks, session)
        now = datetime.now(timezone.utc)
        params = self.strategy_params
        return [candidate_row(task, outcome, self.method, now, params) for task, outcome in zip(tasks, outcomes)]

    def comparisons(self, candidates: pd.DataFrame) -> list[PlannedComparison]:
        return all_pairs(candidates, self.method)

    def estimate_calls(self, prompts: pd.DataFrame) -> list[tuple[Any, Any]]:
        return [(t.generator, t.ask().request()) for t in self.plan(prompts)]
