"""The persistent response cache: one answer per distinct request, under ``PREF_PIPELINE_HOME/cache``.

Backed by ``diskcache`` (SQLite, safe across threads and processes). The key is a hash of
everything that determines an answer: provider, model, system prompt and message, sampling
parameters including the seed, the output schema and how it is asked for (``response_format``).
Where the model is served (``base_url``), timeouts, retries, rate limits and batch mode do not
change the answer and are left out, as in the judge fingerprint. Each answer is written the
moment it arrives, so a run that is killed resumes paying only for what was not yet answered.
Only successful answers are stored (an unparseable verdict is an answer; an HTTP error is not).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import diskcache

from pref_pipeline.providers.base import ChatRequest, ChatResponse

KEY_VERSION = 1
log = logging.getLogger("pref_pipeline")


def request_key(provider: str, model_name: str, response_format: str, request: ChatRequest) -> str:
    """A 64-hex-digit key (also usable as a batch ``custom_id``) for one request to one model."""
    identity = {
        "v": KEY_VERSION,
        "provider": provider,
        "model": model_name,
        "system": request.system,
        "messages": request.messages(),  # a conversation's earlier turns too: the key covers all of it
        "sampling": request.sampling(),
        "schema": request.json_schema,
        "schema_name": request.schema_name if request.json_schema is not None else None,
        "response_format": response_format if request.json_schema is not None else None,
    }
    if request.logprobs:  # only when asked, so every earlier key stays valid
        identity["logprobs"] = request.logprobs
    blob = json.dumps(identity, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ResponseCache:
    """``get``/``put`` of ``ChatResponse`` by request key. Never evicts (answers cost money)."""

    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self._cache = diskcache.Cache(str(folder), size_limit=2**50, eviction_policy="none")

    def get(self, key: str) -> ChatResponse | None:
        value = self._cache.get(key)
        if not isinstance(value, dict):
            return None
        fields = {k: value[k] for k in ("text", "model", "input_tokens", "output_tokens", "finish_reason", "latency_s")
                  if k in value}
        return ChatResponse(**fields, extra=dict(value.get("extra") or {}))

    def put(self, key: str, response: ChatResponse, **meta: Any) -> None:
        record = asdict(response)
        record["extra"] = {**record.get("extra", {}), **meta}
        try:
            self._cache.set(key, record)
        except Exception as exc:  # a full disk must not lose the answer already in hand
            log.warning("response cache: could not store %s: %s", key[:12], exc)

    def __contains__(self, key: str) -> bool:
        return key in self._cache

    def __len__(self) -> int:
        return len(self._cache)

    def close(self) -> None:
        self._cache.close()
