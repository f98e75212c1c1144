"""One interface for every model provider: an async ``complete(ChatRequest) -> ChatResponse``, and
the provider's ``Capabilities``: what its API takes and offers, declared once on its class.

``complete_many`` answers a list of requests, one ``Outcome`` each in input order (a failure is an
outcome, never a gap). The default here is a plain bounded gather; the pipeline calls models through
``pref_pipeline.providers.client.ModelClient``, which puts the response cache, the rate limits and
the batch APIs (``submit_batch``/``batch_status``/``batch_results`` below) in front of a provider.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pref_pipeline.runner import Outcome, gather_bounded

if TYPE_CHECKING:
    from pref_pipeline.specs import ModelSpec

SAMPLING_KEYS = ("temperature", "top_p", "seed")  # what a model spec may set besides max_tokens


@dataclass(frozen=True)
class ChatRequest:
    """A chat call: the ``user`` turn to answer, after the ``history`` of a conversation (earlier user and
    assistant turns, empty for a single-turn call). ``json_schema`` asks for structured output where the
    provider has it."""

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
    history: tuple[tuple[str, str], ...] = ()  # (role, content) of the turns before ``user``

    def messages(self) -> list[dict[str, str]]:
        """The conversation as chat APIs take it (without the system message): the history, then ``user``."""
        return [*({"role": role, "content": content} for role, content in self.history),
                {"role": "user", "content": self.user}]

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
                logprobs: int | None = None, history: tuple[tuple[str, str], ...] = ()) -> ChatRequest:
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
            history=tuple(history),
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


@dataclass(frozen=True)
class Capabilities:
    """What a provider's API takes and offers. The configuration validates models against it, the preflight
    checks keys and probes endpoints with it, the dry-run estimate and the strategies read it."""

    sampling: frozenset[str] = frozenset(SAMPLING_KEYS)  # the sampling parameters it accepts
    no_sampling: str = ""  # why it refuses the others (named in the configuration error)
    batch_api: bool = False  # a batch API at half price (``batch: true``)
    logprobs: bool = False  # token log-probabilities (a judge's confidence); judges ask for them by default
    no_logprobs: str = ""  # why it has none, and what to use instead
    structured_output: tuple[str, ...] = ("text",)  # the ``response_format`` modes it honours
    key_variables: tuple[str, ...] = ()  # environment variables one of which holds its key (empty: no key)
    base_url_variable: str | None = None  # the SDK's variable for another server (then no key is needed)
    default_url: str | None = None  # where the API lives; None: no HTTP call (in process)
    default_max_tokens: int = 256  # what a call may write when ``max_tokens`` is unset (the estimate's ceiling)


@dataclass(frozen=True)
class Probe:
    """The preflight's one cheap request to an endpoint: ``GET url`` with these headers."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    key_variable: str | None = None  # the variable whose key is sent (None: none, a keyless server)


class ProviderError(RuntimeError):
    """A call that failed after the SDK's own retries; the message says what the server answered."""


class Provider(abc.ABC):
    """A configured model endpoint. Subclasses wrap one official SDK client (imported when a model of theirs is
    called, not when the configuration is read) and declare ``name`` (the model prefix, ``openai`` in
    ``openai:gpt-4.1``) and ``capabilities``."""

    name: ClassVar[str]
    capabilities: ClassVar[Capabilities] = Capabilities()
    # The SDK's modules, imported on a model's first call; a process about to call one imports them ahead (the
    # forkserver of parallel batches does, once for all its batches).
    sdk_modules: ClassVar[tuple[str, ...]] = ()

    def __init__(self, spec: ModelSpec, *, http_hooks: dict[str, list[Any]] | None = None):
        self.spec = spec  # http_hooks: httpx event hooks for an SDK's client (the client layer's 429 watch)

    # ----- what the configuration, the preflight and the estimate ask of a provider, before any call -----

    @classmethod
    def key_variables(cls, spec: ModelSpec, environ: Mapping[str, str]) -> tuple[str, ...]:
        """The variables one of which must hold a key for this model; empty when it needs none. A model with a
        ``base_url`` (or the SDK's own base-URL variable) needs none: the SDK gets a placeholder, since
        compatible servers usually ignore it."""
        variable = cls.capabilities.base_url_variable
        if spec.base_url or (variable and environ.get(variable)):
            return ()
        return cls.capabilities.key_variables

    @classmethod
    def api_key(cls, spec: ModelSpec, environ: Mapping[str, str]) -> str | None:
        """The key the SDK's client is given: the first variable's, a placeholder for a keyless server, or None
        (the SDK then reads its own variables)."""
        first = cls.capabilities.key_variables[:1]
        key = environ.get(first[0]) if first else None
        return key if key is not None or cls.key_variables(spec, environ) else "not-needed"

    @classmethod
    def base_url(cls, spec: ModelSpec, environ: Mapping[str, str]) -> str | None:
        """Where its calls go (None: in process)."""
        variable = cls.capabilities.base_url_variable
        url = spec.base_url or (environ.get(variable) if variable else None) or cls.capabilities.default_url
        return url.rstrip("/") if url else None

    @classmethod
    def probe(cls, base_url: str, environ: Mapping[str, str]) -> Probe | None:
        """The preflight's cheap request to ``base_url``; None when the provider makes no HTTP call."""
        return None

    @classmethod
    def model_problem(cls, spec: ModelSpec) -> str | None:
        """Why this model cannot be used before any call (e.g. a model file that does not exist), or None."""
        return None

    def request(self, user: str, *, system: str | None = None, seed: int | None = None,
                json_schema: dict[str, Any] | None = None, schema_name: str = "output",
                logprobs: int | None = None, history: tuple[tuple[str, str], ...] = ()) -> ChatRequest:
        """A request with this model's configured sampling parameters and system prompt."""
        return RequestBuilder(self.spec).request(user, system=system, seed=seed, json_schema=json_schema,
                                                 schema_name=schema_name, logprobs=logprobs, history=history)

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
