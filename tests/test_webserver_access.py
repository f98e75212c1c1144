"""Who can spend: the webserver has no login, so deploy/ keeps it on 127.0.0.1 behind an authenticating proxy,
and gives people who only look a `dagster-webserver --read-only`. The read-only command of deploy/ is started
here: it refuses a launch, a backfill and a sensor start through GraphQL, and it reads a run's progress while
the run writes without ever opening the DuckDB file."""

from __future__ import annotations

import os
import re
import shlex
import signal
import time
from pathlib import Path

import dagster as dg
import pytest

from assets.partitions import PROMPT_BATCHES
from tests.cli_runs import cli_env, prompt_rows, start_run, write_config
from tests.dagster_dev import graphql, webserver
from tests.fakes import FakeLLMServer
from tests.helpers import BIN, ROOT, free_port, write_prompts

DEPLOY = ROOT / "deploy"
READ_ONLY_UNIT = DEPLOY / "systemd" / "pref-pipeline-webserver-readonly.service"
INSTALL_DIR = "/opt/pref-pipeline"


def exec_start(unit: Path) -> list[str]:
    [line] = [line for line in unit.read_text().splitlines() if line.startswith("ExecStart=")]
    return shlex.split(line.removeprefix("ExecStart="))


def option(args: list[str], *names: str) -> str | None:
    for i, arg in enumerate(args):
        if arg in names:
            return args[i + 1]
    return None


def test_deploy_keeps_every_webserver_on_localhost_behind_a_login():
    units = sorted((DEPLOY / "systemd").glob("*webserver*.service"))
    assert len(units) == 2
    for unit in units:
        args = exec_start(unit)
        assert Path(args[0]).name == "dagster-webserver"
        assert option(args, "-h", "--host") == "127.0.0.1", unit  # never 0.0.0.0: the UI has no login
    assert "--read-only" in exec_start(READ_ONLY_UNIT)
    proxy = (DEPLOY / "nginx" / "pref-pipeline.conf").read_text()
    servers = [block for block in proxy.split("server {")[1:] if "proxy_pass" in block]
    assert len(servers) == 2
    for block in servers:
        assert "auth_basic_user_file" in block and "listen 443 ssl" in block
        assert re.findall(r"proxy_pass http://([\d.]+):", block) == ["127.0.0.1"]
    assert "EnvironmentFile=/etc/pref-pipeline/secrets.env" not in READ_ONLY_UNIT.read_text()  # no key to spend


def session_open_files(session_id: int) -> set[str]:
    """Every file a process of the session has open (the webserver and the code server it starts)."""
    opened = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getsid(int(entry.name)) != session_id:
                continue
            for fd in (entry / "fd").iterdir():
                opened.add(os.readlink(fd))
        except (ProcessLookupError, FileNotFoundError, PermissionError):
            continue  # a process that ended meanwhile
    return opened


@pytest.fixture(scope="module")
def read_only_ui(tmp_path_factory):
    """deploy/'s read-only webserver command, on this checkout, one batch registered, against a fake server."""
    base_dir = tmp_path_factory.mktemp("read_only_ui")
    dagster_home, pref_home = base_dir / "dagster_home", base_dir / "pref_home"
    dagster_home.mkdir()
    with FakeLLMServer(latency_s=0.05) as server:
        write_prompts(base_dir / "prompts.jsonl", prompt_rows(20))
        config = write_config(base_dir / "pipeline.yaml", server.openai_base_url, ["prompts.jsonl"])
        with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
            instance.add_dynamic_partitions(PROMPT_BATCHES.name, ["prompts"])
        port = free_port()
        args = [a.replace(f"{INSTALL_DIR}/.venv/bin/", f"{BIN}/").replace(INSTALL_DIR, str(ROOT))
                for a in exec_start(READ_ONLY_UNIT)]
        args[args.index("-p") + 1] = str(port)
        env = cli_env(pref_home, DAGSTER_HOME=str(dagster_home), PREF_PIPELINE_CONFIG=str(config))
        with webserver(args, env, base_dir / "webserver.log", port, stop_signal=signal.SIGTERM) as (base, process):
            yield {"base": base, "process": process, "server": server, "config": config, "env": env,
                   "dagster_home": dagster_home, "pref_home": pref_home}


