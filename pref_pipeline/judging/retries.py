"""Asking a judge model until its output parses: every judge type that calls a model retries the same way.

A round is one ``complete_many`` call (one provider batch in batch mode): round 1 asks every request,
each later round only those whose output did not parse, with a new seed, and sampling if the judge is
greedy (the same greedy request would give the same unparseable text). Output that never parses is kept
as such (``parsed`` says why), never replaced by a default verdict or score.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from pref_pipeline.providers import ChatRequest, ChatResponse
from pref_pipeline.runner import Outcome

if TYPE_CHECKING:
    from pref_pipeline.providers import Provider
    from pref_pipeline.providers.client import ModelClient

RETRY_TEMPERATURE = 0.7


class Parsed(Protocol):
    @property
    def usable(self) -> bool: ...


P = TypeVar("P", bound=Parsed)


@dataclass
class Tries(Generic[P]):
    """One request's tries: the kept output and its parse (the first that parsed, else the last), the
    outputs that failed to parse before it, and what all of them cost."""

    parsed: P
    raw_output: str
    attempts: int
    failed_outputs: list[str] = field(default_factory=list)
    served_model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    latency_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)  # the kept answer's extras (log-probabilities)


def retry_request(base: ChatRequest, attempt: int) -> ChatRequest:
    """Attempt ``attempt`` (0 = first): a new seed, and sampling if the judge is greedy."""
    if not attempt:
        return base
    return replace(base, seed=(base.seed or 0) + attempt, temperature=base.temperature or RETRY_TEMPERATURE)


async def ask_until_parsed(provider: Provider | ModelClient, bases: Sequence[ChatRequest],
                           parse: Callable[[ChatResponse], P], *, retries: int, label: str) -> list[Outcome[Tries[P]]]:
    """Each request's tries, in order; a transport failure is an outcome with ``error`` set."""
    results: list[Outcome[Tries[P]] | None] = [None] * len(bases)
    tries: list[Tries[P] | None] = [None] * len(bases)
    pending = list(range(len(bases)))
    for attempt in range(retries + 1):
        if not pending:
            break
        outcomes = await provider.complete_many([retry_request(bases[i], attempt) for i in pending],
                                                label=label + (f" (parse retry {attempt})" if attempt else ""))
        still = []
        for i, outcome in zip(pending, outcomes):
            if not outcome.ok:
                results[i] = Outcome(None, outcome.error)
                continue
            response: ChatResponse = outcome.value
            prior = tries[i]
            parsed = parse(response)
            current = Tries(parsed, response.text, attempt + 1, list(prior.failed_outputs) if prior else [],
                            response.model, (prior.input_tokens if prior else 0) + (response.input_tokens or 0),
                            (prior.output_tokens if prior else 0) + (response.output_tokens or 0),
                            (prior.latency_s if prior else 0.0) + response.latency_s, response.extra)
            if parsed.usable:
                results[i] = Outcome(current, None)
            else:
                current.failed_outputs.append(response.text)
                tries[i] = current
                still.append(i)
        pending = still
    for i in pending:  # never parsed: the last output is the raw output, the earlier ones failed_outputs
        last = tries[i]
        last.failed_outputs = last.failed_outputs[:-1]  # type: ignore[union-attr]
        results[i] = Outcome(last, None)
    return results  # type: ignore[return-value]
