"""Model providers behind one interface: ``openai:``, ``anthropic:`` and the embedded ``local:``.

A provider is one module here named ``<name>_provider.py`` holding a ``Provider`` subclass that declares its
``name`` (the model prefix) and ``capabilities``; ``PROVIDERS`` is found from those modules, so adding a
provider is adding its module. Their SDKs are imported when a model of theirs is first called.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING, Any

from pref_pipeline.providers.base import Capabilities, ChatRequest, ChatResponse, Provider, ProviderError

if TYPE_CHECKING:
    from pref_pipeline.specs import ModelSpec

MODULE_SUFFIX = "_provider"


def _discover() -> dict[str, type[Provider]]:
    for module in pkgutil.iter_modules(__path__):
        if module.name.endswith(MODULE_SUFFIX):
            importlib.import_module(f"{__name__}.{module.name}")
    return {cls.name: cls for cls in Provider.__subclasses__() if cls.__module__.startswith(f"{__name__}.")}


PROVIDERS: dict[str, type[Provider]] = _discover()


def provider_class(name: str) -> type[Provider]:
    """The provider of a model prefix (``openai`` for ``openai:gpt-4.1``)."""
    return PROVIDERS[name]


def capabilities(name: str) -> Capabilities:
    """What the provider of a model prefix takes and offers."""
    return PROVIDERS[name].capabilities


def make_provider(spec: ModelSpec, *, http_hooks: dict[str, list[Any]] | None = None) -> Provider:
    """The provider for ``spec.model``'s prefix; ``http_hooks`` are httpx event hooks for its SDK's client."""
    return PROVIDERS[spec.provider](spec, http_hooks=http_hooks)


__all__ = ["PROVIDERS", "Capabilities", "ChatRequest", "ChatResponse", "Provider", "ProviderError", "capabilities",
           "make_provider", "provider_class"]
