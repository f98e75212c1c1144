"""How the pipeline calls models: cache first, then live calls under a budget, or a batch API.

A ``CallSession`` lives for one step (one event loop): it opens the response cache, keeps the
token/cost ledger, shows progress, and hands out one ``ModelClient`` per configured model.
``ModelClient.complete_many(requests)`` returns one ``Outcome`` per request, in input order:

1. answers already in the cache are returned at once (and cost nothing);
2. the rest go either to the provider's **batch API** (``batch: true``): split by the API's size
   limits, submitted, polled every ``batch_poll_s`` and collected; the batch id is saved under
   the home's ``llm_batches/`` folder keyed by the request set, so a restarted run picks the
   pending batch up instead of paying twice;
3. or are sent **live**: at most ``max_concurrency`` in flight (per process), paced by ``rpm`` /
   ``tpm`` across every process using the same home (pyrate-limiter over a SQLite file:
   ``providers/limits.py``), with the SDK's own retries (exponential backoff with jitter, honouring
   ``retry-after`` on 429 and 5xx, ``max_retries`` times). A 429 also pauses the endpoint in every
   such process: no new request of that model starts until the server's ``retry-after`` has passed,
   so runs without (or with too high) an ``rpm`` back off as a whole instead of firing into a full window.

Every answer is written to the cache the moment it arrives. Generators and judges that name the
same ``model`` and ``base_url`` share one budget (the smallest ``max_concurrency``/``rpm``/``tpm``
given for it), since a provider's limits apply per model, not per sampling setting.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filelock import FileLock, Timeout

from pref_pipeline.accounting import UsageLedger, price_table
from pref_pipeline.providers.cache import ResponseCache, request_key
from pref_pipeline.paths import Home
from pref_pipeline.providers import make_provider
from pref_pipeline.providers.base import BatchLimits, ChatRequest, ChatResponse, Provider, RequestBuilder
from pref_pipeline.providers.limits import SharedLimits
from pref_pipeline.runner import Outcome, Progress, ProgressBar

PROVIDER_BATCH_FOLDER = "llm_batches"  # under the home: pending provider batch jobs (Home.provider_batches)
LIMITS_FILE = "limits.sqlite"  # under the home's cache folder: the rpm/tpm budgets and 429 pauses every process shares
CHARS_PER_TOKEN = 4  # for tpm pacing and estimates: ~4 characters of English text per token
DEFAULT_OUTPUT_TOKENS = 256  # counted against tpm when a request sets no max_tokens
PAUSE_WITHOUT_RETRY_AFTER_S = 1.0  # how long new requests wait after a 429 that names no retry-after
MAX_PAUSE_S = 60.0  # a longer retry-after is capped (the SDKs also ignore one above 60 s)
RPM_BURST = 2  # rpm tolerates one request admitted late (see Budget), so timer lateness does not cost budget

if TYPE_CHECKING:
    from pref_pipeline.config import PipelineConfig
    from pref_pipeline.specs import ModelSpec

log = logging.getLogger("pref_pipeline")


def estimate_tokens(text: str | None) -> int:
    """A rough token count from text length (~4 characters per token, OpenAI's rule of thumb)."""
    return math.ceil(len(text or "") / CHARS_PER_TOKEN)


def request_tokens(request: ChatRequest) -> int:
    """What a request counts against a tokens-per-minute limit: its input plus its ``max_tokens``."""
    return (estimate_tokens(request.system) + sum(estimate_tokens(m["content"]) for m in request.messages())
            + (request.max_tokens or DEFAULT_OUTPUT_TOKENS))


def retry_after_seconds(headers: Any) -> float | None:
    """The wait a 429 asks for: ``retry-after-ms``, or ``retry-after`` in seconds or as an HTTP date."""
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def endpoint_of(spec: ModelSpec) -> tuple[str, str | None, str]:
    return (spec.provider, spec.base_url, spec.model_name)


class Budget:
    """Concurrency, requests per minute and tokens per minute of one endpoint (model + base_url).

    ``max_concurrency`` holds per process (an ``asyncio.Semaphore``). ``rpm`` and ``tpm`` hold across
    every process that shares the home's budget file (``SharedLimits``, pyrate-limiter's GCRA): both are
    paced evenly, ``rpm`` one request every 60/rpm s and ``tpm`` with at most 1 % of a minute's tokens as
    a burst. ``rpm`` tolerates one request of burst: a request admitted a few milliseconds late (the
    limiter's wait is rounded up to the millisecond, and the event loop wakes late on a busy machine)
    does not push every later one back, which otherwise cost about 1 % of the budget. So a 60-second
    window sees at most ``rpm`` + 2 requests, whatever the window's phase and however many runs share the
    model. Set ``rpm`` a little under the provider's limit (e.g. 570 for 600): network jitter can bunch
    requests on their way.

    A 429 pauses the endpoint in every one of those processes (``note_rate_limited``).
    """

    def __init__(self, max_concurrency: int, rpm: int | None, tpm: int | None, *, name: str = "",
                 logger: logging.Logger | None = None, ledger: UsageLedger | None = None,
                 limits: SharedLimits | None = None, key: str | None = None):
        self.max_concurrency, self.rpm, self.tpm = max_concurrency, rpm, tpm
        self.name, self.logger, self.ledger = name, logger or log, ledger
        self.semaphore = asyncio.Semaphore(max_concurrency)
        self._own_limits = limits is None  # no shared file given: this budget holds within this process only
        self.limits = limits if limits is not None else SharedLimits(None)
        self.key = key or name
        self._logged_pause_until = 0.0
        self._requests = self.limits.limiter(f"{self.key}|rpm", rpm, RPM_BURST) if rpm else None
        self._tokens = None
        if tpm:
            self._token_burst = max(1, round(0.01 * tpm))
            self._tokens = self.limits.limiter(f"{self.key}|tpm", tpm, self._token_burst)

    def note_rate_limited(self, retry_after_s: float | None) -> None:
        """A 429 arrived: hold back every new request of this endpoint, in every process, for the wait it asked for.

        The request that got the 429 is retried by the SDK after its ``retry-after``; without this
        pause the other requests would keep starting into the same full window (a 429 storm).
        """
        if self.ledger is not None:  # counted there, including the 429s the SDK then retried
            self.ledger.record_rate_limited(self.name)
        wait = PAUSE_WITHOUT_RETRY_AFTER_S if retry_after_s is None else min(retry_after_s, MAX_PAUSE_S)
        until = self.limits.pause(self.key, wait)
        if until > self._logged_pause_until + 0.5:  # one log line per pause, not one per 429
            self.logger.warning("%s: HTTP 429 (rate limited); new requests wait %.1f s%s", self.name, wait,
                                "" if retry_after_s is not None else " (no retry-after given)")
            self._logged_pause_until = until

    def http_hooks(self) -> dict[str, list[Any]]:
        """httpx event hooks that report every 429 the SDK's client receives to this budget."""

        async def on_response(response: Any) -> None:
            if response.status_code == 429:
                self.note_rate_limited(retry_after_seconds(response.headers))

        return {"response": [on_response]}

    async def admit(self, tokens: int) -> None:
        while (delay := self.limits.paused_for(self.key)) > 0:
            await asyncio.sleep(delay)
        if self._requests is not None:
            await self._requests.try_acquire_async(self.key)
        if self._tokens is not None:
            remaining = tokens
            while remaining > 0:  # a request bigger than the burst waits for several refills
                chunk = min(remaining, self._token_burst)
                await self._tokens.try_acquire_async(self.key, chunk)
                remaining -= chunk

    def close(self) -> None:
        if self._own_limits:
            self.limits.close()


class ProviderBatchStore:
    """Pending provider batch jobs (OpenAI Batch, Anthropic Message Batches) on disk, one JSON file per request
    set, so a new process resumes them instead of paying again."""

    def __init__(self, folder: Path):
        self.folder = folder  # created on first use

    def _path(self, set_key: str) -> Path:
        return self.folder / f"{set_key}.json"

    def lock(self, set_key: str) -> FileLock:
        self.folder.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.folder / f"{set_key}.lock"))

    def get(self, set_key: str) -> dict[str, Any] | None:
        try:
            return json.loads(self._path(set_key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def pending(self, set_key: str) -> dict[str, Any] | None:
        record = self.get(set_key)
        return record if record and record.get("status") == "pending" else None

    def save(self, set_key: str, record: dict[str, Any]) -> None:
        path = self._path(set_key)
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)

    def all(self) -> list[dict[str, Any]]:
        if not self.folder.is_dir():
            return []
        return [r for p in sorted(self.folder.glob("*.json")) if (r := self.get(p.stem))]


def split_provider_batches(lines: list[tuple[str, dict[str, Any]]], limits: BatchLimits) -> list[list[tuple[str, dict[str, Any]]]]:
    """Consecutive chunks that each stay within a batch API's request count and byte size."""
    chunks: list[list[tuple[str, dict[str, Any]]]] = []
    current: list[tuple[str, dict[str, Any]]] = []
    size = 0
    for key, line in lines:
        line_bytes = len(json.dumps(line, ensure_ascii=False).encode("utf-8")) + 1
        if current and (len(current) >= limits.max_requests or size + line_bytes > limits.max_bytes):
            chunks.append(current)
            current, size = [], 0
        current.append((key, line))
        size += line_bytes
    if current:
        chunks.append(current)
    return chunks


def _error_text(exc: BaseException, spec: ModelSpec) -> str:
    """What failed, and where: an SDK's "Connection error." alone names no endpoint."""
    where = spec.base_url or f"the {spec.provider} SDK's default endpoint"
    return f"{type(exc).__name__}: {exc} ({spec.model} at {where})"


class ModelClient:
    """One configured model as the pipeline calls it (see the module docstring)."""

    def __init__(self, session: CallSession, spec: ModelSpec, provider: Provider | None = None):
        self.session = session
        self.spec = spec
        self.budget = session.budget_for(spec)
        self._provider = provider

    @property
    def provider(self) -> Provider:
        """Made on first use: a step whose every answer is cached never imports the SDK nor opens a client."""
        if self._provider is None:
            self._provider = make_provider(self.spec, http_hooks=self.budget.http_hooks())
        return self._provider

    @property
    def provider_made(self) -> bool:
        return self._provider is not None

    def request(self, user: str, **kwargs: Any) -> ChatRequest:
        if self._provider is not None:
            return self._provider.request(user, **kwargs)
        return RequestBuilder(self.spec).request(user, **kwargs)  # what Provider.request does, without the SDK

    def key(self, request: ChatRequest) -> str:
        return request_key(self.spec.provider, self.spec.model_name, self.spec.response_format, request)

    async def complete_many(self, requests: Sequence[ChatRequest], *, label: str | None = None) -> list[Outcome]:
        session, spec = self.session, self.spec
        outcomes: list[Outcome | None] = [None] * len(requests)
        progress = Progress(len(requests), label or spec.model, session.logger, bar=session.bar)
        keys = [self.key(r) for r in requests]
        # Identical requests are asked once when answers are shared anyway (cache on) or must be
        # (a batch's custom_ids are unique); with the cache off, each live request is its own call.
        dedupe = session.cache is not None or spec.batch
        groups: dict[str, list[int]] = {}
        for i, key in enumerate(keys):
            hit = session.cache.get(key) if session.cache is not None else None
            if hit is not None:
                outcomes[i] = Outcome(replace(hit, source="cache"), None)
                session.ledger.record(spec.model, "cache", hit.input_tokens, hit.output_tokens)
                progress.update(ok=True, cached=True)
            else:
                groups.setdefault(key if dedupe else f"{key}#{i}", []).append(i)
        if groups:
            if spec.batch:
                await self._batched(groups, requests, outcomes, progress)
            else:
                await asyncio.gather(*(self._live(key, idx, requests, outcomes, progress) for key, idx in groups.items()))
        progress.finish()
        return outcomes  # type: ignore[return-value]

    def _settle(self, key: str, indices: list[int], outcome: Outcome, outcomes: list, progress: Progress) -> None:
        """Store an answer the moment it arrives, count it, and give it to every index that asked."""
        response = outcome.value
        if outcome.ok:
            if self.session.cache is not None:
                self.session.cache.put(key.split("#", 1)[0], response, answered_via=response.source,
                                       answered_at=datetime.now(timezone.utc).isoformat())
            self.session.ledger.record(self.spec.model, response.source, response.input_tokens, response.output_tokens)
            for _ in indices[1:]:  # identical requests in the same call: answered once, the copies are free
                self.session.ledger.record(self.spec.model, "cache", response.input_tokens, response.output_tokens)
        else:
            self.session.ledger.record_failure(self.spec.model)
        for n, i in enumerate(indices):
            outcomes[i] = outcome
            progress.update(ok=outcome.ok, cached=outcome.ok and n > 0)

    async def _live(self, key: str, indices: list[int], requests: Sequence[ChatRequest], outcomes: list,
                    progress: Progress) -> None:
        request = requests[indices[0]]
        # The provider (its SDK import, ~1 s) is made before the budget admits the request: made after, it would
        # delay requests already admitted, which then reach the server bunched together (over a shared rpm).
        provider = self.provider
        async with self.budget.semaphore:
            await self.budget.admit(request_tokens(request))
            try:
                outcome = Outcome(await provider.complete(request), None)
            except Exception as exc:  # recorded per row; the caller decides whether the step fails
                outcome = Outcome(None, _error_text(exc, self.spec))
        self._settle(key, indices, outcome, outcomes, progress)

    # ----- batch mode -----

    async def _batched(self, groups: dict[str, list[int]], requests: Sequence[ChatRequest], outcomes: list,
                       progress: Progress) -> None:
        limits = self.provider.batch_limits
        lines = [(key, self.provider.batch_line(key, requests[idx[0]])) for key, idx in groups.items()]
        chunks = split_provider_batches(lines, limits) if limits else [lines]
        if len(chunks) > 1:
            self.session.logger.info("%s: %d requests split into %d batches (limits: %d requests, %d MB)",
                                     self.spec.model, len(lines), len(chunks), limits.max_requests,
                                     limits.max_bytes // 2**20)
        await asyncio.gather(*(self._one_batch(chunk, groups, outcomes, progress) for chunk in chunks))

    def _set_key(self, keys: list[str]) -> str:
        blob = "|".join([self.spec.provider, self.spec.base_url or "", self.spec.model_name, *sorted(keys)])
        return hashlib.sha256(blob.encode()).hexdigest()[:32]

    async def _submit_or_resume(self, set_key: str, chunk: list[tuple[str, dict[str, Any]]]) -> str:
        store, logger = self.session.batch_store, self.session.logger
        lock = store.lock(set_key)
        while True:  # another process may be submitting this very set: wait for it, then resume its batch
            try:
                lock.acquire(timeout=0)
                break
            except Timeout:
                await asyncio.sleep(0.2)
        try:
            job = store.pending(set_key)
            if job:
                logger.info("%s: resuming batch %s (%d requests, submitted %s)", self.spec.model, job["batch_id"],
                            job["requests"], job["submitted_at"])
                return job["batch_id"]
            batch_id = await self.provider.submit_batch([line for _, line in chunk],
                                                        metadata={"pref_pipeline_request_set": set_key})
            store.save(set_key, {"batch_id": batch_id, "model": self.spec.model, "base_url": self.spec.base_url,
                                 "requests": len(chunk), "status": "pending",
                                 "submitted_at": datetime.now(timezone.utc).isoformat()})
            logger.info("%s: submitted batch %s (%d requests)", self.spec.model, batch_id, len(chunk))
            return batch_id
        finally:
            lock.release()

    async def _one_batch(self, chunk: list[tuple[str, dict[str, Any]]], groups: dict[str, list[int]], outcomes: list,
                         progress: Progress) -> None:
        keys = [key for key, _ in chunk]
        set_key = self._set_key(keys)
        store, logger = self.session.batch_store, self.session.logger
        try:
            batch_id = await self._submit_or_resume(set_key, chunk)
            last_done = -1
            while True:
                status = await self.provider.batch_status(batch_id)
                if status.ended:
                    break
                if status.done != last_done:
                    logger.info("%s: batch %s %s, %d/%d done", self.spec.model, batch_id, status.status,
                                status.done, status.total)
                    last_done = status.done
                await asyncio.sleep(self.spec.batch_poll_s)
            results = await self.provider.batch_results(batch_id)
        except Exception as exc:  # the batch (if submitted) stays pending on disk: the next run resumes it
            error = _error_text(exc, self.spec)
            for key in keys:
                self._settle(key, groups[key], Outcome(None, error), outcomes, progress)
            return
        batch_note = results.pop("__batch__", None)
        for key in keys:
            result = results.get(key)
            if isinstance(result, ChatResponse):
                outcome = Outcome(result, None)
            else:
                outcome = Outcome(None, "ProviderError: " + (result or batch_note or
                                  f"{self.spec.model}: no result for this request in batch {batch_id} ({status.status})"))
            self._settle(key, groups[key], outcome, outcomes, progress)
        record = store.get(set_key) or {"batch_id": batch_id}
        store.save(set_key, {**record, "status": "collected", "final_status": status.status,
                             "collected_at": datetime.now(timezone.utc).isoformat()})
        logger.info("%s: batch %s %s, %d answers collected", self.spec.model, batch_id, status.status,
                    sum(isinstance(results.get(k), ChatResponse) for k in keys))


@dataclass(frozen=True)
class CallSettings:
    """Where a step's LLM calls keep their state, given by the caller (the Dagster ``llm`` resource or a test).

    ``cache_dir`` holds the response cache (``None``: no cache, whatever the configuration says);
    ``batch_dir`` the pending provider batch jobs; ``progress`` draws a tqdm bar per step; ``limits_file`` the
    SQLite file where every process using this home keeps the ``rpm``/``tpm`` budgets and 429 pauses.
    ``provider_factory`` makes each model's provider instead of ``make_provider`` (a test's in-process fake);
    the cache, budgets and ledger stay in front of it.
    """

    cache_dir: Path | None
    batch_dir: Path
    progress: bool = False
    limits_file: Path | None = None  # the rpm/tpm budgets shared across processes (None: this process only)
    provider_factory: Callable[[ModelSpec], Provider] | None = None  # None: make_provider (the real SDKs)

    @classmethod
    def under(cls, home: Home, *, progress: bool = False) -> CallSettings:
        """The settings of a run writing under ``home``: its cache, its provider-batch folder and its budgets."""
        return cls(cache_dir=home.cache, batch_dir=home.provider_batches, progress=progress,
                   limits_file=home.cache / LIMITS_FILE)


class CallSession:
    """Cache, ledger, budgets and progress for one step's LLM calls; use as ``async with``."""

    def __init__(self, config: PipelineConfig, settings: CallSettings, *, logger: logging.Logger | None = None,
                 label: str = "llm calls"):
        self.config = config
        self.logger = logger or log
        self.label = label
        self.cache = ResponseCache(settings.cache_dir) if config.cache and settings.cache_dir else None
        self.ledger = UsageLedger(price_table(config.prices))
        self.batch_store = ProviderBatchStore(settings.batch_dir)
        self.limits = SharedLimits(settings.limits_file)
        self.bar = ProgressBar(label, enabled=settings.progress)
        self.provider_factory = settings.provider_factory
        self.started = time.perf_counter()
        self._budgets: dict[tuple[str, str | None, str], Budget] = {}
        self._clients: dict[ModelSpec, ModelClient] = {}

    def budget_for(self, spec: ModelSpec) -> Budget:
        endpoint = endpoint_of(spec)
        if endpoint not in self._budgets:
            same = [s for s in (*self.config.generators, *self.config.judges) if endpoint_of(s) == endpoint] or [spec]
            if spec not in same:
                same.append(spec)
            rpms = [s.rpm for s in same if s.rpm]
            tpms = [s.tpm for s in same if s.tpm]
            self._budgets[endpoint] = Budget(min(s.max_concurrency for s in same), min(rpms) if rpms else None,
                                             min(tpms) if tpms else None, name=spec.model, logger=self.logger,
                                             ledger=self.ledger, limits=self.limits,
                                             key="|".join(part or "" for part in endpoint))
        return self._budgets[endpoint]

    def client(self, spec: ModelSpec) -> ModelClient:
        if spec not in self._clients:
            provider = self.provider_factory(spec) if self.provider_factory is not None else None
            self._clients[spec] = ModelClient(self, spec, provider)
        return self._clients[spec]

    async def __aenter__(self) -> CallSession:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for client in self._clients.values():
            if not client.provider_made:
                continue
            try:
                await client.provider.aclose()
            except Exception as exc:  # pragma: no cover - closing must not hide the step's result
                self.logger.warning("closing %s: %s", client.spec.model, exc)
        self._clients.clear()
        self.limits.close()
        self.bar.close()
        if self.cache is not None:
            self.cache.close()
        self.logger.info("%s: %s in %.1f s", self.label, self.ledger.describe(), time.perf_counter() - self.started)
