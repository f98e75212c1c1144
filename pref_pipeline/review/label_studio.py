"""Label Studio as the annotation tool: push comparisons as blinded pairwise tasks, pull the annotations back.

``push`` finds the project by its title on the server (``LABEL_STUDIO_URL``, key ``LABEL_STUDIO_API_KEY``) or
creates it with ``LABEL_CONFIG`` (the conversation, responses A and B, choices A / B / tie, an optional comment),
and imports one task per comparison not already on the server (matched by the ``comparison_id`` in the task's
data). Which candidate is A is never sent: the blinding key stays under the home, in
``reviews/label_studio/<server>-project-<id>.json``, keyed by comparison (written before the tasks are sent, so
a task on the server always has its key).

``pull`` reads every task's annotations and stores one ``human_labels`` row (source ``label_studio``) per
submitted annotation: the winner's candidate id through the key (NULL for tie), the annotator's email (or
``user-<id>``), the annotation's own time as ``labelled_at``, the task and annotation ids. A skipped annotation
(``was_cancelled``), one without a choice, and a deleted task or annotation (the server no longer lists it) are
not labels. Labels already stored unchanged are not stored again, so a second pull adds nothing. Everything is
read and checked before anything is stored: a server that is down or refuses the key, an annotation of a
comparison that is not in the key or not stored, stops the pull with nothing stored.

The REST API is called with httpx (``Api``; why not label-studio-sdk: see its docstring).
"""

from __future__ import annotations

import json
import os
import re
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from pref_pipeline import store
from pref_pipeline.atomic import write_text_atomically
from pref_pipeline.paths import Home
from pref_pipeline.review.labels import (LABEL_STUDIO_SOURCE, ReviewError, blind, label_row, labels_frame,
                                         new_export_id, number, winner_of)
from pref_pipeline.review.selection import reviewable

URL_ENV = "LABEL_STUDIO_URL"
KEY_ENV = "LABEL_STUDIO_API_KEY"
DEFAULT_PROJECT = "pref-pipeline review"
CHOICES = {"A": "a", "B": "b", "tie": "tie"}
# The pairwise template: the prompt as a dialogue (a plain prompt is one user turn), the two responses side by
# side, one choice and an optional comment. Task data: conversation, response_a, response_b (+ comparison_id and
# export_id, which say nothing about the order).
LABEL_CONFIG = """<View>
  <Header value="Conversation"/>
  <Paragraphs name="conversation" value="$conversation" layout="dialogue" nameKey="role" textKey="content"/>
  <View style="display: grid; grid-template-columns: 1fr 1fr; column-gap: 1em;">
    <View>
      <Header value="Response A"/>
      <Text name="response_a" value="$response_a"/>
    </View>
    <View>
      <Header value="Response B"/>
      <Text name="response_b" value="$response_b"/>
    </View>
  </View>
  <Header value="Which response is better?"/>
  <Choices name="preference" toName="conversation" choice="single-radio" required="true" showInline="true">
    <Choice value="A"/>
    <Choice value="B"/>
    <Choice value="tie"/>
  </Choices>
  <TextArea name="comment" toName="conversation" placeholder="Optional comment" maxSubmissions="1" editable="true"/>
</View>"""


class LabelStudioError(ReviewError):
    """The server cannot be used (down, key refused, no such project) or its annotations cannot be imported."""


@dataclass(frozen=True)
class Server:
    url: str
    api_key: str = field(repr=False)

    @classmethod
    def from_env(cls) -> Server:
        url, key = os.environ.get(URL_ENV), os.environ.get(KEY_ENV)
        if not url or not key:
            raise LabelStudioError(f"set {URL_ENV} (e.g. http://localhost:8080) and {KEY_ENV} (the user's access "
                                   "token) to use Label Studio")
        return cls(url.rstrip("/"), key)


