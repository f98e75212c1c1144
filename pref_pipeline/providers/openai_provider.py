"""OpenAI and every OpenAI-compatible server (vLLM, llama.cpp's server, Ollama) via the official SDK."""

from __future__ import annotations

import os
import time
from typing import Any

import openai

from pref_pipeline.providers.base import ChatRequest, ChatResponse, Provider, ProviderError


class OpenAIProvider(Provider):
    """Chat Completions through ``openai.AsyncOpenAI``.

    Structured output follows ``response_format``: ``json_schema`` (OpenAI's strict schema mode),
    ``json_object`` (JSON mode with the schema attached, as llama.cpp's server accepts), or ``text``.
    """

    def __init__(self, spec):
        super().__init__(spec)
        api_key = os.environ.get("OPENAI_API_KEY")
        if api_key is None and (spec.base_url or os.environ.get("OPENAI_BASE_URL")):
            api_key = "not-needed"  # local compatible servers usually ignore the key
        try:
            self.client = openai.AsyncOpenAI(
                api_key=api_key, base_url=spec.base_url, timeout=spec.timeout_s, max_retries=spec.max_retries
            )
        except openai.OpenAIError as exc:
            raise ProviderError(f"{spec.model}: {exc}") from None

    def _response_format(self, request: ChatRequest) -> dict[str, Any] | None:
        if request.json_schema is None or self.spec.response_format == "text":
            return None
        if self.spec.response_format == "json_object":
            return {"type": "json_object", "schema": request.json_schema}
        return {
            "type": "json_schema",
            "json_schema": {"name": request.schema_name, "schema": request.json_schema, "strict": True},
        }

    async def complete(self, request: ChatRequest) -> ChatResponse:
        messages = []
        if request.system:
            messages.append({"role": "system", "content": request.system})
        messages.append({"role": "user", "content": request.user})
        kwargs: dict[str, Any] = {"model": self.spec.model_name, "messages": messages, **request.sampling()}
        response_format = self._response_format(request)
        if response_format is not None:
            kwargs["response_format"] = response_format
        started = time.perf_counter()
        try:
            completion = await self.client.chat.completions.create(**kwargs)
        except openai.APIStatusError as exc:
            raise ProviderError(f"{self.spec.model}: HTTP {exc.status_code}: {exc.message}") from exc
        except (openai.APIError, ValueError) as exc:  # ValueError: a body that is not JSON
            raise ProviderError(f"{self.spec.model}: {type(exc).__name__}: {exc}") from exc
        if not completion.choices:
            raise ProviderError(f"{self.spec.model}: the server returned no choices")
        choice = completion.choices[0]
        usage = completion.usage
        return ChatResponse(
            text=choice.message.content or "",
            model=completion.model or self.spec.model_name,
            input_tokens=usage.prompt_tokens if usage else None,
            output_tokens=usage.completion_tokens if usage else None,
            finish_reason=choice.finish_reason,
            latency_s=time.perf_counter() - started,
        )

    async def aclose(self) -> None:
        await self.client.close()
