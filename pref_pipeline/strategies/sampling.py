"""``sampling``: several candidates per prompt, spread over the configured generators; the judges pick.

Candidate ``i`` of a prompt comes from generator ``i mod len(generators)`` with a seed derived from
the prompt and ``i``, so a temperature/top-p sweep, system-prompt variants or a strong-vs-weak
setup is just a list of generators, and a re-run asks for exactly the same samples.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pandas as pd

from pref_pipeline.config import GeneratorSpec, generator_label
from pref_pipeline.providers import ChatResponse
from pref_pipeline.providers.client import CallSession
from pref_pipeline.runner import Outcome
from pref_pipeline.ids import derived_seed, short_hash
from pref_pipeline.strategies.base import PlannedComparison, Strategy, all_pairs


@dataclass(frozen=True)
class CandidateTask:
    prompt_id: str
    prompt: str
    index: int
    generator: GeneratorSpec
    seed: int

    @property
    def candidate_id(self) -> str:
        return "c-" + short_hash(self.prompt_id, generator_label(self.generator), self.index, self.seed)


def candidate_row(task: CandidateTask, outcome: Outcome, strategy: str, now: datetime,
                  params: str | None = None) -> dict[str, Any]:
    """One candidates row for a generation call and its outcome (a failed call keeps its error, empty text)."""
    response: ChatResponse | None = outcome.value
    spec = task.generator
    return {
        "candidate_id": task.candidate_id,
        "prompt_id": task.prompt_id,
        "candidate_index": task.index,
        "text": response.text if response else "",
        "strategy": strategy,
        "generator_model": spec.model,
        "generator_label": generator_label(spec),
        "sampling": json.dumps({**spec.sampling(), "seed": task.seed}, sort_keys=True),
        "system_prompt": spec.system_prompt,
        "served_model": response.model if response else None,
        "input_tokens": response.input_tokens if response else None,
        "output_tokens": response.output_tokens if response else None,
        "finish_reason": response.finish_reason if response else None,
        "latency_s": response.latency_s if response else None,
        "error": outcome.error,
        "created_at": now,
        "role": "sample",
        "parent_id": None,
        "strategy_params": params,
        "notes": None,
    }


async def run_tasks(tasks: list[CandidateTask], session: CallSession) -> list[Outcome]:
    """One outcome per task, in order; different generators run side by side (one model's share its budget)."""
    outcomes: list = [None] * len(tasks)
    by_generator: dict[GeneratorSpec, list[int]] = {}
    for i, task in enumerate(tasks):
        by_generator.setdefault(task.generator, []).append(i)

    async def run_generator(spec: GeneratorSpec, indices: list[int]) -> None:
        client = session.client(spec)
        requests = [client.request(tasks[i].prompt, seed=tasks[i].seed) for i in indices]
        for i, outcome in zip(indices, await client.complete_many(requests, label=f"generate {generator_label(spec)}")):
            outcomes[i] = outcome

    await asyncio.gather(*(run_generator(spec, idx) for spec, idx in by_generator.items()))
    return outcomes


class SamplingStrategy(Strategy):
    method = "sampling"

    def plan(self, prompts: pd.DataFrame) -> list[CandidateTask]:
        generators, tasks = self.config.generators, []
        prompts = self.prompts_of(prompts)
        for prompt_id, prompt in zip(prompts["prompt_id"], prompts["prompt"]):
            for index in range(self.config.candidates_per_prompt):
                generator = generators[index % len(generators)]
                seed = generator.seed + index if generator.seed is not None else derived_seed(prompt_id, index)
                tasks.append(CandidateTask(prompt_id, prompt, index, generator, seed))
        return tasks

    async def generate(self, prompts: pd.DataFrame, session: CallSession) -> list[dict[str, Any]]:
        tasks = self.plan(prompts)
        outcomes = await run_tasks(tasks, session)
        now = datetime.now(timezone.utc)
        params = self.strategy_params
        return [candidate_row(task, outcome, self.method, now, params) for task, outcome in zip(tasks, outcomes)]

    def comparisons(self, candidates: pd.DataFrame) -> list[PlannedComparison]:
        return all_pairs(candidates, self.method)

    def estimate_calls(self, prompts: pd.DataFrame) -> list[tuple[Any, Any]]:
        from pref_pipeline.providers.base import RequestBuilder

        return [(t.generator, RequestBuilder(t.generator).request(t.prompt, seed=t.seed)) for t in self.plan(prompts)]