class Api:
    """The few REST calls used, over httpx: ``Authorization: Token <key>`` for a legacy token (the server started
    with ``--enable-legacy-api-token``), or a personal access token (a JWT refresh token) exchanged for a
    ``Bearer`` access token. (label-studio-sdk 2.x wraps the same API but pins numpy < 2.3 and PyJWT < 2.14 through
    its dependencies, which would downgrade the project's.)"""

    def __init__(self, server: Server, timeout: float = 30.0):
        import httpx

        self.server = server
        self.http = httpx.Client(base_url=server.url, timeout=timeout)
        self.http.headers["Authorization"] = f"Token {server.api_key}"
        if server.api_key.count(".") == 2:  # a personal access token: a JWT to refresh
            access = self.request("POST", "/api/token/refresh", "exchange the personal access token",
                                  json={"refresh": server.api_key})
            self.http.headers["Authorization"] = f"Bearer {access['access']}"

    def request(self, method: str, path: str, what: str, **kwargs) -> Any:
        """One call; a server that is down or refuses the key becomes a LabelStudioError that says so."""
        import httpx

        url = self.server.url
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise LabelStudioError(f"Label Studio at {url} cannot be reached ({type(exc).__name__}: {exc}); is it "
                                   f"running? (could not {what}; nothing was stored)") from None
        if response.status_code in (401, 403):
            raise LabelStudioError(f"Label Studio at {url} refused the API key (HTTP {response.status_code}; "
                                   f"{KEY_ENV}: a legacy token needs the server started with "
                                   f"--enable-legacy-api-token; could not {what}; nothing was stored)")
        if response.status_code >= 400:
            raise LabelStudioError(f"Label Studio at {url}: could not {what}: HTTP {response.status_code} "
                                   f"{response.text[:300]}")
        try:
            return response.json() if response.content else None
        except ValueError:
            raise LabelStudioError(f"{url} did not answer as Label Studio's API does (could not {what}: "
                                   f"{response.text[:200]!r})") from None

    def pages(self, path: str, what: str, items: str = "results", **params) -> list[dict]:
        """Every item of a paginated list (``results`` + ``next``, or ``tasks`` + ``total``, or a bare list)."""
        out, page = [], 1
        while True:
            body = self.request("GET", path, what, params={**params, "page": page, "page_size": 100})
            if isinstance(body, list):
                return out + body
            batch = body.get(items) or []
            out += batch
            total = body.get("total", body.get("count"))
            if not batch or (total is not None and len(out) >= total) or (items == "results" and not body.get("next")):
                return out
            page += 1

    def close(self) -> None:
        self.http.close()


def connect(server: Server) -> Api:
    """An API client, checked with a first request (who am I): down or refused fails here, before any work."""
    api = Api(server)
    try:
        api.request("GET", "/api/current-user/whoami", "check the API key")
    except LabelStudioError:
        api.close()
        raise
    return api


def key_path(home: Home, server: Server, project_id: int) -> Path:
    """Where the blinding key of a project is kept: ``<home>/reviews/label_studio/<server>-project-<id>.json``."""
    host = re.sub(r"[^A-Za-z0-9]+", "_", server.url.split("://", 1)[-1]).strip("_")
    return home.root / "reviews" / "label_studio" / f"{host}-project-{project_id}.json"


def read_key(path: Path) -> dict:
    if not path.exists():
        return {"comparisons": {}}
    return json.loads(path.read_text(encoding="utf-8"))


def find_project(api: Api, title: str) -> dict | None:
    """The project titled ``title`` (the oldest if several), or None."""
    projects = api.pages("/api/projects", "list projects", title=title)
    matching = sorted((p for p in projects if p.get("title") == title), key=lambda p: p["id"])
    return matching[0] if matching else None


def tasks_of(api: Api, project_id: int) -> list[dict]:
    """Every task of the project with its annotations."""
    return api.pages("/api/tasks", "list the project's tasks", items="tasks", project=project_id, fields="all")


@dataclass(frozen=True)
class PushResult:
    project_id: int
    project_url: str
    created: bool
    sent: int
    already_sent: int
    key_path: Path
    export_id: str


