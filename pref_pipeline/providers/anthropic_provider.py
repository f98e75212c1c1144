"""Anthropic's Messages API via the official SDK, with structured outputs for verdicts."""

from __future__ import annotations

import os
import time
from typing import Any

import anthropic

from pref_pipeline.providers.base import ChatRequest, ChatResponse, Provider, ProviderError

DEFAULT_MAX_TOKENS = 1024  # the Messages API requires max_tokens


class AnthropicProvider(Provider):
    """Messages through ``anthropic.AsyncAnthropic``; ``json_schema`` uses ``output_config.format``."""

    def __init__(self, spec):
        super().__init__(spec)
        api_key = os.environ.get("ANTHROPIC_API_KEY")
        if api_key is None and (spec.base_url or os.environ.get("ANTHROPIC_BASE_URL")):
            api_key = "not-needed"
        self.client = anthropic.AsyncAnthropic(
            api_key=api_key, base_url=spec.base_url, timeout=spec.timeout_s, max_retries=spec.max_retries
        )

    async def complete(self, request: ChatRequest) -> ChatResponse:
        kwargs: dict[str, Any] = {
            "model": self.spec.model_name,
            "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS,
            "messages": [{"role": "user", "content": request.user}],
        }
        if request.system:
            kwargs["system"] = request.system
        # No sampling parameters: API version 2026-10-21 (the SDK 2.x default) rejects them, and
        # the config refuses them for anthropic: models. The Messages API has no seed either.
        if request.json_schema is not None and self.spec.response_format == "json_schema":
            kwargs["output_config"] = {"format": {"type": "json_schema", "schema": request.json_schema}}
        started = time.perf_counter()
        try:
            message = await self.client.messages.create(**kwargs)
        except anthropic.APIStatusError as exc:
            raise ProviderError(f"{self.spec.model}: HTTP {exc.status_code}: {exc.message}") from exc
        except (anthropic.APIError, ValueError) as exc:  # ValueError: a body that is not JSON
            raise ProviderError(f"{self.spec.model}: {type(exc).__name__}: {exc}") from exc
        text = "".join(block.text for block in message.content if getattr(block, "type", None) == "text")
        return ChatResponse(
            text=text,
            model=message.model or self.spec.model_name,
            input_tokens=message.usage.input_tokens if message.usage else None,
            output_tokens=message.usage.output_tokens if message.usage else None,
            finish_reason=message.stop_reason,
            latency_s=time.perf_counter() - started,
        )

    async def aclose(self) -> None:
        await self.client.close()
