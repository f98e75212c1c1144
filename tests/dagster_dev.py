"""`dagster dev` started by a test (or a benchmark) on the workspace, and its GraphQL API.

Started from Python in its own session with default signal handling, so SIGINT stops it and its
children (a `dagster dev` started with `&` from a non-interactive shell ignores SIGINT/SIGTERM).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.helpers import BIN, ROOT, free_port

DAGSTER = BIN / "dagster"


@contextmanager
def webserver(args: list[str], env: dict[str, str], log_path: Path, port: int, *, start_timeout_s: float = 180,
              stop_signal: int = signal.SIGINT) -> Iterator[tuple[str, subprocess.Popen]]:
    """Start a Dagster webserver command (``args``, listening on ``port``) from the repository root in its
    own session; yield its base URL and process once it answers; stop it and its children afterwards."""
    log = log_path.open("wb")
    process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout_s
        while True:
            assert process.poll() is None, log_path.read_text()[-3000:]
            try:
                if httpx.get(f"{base}/server_info", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"{args[0]} did not start in {start_timeout_s} s"
            time.sleep(1)
        yield base, process
    finally:
        os.killpg(process.pid, stop_signal)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


@contextmanager
def dagster_dev(env: dict[str, str], log_path: Path, *, start_timeout_s: float = 180) -> Iterator[str]:
    """Run `dagster dev -w workspace.yaml` from the repository root with ``env``; yield its base URL once
    the webserver answers."""
    port = free_port()
    args = [str(DAGSTER), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)]
    with webserver(args, {**env, "PYTHONPATH": str(ROOT)}, log_path, port, start_timeout_s=start_timeout_s) as (base, _):
        yield base


def graphql(base: str, query: str, variables: dict | None = None) -> dict:
    response = httpx.post(f"{base}/graphql", json={"query": query, "variables": variables or {}}, timeout=60)
    assert response.status_code == 200, f"{response.status_code}: {response.text[:3000]}"
    body = response.json()
    assert "errors" not in body, body["errors"]
    return body["data"]


LOCATION_QUERY = """{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus
  locationOrLoadError { __typename ... on PythonError { message className stack cause { message } } } } } } }"""


def code_location(base: str, timeout_s: float = 120) -> dict:
    """The workspace's one location entry, once it has finished loading."""
    deadline = time.monotonic() + timeout_s
    while True:
        [entry] = graphql(base, LOCATION_QUERY)["workspaceOrError"]["locationEntries"]
        if entry["loadStatus"] == "LOADED" or time.monotonic() > deadline:
            return entry
        time.sleep(1)


RELOAD_MUTATION = """mutation Reload($name: String!) { reloadRepositoryLocation(repositoryLocationName: $name) {
  __typename ... on WorkspaceLocationEntry { loadStatus } ... on PythonError { message } } }"""


def reload_location(base: str) -> dict:
    """What the UI's "Reload definitions" does; returns the reloaded entry."""
    name = code_location(base)["name"]
    result = graphql(base, RELOAD_MUTATION, {"name": name})["reloadRepositoryLocation"]
    assert result["__typename"] == "WorkspaceLocationEntry", result
    return code_location(base)


RUNS_QUERY = """query Runs($filter: RunsFilter) { runsOrError(filter: $filter) {
  ... on Runs { results { runId status jobName startTime endTime tags { key value } } } } }"""


def wait_for_runs(base: str, run_filter: dict, count: int, timeout_s: float = 240) -> list[dict]:
    """Block until ``count`` runs matching the filter have finished; return them."""
    deadline = time.monotonic() + timeout_s
    runs: list[dict] = []
    while time.monotonic() < deadline:
        runs = graphql(base, RUNS_QUERY, {"filter": run_filter})["runsOrError"]["results"]
        if len(runs) >= count and all(r["status"] in ("SUCCESS", "FAILURE", "CANCELED") for r in runs):
            return runs
        time.sleep(1)
    raise AssertionError(f"runs {run_filter} did not finish in {timeout_s} s: {runs}")


LAUNCH_MUTATION = """mutation Launch($params: ExecutionParams!) { launchRun(executionParams: $params) {
  __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
  ... on InvalidSubsetError { message } ... on RunConfigValidationInvalid { errors { message } } } }"""


def launch_partition_run(base: str, job: str, partition: str, *, repository: str = "__repository__") -> str:
    """Launch one run of ``job`` for one partition, as the UI's launchpad does; return its run id."""
    name = code_location(base)["name"]
    params = {"selector": {"repositoryLocationName": name, "repositoryName": repository, "jobName": job},
              "executionMetadata": {"tags": [{"key": "dagster/partition", "value": partition}]}}
    result = graphql(base, LAUNCH_MUTATION, {"params": params})["launchRun"]
    assert result["__typename"] == "LaunchRunSuccess", result
    return result["run"]["runId"]


def pipeline_job_from_env():
    """The code location's pipeline job for the configuration and home in the environment, built in whichever
    process runs it: what ``dg.reconstructable`` needs to run it with another executor (a function in an
    importable module)."""
    from pref_pipeline.definitions import build_definitions, config_from_env
    from pref_pipeline.paths import Home

    return build_definitions(config_from_env(), Home.from_env()).resolve_job_def("preference_pipeline")
