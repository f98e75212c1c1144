"""OpenAI and every OpenAI-compatible server (vLLM, llama.cpp's server, Ollama) via the official SDK."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pref_pipeline.providers.base import (
    BatchLimits, BatchStatus, Capabilities, ChatRequest, ChatResponse, Probe, Provider, ProviderError, token_logprobs,
)

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletion

BATCH_ENDPOINT = "/v1/chat/completions"
# The Batch API's input file: at most 50,000 requests and 200 MB (https://platform.openai.com/docs/guides/batch).
OPENAI_BATCH_LIMITS = BatchLimits(max_requests=50_000, max_bytes=200 * 1024 * 1024)
_ENDED = {"completed", "failed", "expired", "cancelled"}


class OpenAIProvider(Provider):
    """Chat Completions through ``openai.AsyncOpenAI``.

    Structured output follows ``response_format``: ``json_schema`` (OpenAI's strict schema mode),
    ``json_object`` (JSON mode with the schema attached, as llama.cpp's server accepts), or ``text``.
    Batch mode uses the Batch API: a JSONL file uploaded with ``purpose="batch"``, then
    ``batches.create`` on ``/v1/chat/completions``, polled, and read from its output/error files.
    """

    name = "openai"
    capabilities = Capabilities(
        batch_api=True, logprobs=True, structured_output=("json_schema", "json_object", "text"),
        key_variables=("OPENAI_API_KEY",), base_url_variable="OPENAI_BASE_URL", default_url="https://api.openai.com/v1")
    batch_limits = OPENAI_BATCH_LIMITS
    sdk_modules = ("openai",)

    @classmethod
    def probe(cls, base_url: str, environ: Mapping[str, str]) -> Probe:
        key = environ.get("OPENAI_API_KEY")
        return Probe(f"{base_url}/models", {"Authorization": f"Bearer {key}"} if key else {},
                     "OPENAI_API_KEY" if key else None)

    def __init__(self, spec, *, http_hooks=None):
        super().__init__(spec)
        import openai

        self.sdk = openai  # imported here: reading a configuration must not pay for the SDK
        try:
            self.client = openai.AsyncOpenAI(
                api_key=self.api_key(spec, os.environ), base_url=spec.base_url, timeout=spec.timeout_s,
                max_retries=spec.max_retries,
                http_client=openai.DefaultAsyncHttpxClient(event_hooks=http_hooks) if http_hooks else None,
            )
        except self.sdk.OpenAIError as exc:
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

    def _body(self, request: ChatRequest) -> dict[str, Any]:
        """The Chat Completions request body (the same for a live call and a batch line)."""
        messages = [{"role": "system", "content": request.system}] if request.system else []
        messages += request.messages()
        body: dict[str, Any] = {"model": self.spec.model_name, "messages": messages, **request.sampling()}
        response_format = self._response_format(request)
        if response_format is not None:
            body["response_format"] = response_format
        if request.logprobs:
            body["logprobs"] = True
            body["top_logprobs"] = request.logprobs
        return body

    def _response(self, completion: ChatCompletion, latency_s: float, source: str = "api") -> ChatResponse:
        if not completion.choices:
            raise ProviderError(f"{self.spec.model}: the server returned no choices")
        choice = completion.choices[0]
        usage = completion.usage
        logprobs = token_logprobs(choice.logprobs.content if choice.logprobs else None)
        return ChatResponse(
            text=choice.message.content or "",
            model=completion.model or self.spec.model_name,
            input_tokens=usage.prompt_tokens if usage else None,
            output_tokens=usage.completion_tokens if usage else None,
            finish_reason=choice.finish_reason,
            latency_s=latency_s,
            source=source,  # type: ignore[arg-type]
            extra={"token_logprobs": logprobs} if logprobs else {},
        )

    async def complete(self, request: ChatRequest) -> ChatResponse:
        started = time.perf_counter()
        try:
            completion = await self.client.chat.completions.create(**self._body(request))
        except self.sdk.APIStatusError as exc:
            raise ProviderError(f"{self.spec.model}: HTTP {exc.status_code}: {exc.message}") from exc
        except (self.sdk.APIError, ValueError) as exc:  # ValueError: a body that is not JSON
            raise ProviderError(f"{self.spec.model}: {type(exc).__name__}: {exc}") from exc
        return self._response(completion, time.perf_counter() - started)

    # ----- Batch API -----

    def batch_line(self, custom_id: str, request: ChatRequest) -> dict[str, Any]:
        return {"custom_id": custom_id, "method": "POST", "url": BATCH_ENDPOINT, "body": self._body(request)}

    async def submit_batch(self, lines: list[dict[str, Any]], *, metadata: dict[str, str] | None = None) -> str:
        data = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode("utf-8")
        try:
            uploaded = await self.client.files.create(file=("requests.jsonl", data, "application/jsonl"),
                                                      purpose="batch")
            batch = await self.client.batches.create(input_file_id=uploaded.id, endpoint=BATCH_ENDPOINT,
                                                     completion_window="24h", metadata=metadata or None)
        except self.sdk.APIStatusError as exc:
            raise ProviderError(f"{self.spec.model}: batch submit: HTTP {exc.status_code}: {exc.message}") from exc
        except self.sdk.APIError as exc:
            raise ProviderError(f"{self.spec.model}: batch submit: {type(exc).__name__}: {exc}") from exc
        return batch.id

    async def batch_status(self, batch_id: str) -> BatchStatus:
        try:
            batch = await self.client.batches.retrieve(batch_id)
        except self.sdk.APIStatusError as exc:
            raise ProviderError(f"{self.spec.model}: batch {batch_id}: HTTP {exc.status_code}: {exc.message}") from exc
        except self.sdk.APIError as exc:
            raise ProviderError(f"{self.spec.model}: batch {batch_id}: {type(exc).__name__}: {exc}") from exc
        counts = batch.request_counts
        done = (counts.completed + counts.failed) if counts else 0
        return BatchStatus(batch.status in _ENDED, batch.status, done, counts.total if counts else 0)

    async def _file_lines(self, file_id: str | None) -> list[dict[str, Any]]:
        if not file_id:
            return []
        content = await self.client.files.content(file_id)
        return [json.loads(line) for line in content.text.splitlines() if line.strip()]

    async def batch_results(self, batch_id: str) -> dict[str, ChatResponse | str]:
        try:
            batch = await self.client.batches.retrieve(batch_id)
            lines = await self._file_lines(batch.output_file_id) + await self._file_lines(batch.error_file_id)
        except self.sdk.APIStatusError as exc:
            raise ProviderError(f"{self.spec.model}: batch {batch_id}: HTTP {exc.status_code}: {exc.message}") from exc
        except self.sdk.APIError as exc:
            raise ProviderError(f"{self.spec.model}: batch {batch_id}: {type(exc).__name__}: {exc}") from exc
        results: dict[str, ChatResponse | str] = {}
        for line in lines:
            custom_id = line.get("custom_id")
            response = line.get("response") or {}
            body = response.get("body")
            status = response.get("status_code")
            if status == 200 and isinstance(body, dict) and not line.get("error"):
                try:
                    completion = self.sdk.types.chat.ChatCompletion.model_validate(body)
                    results[custom_id] = self._response(completion, 0.0, source="batch")
                except (ValueError, ProviderError) as exc:
                    results[custom_id] = f"{self.spec.model}: batch {batch_id}: unreadable result: {exc}"
                continue
            error = line.get("error") or (body.get("error") if isinstance(body, dict) else None)
            message = error.get("message") if isinstance(error, dict) else error
            results[custom_id] = f"{self.spec.model}: batch {batch_id}: HTTP {status}: {message or 'no result'}"
        if batch.status != "completed":
            reason = "; ".join(e.message or "" for e in (batch.errors.data or [])) if batch.errors else ""
            results.setdefault("__batch__", f"{self.spec.model}: batch {batch_id} {batch.status}"
                               + (f": {reason}" if reason else ""))
        return results

    async def aclose(self) -> None:
        await self.client.close()
