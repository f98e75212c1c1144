"""One interface for every model provider: an async ``complete(ChatRequest) -> ChatResponse``."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

from pref_pipeline.config import ModelSpec


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


class ProviderError(RuntimeError):
    """A call that failed after the SDK's own retries; the message says what the server answered."""


class Provider(abc.ABC):
    """A configured model endpoint. Subclasses wrap one official SDK client."""

    def __init__(self, spec: ModelSpec):
        self.spec = spec

    def request(self, user: str, *, system: str | None = None, seed: int | None = None,
                json_schema: dict[str, Any] | None = None, schema_name: str = "output") -> ChatRequest:
        """A request with this model's configured sampling parameters and system prompt."""
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
        )

    @abc.abstractmethod
    async def complete(self, request: ChatRequest) -> ChatResponse:
        """Answer one request or raise ``ProviderError``."""

    async def aclose(self) -> None:
        """Release connections; the default has none."""
