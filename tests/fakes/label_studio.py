"""A real Label Studio server for tests, from its own venv (``.venv-label-studio``, made by
``scripts/setup.sh --tests``): started on 127.0.0.1 with SQLite in a temporary data dir, a fixed user and legacy
token, and stopped afterwards. Its dependencies (Django 5.2, ...) would pin the project's: it never shares a venv.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.helpers import ROOT, free_port

LABEL_STUDIO_VENV = ROOT / ".venv-label-studio"
LABEL_STUDIO = LABEL_STUDIO_VENV / "bin" / "label-studio"
USER_EMAIL = "annotator@example.com"
USER_PASSWORD = "pref-pipeline-test-1"
USER_TOKEN = "0123456789abcdef0123456789abcdef01234567"


def available() -> bool:
    return LABEL_STUDIO.exists()


@dataclass(frozen=True)
class LabelStudioServer:
    url: str
    token: str
    email: str
    password: str
    log: Path

    def api(self, method: str, path: str, **kwargs) -> httpx.Response:
        """A call to its REST API as the test user (what an annotator's client would send)."""
        response = httpx.request(method, self.url + path, headers={"Authorization": f"Token {self.token}"},
                                 timeout=60, **kwargs)
        assert response.status_code < 400, f"{method} {path}: {response.status_code} {response.text[:2000]}"
        return response

    def annotate(self, task_id: int, choice: str, comment: str | None = None, *, cancelled: bool = False) -> dict:
        """Submit (or skip, ``cancelled``) an annotation of a pairwise task, as the web page does."""
        result = [{"from_name": "preference", "to_name": "conversation", "type": "choices",
                   "value": {"choices": [choice]}}] if choice else []
        if comment:
            result.append({"from_name": "comment", "to_name": "conversation", "type": "textarea",
                           "value": {"text": [comment]}})
        return self.api("POST", f"/api/tasks/{task_id}/annotations", json={"result": result,
                                                                             "was_cancelled": cancelled}).json()


@contextmanager
def label_studio(data_dir: Path, *, start_timeout_s: float = 240) -> Iterator[LabelStudioServer]:
    """Start Label Studio in its own session; yield it once ``/health`` says UP; stop it and its children."""
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "label-studio.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LABEL_STUDIO", "DJANGO", "VIRTUAL_ENV"))}
    env.update(LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK="true", PATH=f"{LABEL_STUDIO_VENV / 'bin'}:{env['PATH']}")
    args = [str(LABEL_STUDIO), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port),
            "--host", f"http://127.0.0.1:{port}", "--data-dir", str(data_dir), "--username", USER_EMAIL,
            "--password", USER_PASSWORD, "--user-token", USER_TOKEN, "--enable-legacy-api-token",
            "--log-level", "WARNING"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(args, cwd=data_dir, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + start_timeout_s
            while True:
                assert process.poll() is None, log_path.read_text(errors="replace")[-3000:]
                try:
                    if httpx.get(f"{url}/health", timeout=2).json().get("status") == "UP":
                        break
                except (httpx.HTTPError, ValueError):
                    pass
                assert time.monotonic() < deadline, f"Label Studio did not start in {start_timeout_s} s"
                time.sleep(1)
            yield LabelStudioServer(url, USER_TOKEN, USER_EMAIL, USER_PASSWORD, log_path)
        finally:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