def conversation(item: dict) -> list[dict]:
    """The prompt as dialogue turns: the stored ``messages``, or one user turn."""
    messages = item.get("messages")
    if isinstance(messages, str) and messages.strip():
        try:
            turns = json.loads(messages)
            if isinstance(turns, list) and turns:
                return [{"role": str(t.get("role", "")), "content": str(t.get("content", ""))} for t in turns]
        except (ValueError, AttributeError):
            pass
    return [{"role": "user", "content": str(item["prompt"])}]


def push(home: Home, server: Server, items: pd.DataFrame, project: str = DEFAULT_PROJECT,
         seed: int = 0) -> PushResult:
    """Send ``items`` (``selection.select_items``) to the project titled ``project`` (created when missing), each
    comparison once; the blinding key is kept under the home."""
    with closing(connect(server)) as api:
        found = find_project(api, project)
        created = found is None
        if created:
            found = api.request("POST", "/api/projects", "create the project", json={
                "title": project, "label_config": LABEL_CONFIG,
                "description": "Pairwise preferences from pref-pipeline: which response is better? (A, B or tie)"})
        project_id = int(found["id"])
        on_server = {str((t.get("data") or {}).get("comparison_id")) for t in tasks_of(api, project_id)}
        new = items[~items["comparison_id"].isin(on_server)].drop_duplicates("comparison_id").reset_index(drop=True)
        path = key_path(home, server, project_id)
        key = read_key(path)
        export_id = new_export_id()
        shown = blind(new, seed)
        records = shown.to_dict(orient="records")
        for item in records:  # a comparison sent before (its task since deleted) keeps its order
            entry = key["comparisons"].setdefault(item["comparison_id"], {
                "response_a_id": item["response_a_id"], "response_b_id": item["response_b_id"],
                "export_id": export_id, "selection": item.get("selection"),
                "inclusion_probability": number(item.get("inclusion_probability"))})
            if entry["response_a_id"] != item["response_a_id"]:
                item["response_a"], item["response_b"] = item["response_b"], item["response_a"]
        key.update(url=server.url, project_id=project_id, title=project)
        if records:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomically(path, json.dumps(key, indent=1, sort_keys=True))
            tasks = [{"data": {"conversation": conversation(item), "response_a": str(item["response_a"]),
                               "response_b": str(item["response_b"]), "comparison_id": item["comparison_id"],
                               "export_id": key["comparisons"][item["comparison_id"]]["export_id"]}}
                     for item in records]
            api.request("POST", f"/api/projects/{project_id}/import", "import the tasks", json=tasks)
    return PushResult(project_id, f"{server.url}/projects/{project_id}", created, len(records),
                      len(items) - len(records), path, export_id)


@dataclass(frozen=True)
class PullResult:
    project_id: int
    imported: int
    unchanged: int
    skipped: int
    by_label: dict[str, int]
    labels: pd.DataFrame


