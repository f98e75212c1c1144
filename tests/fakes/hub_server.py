"""A local stand-in for the Hugging Face Hub's upload API, served over real HTTP on 127.0.0.1.

Enough of it for ``huggingface_hub.HfApi().create_repo`` and ``upload_folder`` (every file sent "regular",
inline in the commit): ``POST /api/repos/create``, ``POST /api/validate-yaml`` (the card's front matter:
YAML that parses to a mapping, with list-of-text tags and categories and well-formed ``configs``),
``POST /api/{type}s/{repo}/preupload/{revision}`` and ``POST /api/{type}s/{repo}/commit/{revision}`` (NDJSON). It keeps each repository's files and every request
with its headers, so a test can read what was uploaded and check where the token went.

    with FakeHubServer() as hub:
        HfApi(endpoint=hub.url).upload_folder(...)
        hub.files["org/name"]["README.md"]
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from typing import Any

import uvicorn
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


def card_errors(readme: str) -> list[str]:
    """What the Hub would refuse in a card's YAML front matter (the parts this project writes)."""
    if not readme.startswith("---\n") or "\n---\n" not in readme[4:]:
        return ["no YAML front matter between --- lines"]
    try:
        meta = yaml.safe_load(readme[4:readme.index("\n---\n", 4)])
    except yaml.YAMLError as exc:
        return [f"invalid YAML: {exc}"]
    if not isinstance(meta, dict):
        return ["the front matter is not a mapping"]
    errors = [f"{key} must be a list of strings" for key in ("task_categories", "size_categories", "tags")
              if key in meta and not (isinstance(meta[key], list) and all(isinstance(v, str) for v in meta[key]))]
    if "license" in meta and not isinstance(meta["license"], str):
        errors.append("license must be a string")
    for config in meta.get("configs") or []:
        files = config.get("data_files") if isinstance(config, dict) else None
        if not isinstance(config, dict) or not config.get("config_name") or not isinstance(files, list) or \
                not all(isinstance(f, dict) and f.get("split") and f.get("path") for f in files):
            errors.append(f"configs: malformed entry {config!r}")
    return errors


class FakeHubServer:
    def __init__(self) -> None:
        self.url = ""
        self.requests: list[dict[str, Any]] = []  # method, path, headers (lower-cased names)
        self.repos: dict[str, dict[str, Any]] = {}  # repo id -> what create_repo asked (type, visibility)
        self.files: dict[str, dict[str, bytes]] = {}  # repo id -> path -> content
        self.commits: list[dict[str, Any]] = []
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def _app(self) -> Starlette:
        return Starlette(routes=[
            Route("/api/repos/create", self._create, methods=["POST"]),
            Route("/api/validate-yaml", self._validate_yaml, methods=["POST"]),
            Route("/api/{kind}s/{owner}/{name}/preupload/{revision}", self._preupload, methods=["POST"]),
            Route("/api/{kind}s/{owner}/{name}/commit/{revision}", self._commit, methods=["POST"]),
        ])

    def _record(self, request: Request) -> None:
        self.requests.append({"method": request.method, "path": request.url.path,
                              "headers": {k.lower(): v for k, v in request.headers.items()}})

    async def _create(self, request: Request) -> JSONResponse:
        self._record(request)
        body = await request.json()
        repo = f"{body.get('organization') or 'user'}/{body['name']}"
        if repo in self.repos:
            return JSONResponse({"error": "You already created this dataset repo", "url": f"{self.url}/datasets/{repo}"},
                                status_code=409)
        self.repos[repo] = {"type": body.get("type"), "visibility": body.get("visibility"), "body": body}
        self.files.setdefault(repo, {})
        return JSONResponse({"url": f"{self.url}/datasets/{repo}", "name": repo, "id": repo})

    async def _validate_yaml(self, request: Request) -> JSONResponse:
        self._record(request)
        errors = card_errors((await request.json()).get("content", ""))
        return JSONResponse({"errors": [{"message": e} for e in errors], "warnings": []},
                            status_code=400 if errors else 200)

    async def _preupload(self, request: Request) -> JSONResponse:
        self._record(request)
        body = await request.json()
        return JSONResponse({"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                       for f in body["files"]]})

    async def _commit(self, request: Request) -> JSONResponse:
        self._record(request)
        repo = f"{request.path_params['owner']}/{request.path_params['name']}"
        lines = [json.loads(line) for line in (await request.body()).decode().splitlines() if line.strip()]
        header = next((line["value"] for line in lines if line["key"] == "header"), {})
        for line in lines:
            if line["key"] == "file":
                value = line["value"]
                self.files.setdefault(repo, {})[value["path"]] = base64.b64decode(value["content"])
        oid = f"{len(self.commits) + 1:040x}"
        self.commits.append({"repo": repo, "summary": header.get("summary"), "oid": oid})
        return JSONResponse({"commitUrl": f"{self.url}/datasets/{repo}/commit/{oid}", "commitOid": oid,
                             "success": True, "pullRequestUrl": None})

    def start(self, timeout_s: float = 10.0) -> FakeHubServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        self._server = uvicorn.Server(uvicorn.Config(self._app(), log_level="warning", lifespan="off"))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True,
                                        name=f"fake-hub-{port}")
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the fake Hub did not start")
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> FakeHubServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
