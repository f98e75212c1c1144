"""One interface for every model provider: an async ``complete(ChatRequest) -> ChatResponse``.

``complete_many`` answers a list of requests, one ``Outcome`` each in input order (a failure is an
outcome, never a gap). The default here is a plain bounded gather; the pipeline calls models through
``pref_pipeline.providers.client.ModelClient``, which puts the response cache, the rate limits and
the batch APIs (``submit_batch``/``batch_status``/``batch_results`` below) in front of a provider.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pref_pipeline.config import ModelSpec
from pref_pipeline.runner import Outcome, gather_bounded


@dataclass(frozen=True)
class ChatRequest:
    """A single-turn chat call. ``json_schema`` asks for structured output where the provider has it."""

    user: str
    system: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    json_schema: dict[str, Any] | None = None
    schema_name: str = "output"
    # Ask for this many alternatives' log-probabilities per output token (OpenAI ``top_logprobs``,
    # llama.cpp); the answer carries them in ``ChatResponse.extra["token_logprobs"]``. None: not asked.
    logprobs: int | None = None

    def sampling(self) -> dict[str, Any]:
        keys = ("temperature", "top_p", "max_tokens", "seed")
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}


@dataclass(frozen=True)
class ChatResponse:
    text: str
    model: str  # the model the server says answered
    input_tokens: int | None = None
    output_tokens: int | None = None
    finish_reason: str | None = None
    latency_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    # How this answer was obtained: a live call, the provider's batch API, or the response cache.
    source: Literal["api", "batch", "cache"] = "api"


@dataclass(frozen=True)
class BatchLimits:
    """A batch API's size limits per batch: requests and bytes of the request lines."""

    max_requests: int
    max_bytes: int


@dataclass(frozen=True)
class BatchStatus:
    ended: bool
    status: str  # the provider's own word: in_progress, completed, ended, expired, ...
    done: int = 0
    total: int = 0


class RequestBuilder:
    """Builds a model's requests from its spec, without a client (the dry-run estimate uses it alone)."""

    def __init__(self, spec: ModelSpec):
        self.spec = spec

    def request(self, user: str, *, system: str | None = None, seed: int | None = None,
                json_schema: dict[str, Any] | None = None, schema_name: str = "output",
                logprobs: int | None = None) -> ChatRequest:
        spec = self.spec
        return ChatRequest(
            user=user,
            system=system if system is not None else spec.system_prompt,
            temperature=spec.temperature,
            top_p=spec.top_p,
            max_tokens=spec.max_tokens,
            seed=seed if seed is not None else spec.seed,
            json_schema=json_schema,
            schema_name=schema_name,
            logprobs=logprobs,
        )


def token_logprobs(content: Any) -> str | None:
    """OpenAI-shaped ``choices[0].logprobs.content`` (SDK objects or dicts) as one compact JSON string of
    ``[{"token": str, "logprob": float, "top": [[token, logprob], ...]}, ...]``; None when absent.

    One string, not a list of dicts: a judge answer has ~100 such objects, and a warm run keeps thousands
    of answers alive at once, which made Python's garbage collector the slowest part of the judgments step.
    """
    if not content:
        return None

    def get(obj: Any, key: str) -> Any:
        return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)

    out = []
    for item in content:
        top = [[get(t, "token"), get(t, "logprob")] for t in (get(item, "top_logprobs") or [])]
        out.append({"token": get(item, "token"), "logprob": get(item, "logprob"), "top": top})
    return json.dumps(out, separators=(",", ":"), ensure_ascii=False)


class ProviderError(RuntimeError):
    """A call that failed after the SDK's own retries; the message says what the server answered."""


class Provider(abc.ABC):
    """A configured model endpoint. Subclasses wrap one official SDK client."""

    def __init__(self, spec: ModelSpec):
        self.spec = spec

    def request(self, user: str, *, system: str | None = None, seed: int | None = None,
                json_schema: dict[str, Any] | None = None, schema_name: str = "output",
                logprobs: int | None = None) -> ChatRequest:
        """A request with this model's configured sampling parameters and system prompt."""
        return RequestBuilder(self.spec).request(user, system=system, seed=seed, json_schema=json_schema,
                                                 schema_name=schema_name, logprobs=logprobs)

    @abc.abstractmethod
    async def complete(self, request: ChatRequest) -> ChatResponse:
        """Answer one request or raise ``ProviderError``."""

    async def complete_many(self, requests: Sequence[ChatRequest], *, label: str | None = None) -> list[Outcome]:
        """Every request answered, at most ``max_concurrency`` in flight; no cache, no rate limit."""
        return await gather_bounded(list(requests), self.complete, max_concurrency=self.spec.max_concurrency,
                                    label=label or self.spec.model)

    # ----- batch API (providers that have one override these) -----

    batch_limits: BatchLimits | None = None

    def batch_line(self, custom_id: str, request: ChatRequest) -> dict[str, Any]:
        """One request as the batch API takes it (its JSON size counts against ``batch_limits``)."""
        raise ProviderError(f"{self.spec.model}: this provider has no batch API")

    async def submit_batch(self, lines: list[dict[str, Any]], *, metadata: dict[str, str] | None = None) -> str:
        """Create a batch from ``batch_line`` dicts; returns the provider's batch id."""
        raise ProviderError(f"{self.spec.model}: this provider has no batch API")

    async def batch_status(self, batch_id: str) -> BatchStatus:
        raise ProviderError(f"{self.spec.model}: this provider has no batch API")

    async def batch_results(self, batch_id: str) -> dict[str, ChatResponse | str]:
        """Per ``custom_id``: the answer, or why that request failed (a string)."""
        raise ProviderError(f"{self.spec.model}: this provider has no batch API")

    async def aclose(self) -> None:  # noqa: B027 (a default, not an abstract method: most providers override it)
        """Release connections; the default has none."""