LOCATION = """{ workspaceOrError { ... on Workspace { locationEntries { name } } } }"""
JOB = """query Job($selector: PipelineSelector!) { pipelineOrError(params: $selector) { __typename } }"""
LAUNCH = """mutation Launch($params: ExecutionParams!) { launchRun(executionParams: $params) {
  __typename ... on UnauthorizedError { message } ... on LaunchRunSuccess { run { runId } } } }"""
BACKFILL = """mutation Backfill($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
  __typename ... on UnauthorizedError { message } ... on LaunchBackfillSuccess { backfillId } } }"""
START_SENSOR = """mutation Start($selector: SensorSelector!) { startSensor(sensorSelector: $selector) {
  __typename ... on UnauthorizedError { message } } }"""


@pytest.mark.slow
def test_the_read_only_webserver_refuses_to_launch_anything(read_only_ui):
    base = read_only_ui["base"]
    [location] = [e["name"] for e in graphql(base, LOCATION)["workspaceOrError"]["locationEntries"]]
    selector = {"repositoryLocationName": location, "repositoryName": "__repository__",
                "pipelineName": "preference_pipeline"}
    assert graphql(base, JOB, {"selector": selector})["pipelineOrError"]["__typename"] == "Pipeline"  # it exists

    launch = graphql(base, LAUNCH, {"params": {
        "selector": selector, "runConfigData": {},
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": "prompts"}]}}})["launchRun"]
    backfill = graphql(base, BACKFILL, {"params": {
        "partitionNames": ["prompts"], "assetSelection": [{"path": ["prompts"]}, {"path": ["candidates"]}]}})
    sensor = graphql(base, START_SENSOR, {"selector": {
        "repositoryLocationName": location, "repositoryName": "__repository__",
        "sensorName": "prompt_batches_sensor"}})["startSensor"]
    for result in (launch, backfill["launchPartitionBackfill"], sensor):
        assert result["__typename"] == "UnauthorizedError", result
    with dg.DagsterInstance.from_config(str(read_only_ui["dagster_home"])) as instance:
        assert instance.get_runs_count() == 0 and not instance.get_backfills()
    assert read_only_ui["server"].count("/chat/completions") == 0  # nothing was spent


RUNS = """{ runsOrError { ... on Runs { results { runId status } } } }"""
MATERIALIZED = """query M($key: AssetKeyInput!) { assetOrError(assetKey: $key) { ... on Asset {
  assetMaterializations(limit: 1) { partition metadataEntries { label } } } } }"""


@pytest.mark.slow
def test_the_webserver_reads_while_a_run_writes_and_never_opens_the_duckdb_file(read_only_ui):
    base, session = read_only_ui["base"], read_only_ui["process"].pid
    database = str(read_only_ui["pref_home"] / "tables")
    run = start_run(read_only_ui["config"], read_only_ui["env"])
    reads, seen_statuses, opened_database = 0, set(), False
    while run.poll() is None:
        runs = graphql(base, RUNS)["runsOrError"]["results"]
        seen_statuses |= {r["status"] for r in runs}
        graphql(base, MATERIALIZED, {"key": {"path": ["candidates"]}})
        reads += 1
        opened_database |= any(path.startswith(database) for path in session_open_files(session))
        time.sleep(0.3)
    _, err = run.communicate()
    assert run.returncode == 0, err[-3000:]
    assert not opened_database
    assert reads >= 5 and "STARTED" in seen_statuses  # it read the run while the run was writing
    statuses = [r["status"] for r in graphql(base, RUNS)["runsOrError"]["results"]]
    assert statuses == ["SUCCESS", "SUCCESS"]  # the batch's run and the roll-up, as the UI shows them
    pairs = graphql(base, MATERIALIZED, {"key": {"path": ["preference_pairs"]}})["assetOrError"]
    assert pairs["assetMaterializations"][0]["partition"] == "prompts"
