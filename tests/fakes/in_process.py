"""An in-process fake LLM provider, for pipeline tests that need answers but do not test the HTTP path.

``FakeLLM`` answers as the fake server does (``tests/fakes/answers.py``: the same judge, generate and score
functions, the same log-probabilities), but as a ``pref_pipeline.providers.base.Provider`` that the
pipeline's own call session uses instead of an SDK-backed one (``CallSettings.provider_factory``). The
response cache, the budgets and the usage ledger stay in front of it, so the code under test is the real
one except the transport: no SDK, no server thread, no HTTP::

    fake = FakeLLM(judge_fn=prefer_shorter)
    dg.materialize(assets, resources=helpers.resources(fake))  # the ``llm`` resource: InProcessLLMCalls
    generate_candidates(prompts, config, helpers.calls(fake))  # a CallSettings with the fake's factory

``requests`` records every request the pipeline sent, in the fake server's form (``path``: the endpoint
the request would have gone to, ``body``: the request in its protocol's shape, which the answer functions
see as ``info.body``), so a test counts and filters calls the same way with either fake. There are no
faults, latency, rate limits or batch APIs here: the tests of those use ``FakeLLMServer``.
"""

# No ``from __future__ import annotations``: Dagster reads ``InProcessLLMCalls``'s field annotation
# (``ResourceDependency``) as an object, not as a string.
import threading
import time
from dataclasses import replace
from typing import Any

import dagster as dg

from assets.resources import LLMCalls
from pref_pipeline.config import ModelSpec
from pref_pipeline.providers.base import ChatRequest, ChatResponse, Provider, token_logprobs
from pref_pipeline.providers.client import CallSettings
from tests.fakes.answers import (
    GenerateFn, JudgeFn, Protocol, ScoreFn, decide, default_generate, default_judge, default_score, fake_logprobs,
)

ANTHROPIC_DEFAULT_MAX_TOKENS = 1024  # what the Anthropic provider sends when a request sets none


class FakeLLM:
    """The answers and the record of requests; ``provider`` is the factory ``CallSettings`` takes.

    ``judge_fn``, ``generate_fn`` and ``score_fn`` are plain attributes read on every request, as on the
    fake server, so a test may change them between runs.
    """

    def __init__(self, *, judge_fn: JudgeFn | None = None, generate_fn: GenerateFn | None = None,
                 score_fn: ScoreFn | None = None):
        self.judge_fn: JudgeFn = judge_fn or default_judge
        self.generate_fn: GenerateFn = generate_fn or default_generate
        self.score_fn: ScoreFn = score_fn or default_score
        self.requests: list[dict[str, Any]] = []  # {"path", "body", "at"}, in order
        self._lock = threading.Lock()

    def provider(self, spec: ModelSpec) -> "FakeProvider":
        """The provider of one configured model (``CallSettings.provider_factory``)."""
        return FakeProvider(spec, self)

    def set_judge_fn(self, fn: JudgeFn | None) -> None:
        """Answer judge requests with ``fn`` (``None`` restores the default judge)."""
        self.judge_fn = fn or default_judge

    def reset(self) -> None:
        """Forget the recorded requests."""
        with self._lock:
            self.requests.clear()

    def count(self, path_suffix: str) -> int:
        """How many recorded requests have a path ending with ``path_suffix``."""
        with self._lock:
            return sum(1 for r in self.requests if r["path"].endswith(path_suffix))

    def _record(self, path: str, body: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append({"path": path, "body": body, "at": time.monotonic()})


class FakeProvider(Provider):
    """One configured model answered by a ``FakeLLM``: Anthropic's protocol for ``anthropic:`` models, OpenAI's
    for the rest (so a judge's log-probabilities come back as the OpenAI provider returns them)."""

    def __init__(self, spec: ModelSpec, llm: FakeLLM):
        super().__init__(spec)
        self.llm = llm
        self.protocol: Protocol = "anthropic" if spec.provider == "anthropic" else "openai"

    def body(self, request: ChatRequest) -> dict[str, Any]:
        """The request as the provider's SDK would send it: the fields the answer functions read."""
        structured = request.json_schema is not None and self.spec.response_format != "text"
        if self.protocol == "anthropic":
            body: dict[str, Any] = {"model": self.spec.model_name,
                                    "max_tokens": request.max_tokens or ANTHROPIC_DEFAULT_MAX_TOKENS,
                                    "messages": request.messages()}
            if request.system:
                body["system"] = request.system
            if structured and self.spec.response_format == "json_schema":
                body["output_config"] = {"format": {"type": "json_schema", "schema": request.json_schema}}
            return body
        messages = [{"role": "system", "content": request.system}] if request.system else []
        body = {"model": self.spec.model_name, "messages": [*messages, *request.messages()],
                **request.sampling()}
        if structured and self.spec.response_format == "json_object":
            body["response_format"] = {"type": "json_object", "schema": request.json_schema}
        elif structured:
            body["response_format"] = {"type": "json_schema", "json_schema": {
                "name": request.schema_name, "schema": request.json_schema, "strict": True}}
        if request.logprobs:
            body["logprobs"], body["top_logprobs"] = True, request.logprobs
        return body

    async def complete(self, request: ChatRequest) -> ChatResponse:
        body = self.body(request)
        self.llm._record("/v1/chat/completions" if self.protocol == "openai" else "/v1/messages", body)
        out = decide(body, self.protocol, judge_fn=self.llm.judge_fn, generate_fn=self.llm.generate_fn,
                     score_fn=self.llm.score_fn)
        extra: dict[str, Any] = {}
        if self.protocol == "openai" and request.logprobs:
            extra["token_logprobs"] = token_logprobs(
                fake_logprobs(out.text, out.label_probs, request.logprobs)["content"])
        if self.protocol == "openai":
            finish = "length" if out.truncated else "stop"
        else:
            finish = "max_tokens" if out.truncated else "end_turn"
        return ChatResponse(text=out.text, model=self.spec.model_name, input_tokens=out.input_tokens,
                            output_tokens=out.output_tokens, finish_reason=finish, extra=extra)


class InProcessLLMCalls(LLMCalls):
    """The pipeline's ``llm`` resource with a ``FakeLLM`` behind the real call session: the same home, cache and
    budgets as ``LLMCalls``, only the providers come from the fake (a test swaps it in for ``llm``)."""

    fake: dg.ResourceDependency[FakeLLM]

    def settings(self) -> CallSettings:
        return replace(super().settings(), provider_factory=self.fake.provider)
