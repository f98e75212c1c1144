"""Model providers behind one interface: ``openai:``, ``anthropic:`` and the embedded ``local:``."""

from __future__ import annotations

from typing import Any

from pref_pipeline.config import ModelSpec
from pref_pipeline.providers.base import ChatRequest, ChatResponse, Provider, ProviderError

__all__ = ["ChatRequest", "ChatResponse", "Provider", "ProviderError", "make_provider"]


def make_provider(spec: ModelSpec, *, http_hooks: dict[str, list[Any]] | None = None) -> Provider:
    """The provider for ``spec.model``'s prefix; SDKs are imported only when used.

    ``http_hooks`` are httpx event hooks for the SDK's client (``local:`` makes no HTTP calls).
    """
    if spec.provider == "openai":
        from pref_pipeline.providers.openai_provider import OpenAIProvider

        return OpenAIProvider(spec, http_hooks=http_hooks)
    if spec.provider == "anthropic":
        from pref_pipeline.providers.anthropic_provider import AnthropicProvider

        return AnthropicProvider(spec, http_hooks=http_hooks)
    from pref_pipeline.providers.local_provider import LocalLlamaProvider

    return LocalLlamaProvider(spec)