def annotation_labels(tasks: list, key: dict, items: pd.DataFrame, users: dict[int, str],
                      now: datetime | None = None) -> tuple[pd.DataFrame, int]:
    """``human_labels`` rows of the tasks' submitted annotations, and how many were skipped or empty. Raises
    LabelStudioError naming every task that cannot be imported."""
    by_id = {item["comparison_id"]: item for item in items.to_dict(orient="records")}
    rows, problems, skipped = [], [], 0
    for task in tasks:
        data = task.get("data") or {}
        comparison_id = str(data.get("comparison_id"))
        for annotation in task.get("annotations") or []:
            if annotation.get("was_cancelled") or annotation.get("is_deleted"):
                skipped += 1
                continue
            choice, comment = read_result(annotation.get("result") or [])
            if choice is None:
                skipped += 1
                continue
            where = f"task {task['id']} (annotation {annotation.get('id')})"
            entry = key["comparisons"].get(comparison_id)
            if entry is None:
                problems.append(f"{where}: comparison {comparison_id!r} is not in the local key")
                continue
            item = by_id.get(comparison_id)
            if item is None:
                problems.append(f"{where}: {comparison_id!r} is not a stored comparison (unknown id)")
                continue
            if choice not in CHOICES:
                problems.append(f"{where}: choice {choice!r} is not one of A, B, tie")
                continue
            who_id = annotation.get("completed_by")
            who_id = who_id.get("id") if isinstance(who_id, dict) else who_id
            who = users.get(who_id) or f"user-{who_id}"
            at = _time(annotation.get("updated_at") or annotation.get("created_at")) or now
            rows.append(label_row(LABEL_STUDIO_SOURCE, item,
                                  winner_of(CHOICES[choice], entry["response_a_id"], entry["response_b_id"]), who,
                                  at, notes=comment, export_id=entry.get("export_id"),
                                  task_id=f"{task['id']}/{annotation.get('id')}", selection=entry.get("selection"),
                                  inclusion_probability=entry.get("inclusion_probability")))
    if problems:
        raise LabelStudioError(f"{len(problems)} annotation(s) cannot be imported (nothing was stored):\n  "
                               + "\n  ".join(problems[:20]))
    return labels_frame(rows), skipped


def read_result(result: list) -> tuple[str | None, str | None]:
    """The annotation's choice (A, B or tie) and comment from its result regions."""
    choice = comment = None
    for region in result:
        value = region.get("value") or {}
        if region.get("from_name") == "preference" and value.get("choices"):
            choice = value["choices"][0]
        elif region.get("from_name") == "comment" and value.get("text"):
            comment = "\n".join(value["text"]).strip() or None
    return choice, comment


def pull(home: Home, server: Server, project: str = DEFAULT_PROJECT) -> PullResult:
    """Read the project's annotations into ``human_labels`` (all or nothing; unchanged labels not stored again)."""
    with closing(connect(server)) as api:
        found = find_project(api, project)
        if found is None:
            raise LabelStudioError(f"Label Studio at {server.url} has no project titled {project!r}; push first")
        project_id = int(found["id"])
        path = key_path(home, server, project_id)
        if not path.exists():
            raise LabelStudioError(f"no blinding key for project {project_id} at {path}: the tasks were pushed from "
                                   "another home (copy its reviews/label_studio/ folder here)")
        tasks = tasks_of(api, project_id)
        users = {u["id"]: u.get("email") or u.get("username") for u in api.pages("/api/users", "list users")}
    labels, skipped = annotation_labels(tasks, read_key(path), reviewable(home), users,
                                        now=datetime.now(timezone.utc))
    fresh = new_labels(home, labels)
    store.upsert_human_labels(home, fresh)
    counts = fresh["human_preference"].value_counts().to_dict() if len(fresh) else {}
    return PullResult(project_id, len(fresh), len(labels) - len(fresh), skipped,
                      {k: int(v) for k, v in counts.items()}, fresh)


def new_labels(home: Home, labels: pd.DataFrame) -> pd.DataFrame:
    """The labels that are not already stored as they are (same id, annotation, winner, comment and time)."""
    stored = store.read_table(home, store.HUMAN_LABELS_TABLE)
    if stored is None or stored.empty or labels.empty or "task_id" not in stored:
        return labels
    def keys(frame: pd.DataFrame) -> pd.Series:
        at = pd.to_datetime(frame["labelled_at"], utc=True).dt.strftime("%Y-%m-%dT%H:%M:%S.%f")
        parts = [frame[c].astype("string").fillna("") for c in ("label_id", "task_id", "human_winner_id", "notes")]
        return pd.concat([*parts, at.fillna("")], axis=1).agg("|".join, axis=1)

    return labels[~keys(labels).isin(set(keys(stored)))].reset_index(drop=True)


def _time(value: Any) -> pd.Timestamp | None:
    if value in (None, ""):
        return None
    return pd.Timestamp(value).tz_convert("UTC") if pd.Timestamp(value).tzinfo else pd.Timestamp(value, tz="UTC")
