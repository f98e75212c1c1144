"""An in-process fake LLM server speaking OpenAI Chat Completions and Anthropic Messages over HTTP.

Tests start it on 127.0.0.1 (a free port) and point the real ``openai`` / ``anthropic`` SDK clients
at it, so requests, responses, retries and errors go through the SDKs' own code paths::

    with FakeLLMServer(latency_s=0.01) as server:
        client = openai.OpenAI(base_url=server.openai_base_url, api_key="test")
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Hi"}])
        assert server.count("/chat/completions") == 1

What it answers is decided by ``tests/fakes/answers.py`` (shared with the in-process fake provider):
a judge request by ``judge_fn`` (by default "the longer response wins"), a pointwise scoring request by
``score_fn``, anything else by ``generate_fn``; see that module for how a request is classified.
Faults: ``latency_s``, ``rpm_limit``, ``fail_plan`` (in order) and ``fault_rate`` / ``judge_prose_rate``
(at random, seeded), counted in ``faults``.

Log-probabilities: an OpenAI request with ``logprobs: true`` gets ``choices[0].logprobs.content``
(``answers.fake_logprobs``): certain tokens, except the verdict's label, whose alternatives come from the
judge function's ``_label_probs`` entry (default 0.9 for the chosen label).

Handlers are async and the server runs on its own event loop in a background thread, so many
concurrent slow requests are served at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import socket
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterable
from typing import Any, Literal

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.answers import (
    GenerateFn, JudgeFn, Protocol, ScoreFn, decide, default_generate, default_judge, default_score,
    fake_logprobs,
)

FailEntry = int | Literal["timeout", "garbage", "disconnect"] | None
FAULT_KINDS: tuple[FailEntry, ...] = (429, 500, 503, "timeout", "disconnect")  # what ``fault_rate`` draws from

RATE_WINDOW_S = 60.0
TIMEOUT_FAULT_S = 30.0

_OPENAI_ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
    404: "not_found_error", 429: "rate_limit_error",
}
_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
    404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 529: "overloaded_error",
}


def _validate_fail_plan(plan: Iterable[FailEntry] | None) -> deque[FailEntry]:
    """The plan as a queue, refusing entries the server would not know how to apply."""
    entries = deque(plan or ())
    for entry in entries:
        valid_status = isinstance(entry, int) and not isinstance(entry, bool) and 400 <= entry <= 599
        if not (entry is None or valid_status or entry in ("timeout", "garbage", "disconnect")):
            raise ValueError("fail_plan entry must be None, an HTTP error status, 'timeout', 'garbage' or "
                             f"'disconnect': {entry!r}")
    return entries


def _error_response(protocol: Protocol, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """An error in the shape the protocol's SDK parses into its ``APIStatusError`` subclasses."""
    if protocol == "openai":
        error_type = _OPENAI_ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
        code = "rate_limit_exceeded" if status == 429 else None
        body: dict[str, Any] = {"error": {"message": message, "type": error_type, "param": None, "code": code}}
    else:
        error_type = _ANTHROPIC_ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        body = {"type": "error", "error": {"type": error_type, "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


def _parse_multipart(raw: bytes, content_type: str) -> dict[str, tuple[str | None, bytes]]:
    """The fields of a ``multipart/form-data`` body: name -> (filename, bytes)."""
    from email import policy
    from email.parser import BytesParser

    message = BytesParser(policy=policy.HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw)
    if not message.is_multipart():
        return {}
    fields = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            fields[name] = (part.get_filename(), part.get_payload(decode=True) or b"")
    return fields


def _file_object(file_id: str, filename: str, size: int, purpose: str) -> dict[str, Any]:
    return {"id": file_id, "object": "file", "bytes": size, "created_at": int(time.time()), "filename": filename,
            "purpose": purpose or "batch", "status": "processed"}


class _HangUp(Response):
    """Starts a 200 answer, sends part of its body, then ends without the rest: uvicorn closes the
    connection, and the client sees the peer hang up mid-answer (httpx ``RemoteProtocolError``)."""

    def __init__(self) -> None:
        super().__init__(b'{"id": "cut-off", "choices": [', media_type="application/json",
                         headers={"content-length": "4096"})

    async def __call__(self, scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": self.body, "more_body": True})


class _QuietHangUps(logging.Filter):
    """uvicorn reports every deliberate hang-up as an error; they are the fault, not a failure of the fake."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "without completing response" not in record.getMessage()


logging.getLogger("uvicorn.error").addFilter(_QuietHangUps())


async def _wait_unless_disconnected(request: Request, seconds: float) -> None:
    """Sleep ``seconds``, returning early if the client hangs up (so abandoned requests free the server)."""

    async def disconnected() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait({watcher}, timeout=seconds)
    finally:
        watcher.cancel()


class FakeLLMServer:
    """A fake OpenAI + Anthropic endpoint on 127.0.0.1, run by uvicorn in a background thread.

    ``judge_fn``, ``generate_fn``, ``latency_s`` and ``rpm_limit`` are plain attributes read on every
    request, so tests may change them between runs; ``fail_plan`` is a property (the remaining entries).

    Fault injection, applied to ``POST /v1/chat/completions`` and ``POST /v1/messages``:

    * ``fail_plan``: consumed one entry per request, in order (then requests succeed). ``None``
      succeeds; an int is answered with that HTTP status and a protocol-shaped error body
      (429 with ``retry-after: 0``); ``"timeout"`` waits 30 s (or until the client hangs up) before
      answering normally; ``"garbage"`` answers 200 with a body that is not JSON; ``"disconnect"``
      starts a 200 answer and closes the connection halfway through its body.
    * ``fault_rate`` (0 to 1): after the plan is used up, each request fails with this probability,
      the fault drawn evenly from ``fault_kinds`` (default 429, 500, 503, timeout, disconnect) by a
      generator seeded with ``fault_seed``. ``judge_prose_rate``: this share of judge answers that
      would have been a verdict are prose that names no verdict (``JUDGE_PROSE``) instead.
      ``faults`` counts every fault applied, by kind (``"prose"`` for the judge's prose).
    * ``rpm_limit``: at most this many requests admitted per sliding 60 s window; the rest get 429
      with ``retry-after`` (whole seconds until the window frees) and are counted in ``rate_limited``.
    * ``latency_s``: simulated model time, slept before every answer produced by the model (and
      before ``"garbage"``); errors, injected or rate-limit, are answered at once.
    * ``rate_window_s`` (default 60): the sliding window of ``rpm_limit``, shorter for quick tests;
      ``retry_after_s`` (default 0): the ``retry-after`` header of injected 429s.

    Batch APIs (not subject to the faults above; ``batch_polls`` status reads report a batch as in
    progress, the next one completes it, answering every request as ``/chat/completions`` or
    ``/messages`` would, or with a per-request error when its body is invalid):

    * OpenAI: ``POST /v1/files`` (multipart, ``purpose=batch``), ``POST /v1/batches``,
      ``GET /v1/batches/{id}``, ``GET /v1/files/{id}/content`` (output and error files).
    * Anthropic: ``POST /v1/messages/batches``, ``GET /v1/messages/batches/{id}``,
      ``GET /v1/messages/batches/{id}/results`` (JSONL).

    ``batch_calls`` records those HTTP calls (method, path); ``batch_requests`` the requests inside
    submitted batches (``{"protocol", "custom_id", "body"}``); ``requests`` only live calls.
    """

    def __init__(self, *, judge_fn: JudgeFn | None = None, generate_fn: GenerateFn | None = None,
                 score_fn: ScoreFn | None = None, latency_s: float = 0.0, rpm_limit: int | None = None,
                 fail_plan: Iterable[FailEntry] | None = None, rate_window_s: float = RATE_WINDOW_S,
                 retry_after_s: float = 0, batch_polls: int = 1, fault_rate: float = 0.0,
                 fault_kinds: Iterable[FailEntry] = FAULT_KINDS, judge_prose_rate: float = 0.0,
                 fault_seed: int = 0):
        self.judge_fn: JudgeFn = judge_fn or default_judge
        self.generate_fn: GenerateFn = generate_fn or default_generate
        self.score_fn: ScoreFn = score_fn or default_score
        self.latency_s = latency_s
        self.rpm_limit = rpm_limit
        self.rate_window_s = rate_window_s
        self.retry_after_s = retry_after_s
        self.batch_polls = batch_polls
        self.fault_rate = fault_rate
        self.fault_kinds = list(_validate_fail_plan(fault_kinds))
        self.judge_prose_rate = judge_prose_rate
        self.faults: Counter[str] = Counter()  # faults applied, by kind ("429", "timeout", "prose", ...)
        self._random = random.Random(fault_seed)
        # {"path", "body": parsed JSON or None, "at": monotonic, "auth": the credential header sent}, in order
        self.requests: list[dict[str, Any]] = []
        self.batch_calls: list[tuple[str, str]] = []  # (method, path) of batch-API and file calls
        self.batch_requests: list[dict[str, Any]] = []  # {"protocol", "custom_id", "body"} inside batches
        self._files: dict[str, dict[str, Any]] = {}
        self._batches: dict[str, dict[str, Any]] = {}
        self.rate_limited = 0
        self.url = ""
        self.openai_base_url = ""
        self.anthropic_base_url = ""
        self._lock = threading.Lock()
        self._fail_plan = _validate_fail_plan(fail_plan)
        self._admitted: deque[float] = deque()  # monotonic times of requests admitted by the rate limiter
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # ----- configuration between runs -----

    @property
    def fail_plan(self) -> list[FailEntry]:
        """The entries not yet consumed."""
        with self._lock:
            return list(self._fail_plan)

    @fail_plan.setter
    def fail_plan(self, plan: Iterable[FailEntry] | None) -> None:
        entries = _validate_fail_plan(plan)
        with self._lock:
            self._fail_plan = entries

    def set_judge_fn(self, fn: JudgeFn | None) -> None:
        """Answer judge requests with ``fn`` (``None`` restores the default judge)."""
        self.judge_fn = fn or default_judge

    def set_generate_fn(self, fn: GenerateFn | None) -> None:
        """Answer generation requests with ``fn`` (``None`` restores the default generator)."""
        self.generate_fn = fn or default_generate

    def set_score_fn(self, fn: ScoreFn | None) -> None:
        """Answer pointwise scoring requests with ``fn`` (``None`` restores the default scorer)."""
        self.score_fn = fn or default_score

    def reset(self) -> None:
        """Forget recorded requests, the rate-limit window, the 429 count and the fault counts."""
        with self._lock:
            self.requests.clear()
            self.faults.clear()
            self._admitted.clear()
            self.rate_limited = 0
            self.batch_calls.clear()
            self.batch_requests.clear()

    def count(self, path_suffix: str) -> int:
        """How many recorded requests have a path ending with ``path_suffix``."""
        with self._lock:
            return sum(1 for r in self.requests if r["path"].endswith(path_suffix))

    # ----- lifecycle -----

    def start(self, timeout_s: float = 10.0) -> FakeLLMServer:
        """Bind a free port on 127.0.0.1, serve in a daemon thread and return once accepting requests."""
        if self._server is not None:
            raise RuntimeError("server already started")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app(), log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name=f"fake-llm-{port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the fake LLM server did not start")
            time.sleep(0.01)
        self.url = f"http://127.0.0.1:{port}"
        self.openai_base_url = f"{self.url}/v1"
        self.anthropic_base_url = self.url
        return self

    def stop(self) -> None:
        """Ask uvicorn to exit and wait for its thread (idempotent)."""
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join()
        self._server = self._thread = None

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ----- HTTP -----

    def _app(self) -> Starlette:
        return Starlette(routes=[
            Route("/v1/chat/completions", self._chat_completions, methods=["POST"]),
            Route("/v1/messages", self._messages, methods=["POST"]),
            Route("/v1/models", self._models, methods=["GET"]),
            Route("/v1/files", self._files_create, methods=["POST"]),
            Route("/v1/files/{file_id}/content", self._file_content, methods=["GET"]),
            Route("/v1/batches", self._openai_batch_create, methods=["POST"]),
            Route("/v1/batches/{batch_id}", self._openai_batch_get, methods=["GET"]),
            Route("/v1/messages/batches", self._anthropic_batch_create, methods=["POST"]),
            Route("/v1/messages/batches/{batch_id}", self._anthropic_batch_get, methods=["GET"]),
            Route("/v1/messages/batches/{batch_id}/results", self._anthropic_batch_results, methods=["GET"]),
        ])

    async def _chat_completions(self, request: Request) -> Response:
        return await self._handle(request, "openai")

    async def _messages(self, request: Request) -> Response:
        return await self._handle(request, "anthropic")

    async def _models(self, request: Request) -> Response:
        """The model list, in Anthropic's shape when the client sends ``anthropic-version``."""
        if "anthropic-version" in request.headers:
            model = {"type": "model", "id": "fake-model", "display_name": "Fake model",
                     "created_at": "2025-01-01T00:00:00Z"}
            return JSONResponse({"data": [model], "has_more": False, "first_id": "fake-model", "last_id": "fake-model"})
        model = {"id": "fake-model", "object": "model", "created": 0, "owned_by": "fake"}
        return JSONResponse({"object": "list", "data": [model]})

    async def _handle(self, request: Request, protocol: Protocol) -> Response:
        """Record the request, apply the faults, then answer it as a judge or a generator."""
        raw = await request.body()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        with self._lock:
            auth = request.headers.get("authorization") or request.headers.get("x-api-key")
            self.requests.append({"path": request.url.path, "body": body, "at": time.monotonic(), "auth": auth})
            fault = self._fail_plan.popleft() if self._fail_plan else None
            if fault is None and self.fault_rate and self._random.random() < self.fault_rate:
                fault = self._random.choice(self.fault_kinds)
            if fault is not None:
                self.faults[str(fault)] += 1

        if isinstance(fault, int):
            headers = {"retry-after": f"{self.retry_after_s:g}"} if fault == 429 else None
            return _error_response(protocol, fault, f"injected failure (HTTP {fault})", headers)
        if fault == "timeout":
            await _wait_unless_disconnected(request, TIMEOUT_FAULT_S)
        problem = self._invalid(body, protocol)
        if problem:
            return _error_response(protocol, 400, problem)
        retry_after = self._admit()
        if retry_after is not None:
            message = f"rate limit of {self.rpm_limit} requests per minute exceeded"
            return _error_response(protocol, 429, message, {"retry-after": str(retry_after)})
        if self.latency_s > 0:
            await asyncio.sleep(self.latency_s)
        if fault == "garbage":
            return Response("<html><body>502 Bad Gateway</body></html>", media_type="application/json")
        if fault == "disconnect":
            return _HangUp()
        return JSONResponse(self._answer(body, protocol, live=True))

    # ----- batch APIs -----

    def _record_batch_call(self, request: Request) -> None:
        with self._lock:
            self.batch_calls.append((request.method, request.url.path))

    def _complete_batch(self, batch: dict[str, Any]) -> None:
        """Answer every request of a batch (called under no lock; idempotent per batch)."""
        results = []
        for item in batch["items"]:
            body = item["body"]
            problem = self._invalid(body, batch["protocol"])
            results.append((item["custom_id"], problem, None if problem else self._answer(body, batch["protocol"])))
        batch["results"] = results
        batch["ended_at"] = time.time()

    def _poll(self, batch_id: str) -> dict[str, Any] | None:
        """Count one status read; the read after ``batch_polls`` in-progress ones completes the batch."""
        with self._lock:
            batch = self._batches.get(batch_id)
            if batch is None:
                return None
            batch["polls"] += 1
            finish = batch["results"] is None and batch["polls"] > self.batch_polls
        if finish:
            self._complete_batch(batch)
        return batch

    async def _files_create(self, request: Request) -> Response:
        self._record_batch_call(request)
        fields = _parse_multipart(await request.body(), request.headers.get("content-type", ""))
        if "file" not in fields:
            return _error_response("openai", 400, "multipart field 'file' is required")
        filename, data = fields["file"]
        purpose = (fields.get("purpose") or (None, b""))[1].decode()
        file_id = f"file-{uuid.uuid4().hex[:24]}"
        with self._lock:
            self._files[file_id] = {"data": data, "filename": filename or "upload", "purpose": purpose}
        return JSONResponse(_file_object(file_id, filename or "upload", len(data), purpose))

    async def _file_content(self, request: Request) -> Response:
        self._record_batch_call(request)
        stored = self._files.get(request.path_params["file_id"])
        if stored is None:
            return _error_response("openai", 404, "no such file")
        return Response(stored["data"], media_type="application/octet-stream")

    async def _openai_batch_create(self, request: Request) -> Response:
        self._record_batch_call(request)
        body = json.loads(await request.body())
        stored = self._files.get(body.get("input_file_id", ""))
        if stored is None:
            return _error_response("openai", 400, "input_file_id: no such file")
        if body.get("endpoint") != "/v1/chat/completions" or body.get("completion_window") != "24h":
            return _error_response("openai", 400, "the fake supports endpoint /v1/chat/completions, window 24h")
        items = []
        for line in stored["data"].decode("utf-8").splitlines():
            if line.strip():
                entry = json.loads(line)
                items.append({"custom_id": entry["custom_id"], "body": entry.get("body")})
        if len({i["custom_id"] for i in items}) != len(items):
            return _error_response("openai", 400, "custom_id values must be unique within a batch")
        batch_id = f"batch_{uuid.uuid4().hex[:24]}"
        with self._lock:
            self._batches[batch_id] = {"protocol": "openai", "items": items, "polls": 0, "results": None,
                                       "created_at": time.time(), "input_file_id": body["input_file_id"],
                                       "metadata": body.get("metadata")}
            self.batch_requests.extend({"protocol": "openai", **i} for i in items)
        return JSONResponse(self._openai_batch_object(batch_id))

    async def _openai_batch_get(self, request: Request) -> Response:
        self._record_batch_call(request)
        batch_id = request.path_params["batch_id"]
        if self._poll(batch_id) is None:
            return _error_response("openai", 404, "no such batch")
        return JSONResponse(self._openai_batch_object(batch_id))

    def _openai_batch_object(self, batch_id: str) -> dict[str, Any]:
        batch = self._batches[batch_id]
        total = len(batch["items"])
        obj: dict[str, Any] = {
            "id": batch_id, "object": "batch", "endpoint": "/v1/chat/completions", "errors": None,
            "input_file_id": batch["input_file_id"], "completion_window": "24h", "status": "in_progress",
            "created_at": int(batch["created_at"]), "metadata": batch["metadata"],
            "output_file_id": None, "error_file_id": None,
            "request_counts": {"total": total, "completed": 0, "failed": 0},
        }
        if batch["results"] is not None:
            if "output_file_id" not in batch:  # write the output and error files once
                ok, failed = [], []
                for custom_id, problem, answer in batch["results"]:
                    line = {"id": f"batch_req_{uuid.uuid4().hex[:16]}", "custom_id": custom_id}
                    if problem:
                        error = {"message": problem, "type": "invalid_request_error", "param": None, "code": None}
                        failed.append({**line, "response": {"status_code": 400, "request_id": uuid.uuid4().hex,
                                                            "body": {"error": error}}, "error": None})
                    else:
                        ok.append({**line, "response": {"status_code": 200, "request_id": uuid.uuid4().hex,
                                                        "body": answer}, "error": None})
                for name, lines in (("output_file_id", ok), ("error_file_id", failed)):
                    file_id = None
                    if lines:
                        file_id = f"file-{uuid.uuid4().hex[:24]}"
                        data = "".join(json.dumps(x) + "\n" for x in lines).encode()
                        self._files[file_id] = {"data": data, "filename": f"{batch_id}_{name}.jsonl",
                                                "purpose": "batch_output"}
                    batch[name] = file_id
                batch["counts"] = (len(ok), len(failed))
            obj.update(status="completed", completed_at=int(batch["ended_at"]), output_file_id=batch["output_file_id"],
                       error_file_id=batch["error_file_id"],
                       request_counts={"total": total, "completed": batch["counts"][0], "failed": batch["counts"][1]})
        return obj

    async def _anthropic_batch_create(self, request: Request) -> Response:
        self._record_batch_call(request)
        body = json.loads(await request.body())
        requests = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(requests, list) or not requests:
            return _error_response("anthropic", 400, "requests: a non-empty list is required")
        items = [{"custom_id": r.get("custom_id"), "body": r.get("params")} for r in requests]
        if len({i["custom_id"] for i in items}) != len(items):
            return _error_response("anthropic", 400, "custom_id values must be unique within a batch")
        batch_id = f"msgbatch_{uuid.uuid4().hex[:24]}"
        with self._lock:
            self._batches[batch_id] = {"protocol": "anthropic", "items": items, "polls": 0, "results": None,
                                       "created_at": time.time()}
            self.batch_requests.extend({"protocol": "anthropic", **i} for i in items)
        return JSONResponse(self._anthropic_batch_object(batch_id))

    async def _anthropic_batch_get(self, request: Request) -> Response:
        self._record_batch_call(request)
        batch_id = request.path_params["batch_id"]
        if self._poll(batch_id) is None:
            return _error_response("anthropic", 404, "no such batch")
        return JSONResponse(self._anthropic_batch_object(batch_id))

    def _anthropic_batch_object(self, batch_id: str) -> dict[str, Any]:
        batch = self._batches[batch_id]
        iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))  # noqa: E731
        ended = batch["results"] is not None
        errored = sum(1 for _, problem, _ in batch["results"] or [] if problem)
        total = len(batch["items"])
        return {
            "id": batch_id, "type": "message_batch", "processing_status": "ended" if ended else "in_progress",
            "request_counts": {"processing": 0 if ended else total, "succeeded": total - errored if ended else 0,
                               "errored": errored, "canceled": 0, "expired": 0},
            "created_at": iso(batch["created_at"]), "expires_at": iso(batch["created_at"] + 86400),
            "ended_at": iso(batch["ended_at"]) if ended else None, "archived_at": None, "cancel_initiated_at": None,
            "results_url": f"{self.url}/v1/messages/batches/{batch_id}/results" if ended else None,
        }

    async def _anthropic_batch_results(self, request: Request) -> Response:
        self._record_batch_call(request)
        batch = self._batches.get(request.path_params["batch_id"])
        if batch is None or batch["results"] is None:
            return _error_response("anthropic", 404, "no results for this batch (yet)")
        lines = []
        for custom_id, problem, answer in batch["results"]:
            if problem:
                result = {"type": "errored", "error": {"type": "error", "error": {
                    "type": "invalid_request_error", "message": problem}}}
            else:
                result = {"type": "succeeded", "message": answer}
            lines.append(json.dumps({"custom_id": custom_id, "result": result}) + "\n")
        return Response("".join(lines).encode(), media_type="application/binary")

    @staticmethod
    def _invalid(body: Any, protocol: Protocol) -> str | None:
        """Why the body is not a valid request for the protocol, or None."""
        if not isinstance(body, dict):
            return "the request body must be a JSON object"
        required = ("model", "messages") if protocol == "openai" else ("model", "max_tokens", "messages")
        missing = [key for key in required if key not in body]
        if missing:
            return f"missing required field(s): {', '.join(missing)}"
        if not isinstance(body["messages"], list):
            return "messages must be a list"
        if body.get("stream"):
            return "streaming is not supported by the fake server"
        return None

    def _admit(self) -> int | None:
        """Admit a request under ``rpm_limit``; if over it, count a 429 and return the retry-after seconds."""
        with self._lock:
            if self.rpm_limit is None:
                return None
            now = time.monotonic()
            while self._admitted and self._admitted[0] <= now - self.rate_window_s:
                self._admitted.popleft()
            if len(self._admitted) < self.rpm_limit:
                self._admitted.append(now)
                return None
            self.rate_limited += 1
            return max(1, math.ceil(self._admitted[0] + self.rate_window_s - now))

    def _prose_instead(self) -> bool:
        """Whether this judge answer is replaced by prose (``judge_prose_rate``), counted in ``faults``."""
        with self._lock:
            if not self.judge_prose_rate or self._random.random() >= self.judge_prose_rate:
                return False
            self.faults["prose"] += 1
            return True

    def _answer(self, body: dict[str, Any], protocol: Protocol, live: bool = False) -> dict[str, Any]:
        """The completion (OpenAI) or message (Anthropic) object for a valid request (``live``: not in a batch,
        so subject to ``judge_prose_rate``)."""
        out = decide(body, protocol, judge_fn=self.judge_fn, generate_fn=self.generate_fn, score_fn=self.score_fn,
                     prose_instead=self._prose_instead if live else None)
        if protocol == "openai":
            return {
                "id": f"chatcmpl-{uuid.uuid4().hex}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [{
                    "index": 0,
                    "message": {"role": "assistant", "content": out.text, "refusal": None},
                    "logprobs": fake_logprobs(out.text, out.label_probs, int(body.get("top_logprobs") or 1))
                    if body.get("logprobs") else None,
                    "finish_reason": "length" if out.truncated else "stop",
                }],
                "usage": {"prompt_tokens": out.input_tokens, "completion_tokens": out.output_tokens,
                          "total_tokens": out.input_tokens + out.output_tokens},
                "system_fingerprint": "fp_fake",
            }
        return {
            "id": f"msg_{uuid.uuid4().hex}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [{"type": "text", "text": out.text}],
            "stop_reason": "max_tokens" if out.truncated else "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": out.input_tokens, "output_tokens": out.output_tokens},
        }
