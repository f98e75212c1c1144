"""Anthropic's Messages API via the official SDK, with structured outputs for verdicts."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from typing import Any

from pref_pipeline.providers.base import (
    BatchLimits, BatchStatus, Capabilities, ChatRequest, ChatResponse, Probe, Provider, ProviderError,
)

DEFAULT_MAX_TOKENS = 1024  # the Messages API requires max_tokens
API_VERSION = "2023-06-01"  # the anthropic-version header of the preflight's model list request
# Message Batches: at most 100,000 requests or 256 MB per batch, whichever comes first.
ANTHROPIC_BATCH_LIMITS = BatchLimits(max_requests=100_000, max_bytes=256 * 1024 * 1024)


class AnthropicProvider(Provider):
    """Messages through ``anthropic.AsyncAnthropic``; ``json_schema`` uses ``output_config.format``.

    Batch mode uses the Message Batches API (``client.messages.batches``): create, retrieve until
    ``processing_status == "ended"``, then stream the results (matched by ``custom_id``).
    """

    name = "anthropic"
    capabilities = Capabilities(
        # No sampling parameters: API version 2026-10-21 (the SDK 2.x default) rejects them. No seed either.
        sampling=frozenset(), no_sampling="the Anthropic Messages API (version 2026-10-21, used by the anthropic "
        "SDK 2.x) accepts no sampling parameters", batch_api=True,
        no_logprobs="the Anthropic Messages API returns no log-probabilities",
        structured_output=("json_schema", "text"), key_variables=("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"),
        base_url_variable="ANTHROPIC_BASE_URL", default_url="https://api.anthropic.com",
        default_max_tokens=DEFAULT_MAX_TOKENS)
    batch_limits = ANTHROPIC_BATCH_LIMITS
    sdk_modules = ("anthropic",)

    @classmethod
    def probe(cls, base_url: str, environ: Mapping[str, str]) -> Probe:
        headers = {"anthropic-version": API_VERSION}
        if environ.get("ANTHROPIC_API_KEY"):
            return Probe(f"{base_url}/v1/models", headers | {"x-api-key": environ["ANTHROPIC_API_KEY"]},
                         "ANTHROPIC_API_KEY")
        if environ.get("ANTHROPIC_AUTH_TOKEN"):  # the SDK takes either
            return Probe(f"{base_url}/v1/models", headers | {"Authorization": f"Bearer {environ['ANTHROPIC_AUTH_TOKEN']}"},
                         "ANTHROPIC_AUTH_TOKEN")
        return Probe(f"{base_url}/v1/models", headers)

    def __init__(self, spec, *, http_hooks=None):
        super().__init__(spec)
        import anthropic

        self.sdk = anthropic  # imported here: reading a configuration must not pay for the SDK
        self.client = anthropic.AsyncAnthropic(
            api_key=self.api_key(spec, os.environ), base_url=spec.base_url, timeout=spec.timeout_s, max_retries=spec.max_retries,
            http_client=anthropic.DefaultAsyncHttpxClient(event_hooks=http_hooks) if http_hooks else None,
        )

    def _params(self, request: ChatRequest) -> dict[str, Any]:
        """The Messages request parameters (the same for a live call and a batch request)."""
        params: dict[str, Any] = {
            "model": self.spec.model_name,
            "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS,
            "messages": request.messages(),  # the system message goes in ``system``, below
        }
        if request.system:
            params["system"] = request.system
        # No sampling parameters (see ``capabilities``): the configuration refuses them for anthropic: models.
        if request.json_schema is not None and self.spec.response_format == "json_schema":
            params["output_config"] = {"format": {"type": "json_schema", "schema": request.json_schema}}
        return params

    def _response(self, message: Any, latency_s: float, source: str = "api") -> ChatResponse:
        text = "".join(block.text for block in message.content if getattr(block, "type", None) == "text")
        return ChatResponse(
            text=text,
            model=message.model or self.spec.model_name,
            input_tokens=message.usage.input_tokens if message.usage else None,
            output_tokens=message.usage.output_tokens if message.usage else None,
            finish_reason=message.stop_reason,
            latency_s=latency_s,
            source=source,  # type: ignore[arg-type]
        )

    async def complete(self, request: ChatRequest) -> ChatResponse:
        started = time.perf_counter()
        try:
            message = await self.client.messages.create(**self._params(request))
        except self.sdk.APIStatusError as exc:
            raise ProviderError(f"{self.spec.model}: HTTP {exc.status_code}: {exc.message}") from exc
        except (self.sdk.APIError, ValueError) as exc:  # ValueError: a body that is not JSON
            raise ProviderError(f"{self.spec.model}: {type(exc).__name__}: {exc}") from exc
        return self._response(message, time.perf_counter() - started)

    # ----- Message Batches API -----

    def batch_line(self, custom_id: str, request: ChatRequest) -> dict[str, Any]:
        return {"custom_id": custom_id, "params": self._params(request)}

    def _error(self, what: str, exc: Exception) -> ProviderError:
        if isinstance(exc, self.sdk.APIStatusError):
            return ProviderError(f"{self.spec.model}: {what}: HTTP {exc.status_code}: {exc.message}")
        return ProviderError(f"{self.spec.model}: {what}: {type(exc).__name__}: {exc}")

    async def submit_batch(self, lines: list[dict[str, Any]], *, metadata: dict[str, str] | None = None) -> str:
        try:
            batch = await self.client.messages.batches.create(requests=lines)
        except self.sdk.APIError as exc:
            raise self._error("batch submit", exc) from exc
        return batch.id

    async def batch_status(self, batch_id: str) -> BatchStatus:
        try:
            batch = await self.client.messages.batches.retrieve(batch_id)
        except self.sdk.APIError as exc:
            raise self._error(f"batch {batch_id}", exc) from exc
        c = batch.request_counts
        total = c.processing + c.succeeded + c.errored + c.canceled + c.expired
        return BatchStatus(batch.processing_status == "ended", batch.processing_status, total - c.processing, total)

    async def batch_results(self, batch_id: str) -> dict[str, ChatResponse | str]:
        results: dict[str, ChatResponse | str] = {}
        try:
            decoder = await self.client.messages.batches.results(batch_id)
            async for item in decoder:
                result = item.result
                if result.type == "succeeded":
                    results[item.custom_id] = self._response(result.message, 0.0, source="batch")
                elif result.type == "errored":
                    error = result.error.error
                    results[item.custom_id] = (f"{self.spec.model}: batch {batch_id}: {error.type}: "
                                               f"{getattr(error, 'message', '') or json.dumps(error.to_dict())}")
                else:  # canceled, expired
                    results[item.custom_id] = f"{self.spec.model}: batch {batch_id}: request {result.type}"
        except self.sdk.APIError as exc:
            raise self._error(f"batch {batch_id} results", exc) from exc
        return results

    async def aclose(self) -> None:
        await self.client.close()
