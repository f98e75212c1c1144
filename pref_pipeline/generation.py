"""Writing candidate responses: several per prompt, spread over the configured generators.

Candidate ``i`` of a prompt comes from generator ``i mod len(generators)`` with a seed derived from
the prompt and ``i``, so a temperature sweep or a strong-vs-weak setup is just a list of generators,
and a re-run asks for exactly the same samples.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone

import pandas as pd

from pref_pipeline import schema
from pref_pipeline.accounting import USAGE_ATTR
from pref_pipeline.config import GeneratorSpec, PipelineConfig, generator_label
from pref_pipeline.providers import ChatResponse
from pref_pipeline.providers.client import CallSession

CANDIDATE_COLUMNS = schema.names("candidates")


class TooManyFailures(RuntimeError):
    """More LLM calls failed than ``max_failure_rate`` allows; the message lists the first errors."""


@dataclass(frozen=True)
class CandidateTask:
    prompt_id: str
    prompt: str
    index: int
    generator: GeneratorSpec
    seed: int

    @property
    def candidate_id(self) -> str:
        key = f"{self.prompt_id}|{generator_label(self.generator)}|{self.index}|{self.seed}"
        return "c-" + hashlib.sha256(key.encode()).hexdigest()[:16]


def derived_seed(*parts: object) -> int:
    """A reproducible 31-bit seed from any identifying parts."""
    return int(hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:8], 16) & 0x7FFFFFFF


def plan_candidates(prompts: pd.DataFrame, config: PipelineConfig) -> list[CandidateTask]:
    tasks = []
    for row in prompts.itertuples(index=False):
        for index in range(config.candidates_per_prompt):
            generator = config.generators[index % len(config.generators)]
            seed = generator.seed + index if generator.seed is not None else derived_seed(row.prompt_id, index)
            tasks.append(CandidateTask(row.prompt_id, row.prompt, index, generator, seed))
    return tasks


def check_failures(errors: list[str], total: int, limit: float, what: str) -> None:
    """Raise when the share of failed calls exceeds ``limit``; otherwise failures stay recorded rows."""
    if total and errors and len(errors) / total > limit:
        sample = "\n  ".join(errors[:5])
        raise TooManyFailures(
            f"{len(errors)} of {total} {what} failed (more than max_failure_rate={limit:.0%}); first errors:\n  {sample}"
        )


async def _generate(tasks: list[CandidateTask], config: PipelineConfig, logger: logging.Logger) -> tuple[list, dict]:
    """One outcome per task, in order, and the usage summary (calls, tokens, cost, cache hits)."""
    outcomes: list = [None] * len(tasks)
    by_generator: dict[GeneratorSpec, list[int]] = {}
    for i, task in enumerate(tasks):
        by_generator.setdefault(task.generator, []).append(i)

    async with CallSession(config, logger=logger, label="candidates") as session:
        async def run_generator(spec: GeneratorSpec, indices: list[int]) -> None:
            client = session.client(spec)
            requests = [client.request(tasks[i].prompt, seed=tasks[i].seed) for i in indices]
            results = await client.complete_many(requests, label=f"generate {generator_label(spec)}")
            for i, outcome in zip(indices, results):
                outcomes[i] = outcome

        # Different generators run side by side; generators of one model share its budget.
        await asyncio.gather(*(run_generator(spec, idx) for spec, idx in by_generator.items()))
    return outcomes, session.ledger.summary()


def generate_candidates(prompts: pd.DataFrame, config: PipelineConfig, logger: logging.Logger | None = None) -> pd.DataFrame:
    """One row per planned candidate; failed calls are rows with ``error`` set and empty text."""
    logger = logger or logging.getLogger("pref_pipeline")
    tasks = plan_candidates(prompts, config)
    outcomes, usage = asyncio.run(_generate(tasks, config, logger))
    now = datetime.now(timezone.utc)
    rows = []
    for task, outcome in zip(tasks, outcomes):
        response: ChatResponse | None = outcome.value
        spec = task.generator
        rows.append({
            "candidate_id": task.candidate_id,
            "prompt_id": task.prompt_id,
            "candidate_index": task.index,
            "text": response.text if response else "",
            "strategy": "sampling",
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
        })
    frame = pd.DataFrame(rows, columns=CANDIDATE_COLUMNS)
    frame.attrs[USAGE_ATTR] = usage  # for the asset's metadata (accounting.usage_metadata)
    check_failures([e for e in frame["error"] if e], len(frame), config.max_failure_rate, "generation calls")
    return frame
