"""What the construction strategies share: asking a model for many answers at once, and candidate rows.

Every call goes through the step's ``CallSession`` (cache, budgets, cost ledger), grouped by model so
different models run side by side. A candidate's id hashes its strategy's parameters (templates
included), the prompt, its role, its model and seed, so a re-run asks for exactly the same answers.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pref_pipeline import schema
from pref_pipeline.conversations import Conversation
from pref_pipeline.ids import derived_seed, short_hash
from pref_pipeline.providers.base import ChatRequest, RequestBuilder
from pref_pipeline.providers.client import CHARS_PER_TOKEN
from pref_pipeline.specs import GeneratorSpec, generator_label
from pref_pipeline.strategies.base import PlannedComparison, no_pair

if TYPE_CHECKING:
    import pandas as pd

    from pref_pipeline.providers.client import CallSession
    from pref_pipeline.runner import Outcome

REFERENCE_MODEL = "reference"  # generator_model of a prompt's own reference answer
RULES_MODEL = "rules"  # generator_model of a copy edited by rules, no LLM


@dataclass(frozen=True)
class Ask:
    """One generation call: who asks (prompt and role), which model, what."""

    prompt_id: str
    role: str
    spec: GeneratorSpec
    user: str
    system: str | None = None
    seed: int | None = None
    history: tuple[tuple[str, str], ...] = ()  # a conversation's earlier turns

    @property
    def sent_spec(self) -> GeneratorSpec:
        """The spec the call is made with: a generator's ranges (``temperature: {min, max}``) drawn from this ask's
        seed (the same seed, the same draw); the configured spec itself when it has none."""
        if not self.spec.ranges:
            return self.spec
        seed = self.seed if self.seed is not None else seed_for(self.spec, self.prompt_id, self.role, self.user)
        return self.spec.drawn(seed)

    def request(self) -> ChatRequest:
        return RequestBuilder(self.sent_spec).request(self.user, system=self.system, seed=self.seed,
                                                      history=self.history)

    def sampling(self) -> dict[str, Any]:
        """What the candidate row keeps: the sampling parameters sent (a drawn value as the number used), the seed,
        and for a drawn one the range it came from (``temperature_range``)."""
        ranges = {f"{k}_range": r.model_dump() for k, r in self.spec.ranges.items()}
        return {**self.sent_spec.sampling(), "seed": self.seed, **ranges}


def continuing(prompt_id: str, role: str, spec: GeneratorSpec, conversation: Conversation, *, seed: int | None,
               system: str | None = None, user: str | None = None) -> Ask:
    """An ask that answers the prompt's conversation: its earlier turns, then its final user turn (or ``user``
    in its place), with ``system`` (else the model's own system prompt) in front of the conversation's system
    message. A single-string prompt asks exactly what it always did."""
    if conversation.system is None and not conversation.history:
        return Ask(prompt_id, role, spec, user or conversation.final, system=system, seed=seed)
    own = system if system is not None else spec.system_prompt
    return Ask(prompt_id, role, spec, user or conversation.final, system=conversation.system_with(own), seed=seed,
               history=conversation.history)


def conversations_of(prompts: pd.DataFrame) -> dict[str, Conversation]:
    """Per prompt id, what a model is asked: the conversation of its ``messages``, or the single-string prompt."""
    messages = prompts["messages"] if "messages" in prompts.columns else [None] * len(prompts)
    return {pid: Conversation.of(text, turns) for pid, text, turns in zip(prompts["prompt_id"], prompts["prompt"],
                                                                          messages)}


def seed_for(spec: GeneratorSpec, *parts: object) -> int:
    """The generator's own seed when it sets one, else one derived from ``parts``."""
    return spec.seed if spec.seed is not None else derived_seed(*parts)


async def ask_all(asks: list[Ask], session: CallSession, label: str) -> list[Outcome]:
    """One outcome per ask, in order; the asks of one model go as one ``complete_many``."""
    outcomes: list = [None] * len(asks)
    by_spec: dict[GeneratorSpec, list[int]] = {}
    for i, ask in enumerate(asks):
        by_spec.setdefault(ask.spec, []).append(i)

    async def run(spec: GeneratorSpec, indices: list[int]) -> None:
        client = session.client(spec)  # one client per configured generator: its budget holds for every draw
        requests = [asks[i].request() for i in indices]
        for i, outcome in zip(indices, await client.complete_many(requests, label=f"{label} {generator_label(spec)}")):
            outcomes[i] = outcome

    await asyncio.gather(*(run(spec, idx) for spec, idx in by_spec.items()))
    return outcomes


def placeholder(spec: GeneratorSpec) -> str:
    """Stand-in text of ``max_tokens`` length for an answer the dry run cannot know."""
    return "x" * (CHARS_PER_TOKEN * (spec.max_tokens or 256))


def candidate(strategy: str, params: str | None, prompt_id: str, index: int, role: str, now: datetime, *,
              ask: Ask | None = None, outcome: Outcome | None = None, text: str | None = None,
              model: str | None = None, label: str | None = None, parent_id: str | None = None,
              notes: dict[str, Any] | None = None, candidate_id: str | None = None) -> dict[str, Any]:
    """A candidates row, the one builder every strategy uses: from a call (``ask`` and its ``outcome``; a failed
    call keeps its error and an empty text) or a text made without one (``text``, with ``model``/``label`` saying
    where it came from: the prompt's reference, the rules). ``candidate_id`` overrides the derived id."""
    response = outcome.value if outcome is not None else None
    spec = ask.spec if ask is not None else None
    source = generator_label(spec) if spec is not None else (label or model or "")
    seed = ask.seed if ask is not None else None
    sampling = ask.sampling() if ask is not None else {}
    return schema.row(
        "candidates",
        candidate_id=candidate_id or "c-" + short_hash(strategy, params, prompt_id, role, index, source, seed,
                                                       ask.user if ask is not None else text),
        prompt_id=prompt_id,
        candidate_index=index,
        text=(response.text if response else "") if ask is not None else (text or ""),
        strategy=strategy,
        generator_model=spec.model if spec is not None else (model or ""),
        generator_label=source,
        sampling=json.dumps(sampling, sort_keys=True),
        system_prompt=(ask.system if ask.system is not None else spec.system_prompt) if ask is not None else None,
        served_model=response.model if response else None,
        input_tokens=response.input_tokens if response else None,
        output_tokens=response.output_tokens if response else None,
        finish_reason=response.finish_reason if response else None,
        latency_s=response.latency_s if response else None,
        error=outcome.error if outcome is not None else None,
        created_at=now,
        role=role,
        parent_id=parent_id,
        strategy_params=params,
        notes=json.dumps(notes, sort_keys=True, ensure_ascii=False) if notes else None,
    )


def by_prompt_and_role(candidates: Any) -> dict[str, dict[str, dict[str, Any]]]:
    """``{prompt_id: {role: candidate row}}`` of the successful candidates (a failed call is quarantined
    by the filters as ``generation_error`` and forms no comparison)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    if candidates is None or len(candidates) == 0:
        return out
    usable = candidates[candidates["error"].isna()].sort_values(["prompt_id", "candidate_index"])
    for row in usable.to_dict("records"):
        out.setdefault(row["prompt_id"], {})[row["role"]] = row
    return out


def reference_text(value: object) -> str | None:
    """A prompt's ``reference`` (its gold answer) when it has a non-blank one."""
    return value.strip() if isinstance(value, str) and value.strip() else None


def references_of(prompts: pd.DataFrame) -> dict[str, str]:
    """The prompts' non-blank ``reference`` answers, by prompt id."""
    if "reference" not in prompts.columns:
        return {}
    return {pid: ref for pid, r in zip(prompts["prompt_id"], prompts["reference"])
            if (ref := reference_text(r)) is not None}


def no_reference(prompts: pd.DataFrame, method: str) -> list[PlannedComparison]:
    """A no-pair entry (``no_reference``) for each prompt without a reference, for strategies that need one."""
    references = references_of(prompts)
    return [no_pair(pid, method, "no_reference", "the prompt has no reference answer: nothing is right by construction")
            for pid in prompts["prompt_id"] if pid not in references]


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def sentences(text: str) -> list[str]:
    """A text's sentences (split after ., ! or ?)."""
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]


def notes_of(row: dict[str, Any]) -> dict[str, Any]:
    value = row.get("notes")
    return json.loads(value) if isinstance(value, str) and value else {}


def has_text(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())
