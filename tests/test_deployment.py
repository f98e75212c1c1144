"""The production instance config (deploy/dagster.yaml) against a real PostgreSQL server the test starts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import dagster as dg
import psycopg2
import pytest

from pref_pipeline.runs import run_batches
from pref_pipeline.paths import Home
from tests.fakes import FakeLLMServer
from tests.helpers import ROOT, free_port, pipeline_config, two_generators

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _as_postgres_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the 'postgres' system user then."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@pytest.fixture(scope="module")
def postgres():
    binary = PG_BIN / "initdb"
    assert binary.exists() or shutil.which("initdb"), "PostgreSQL 15 is needed: scripts/setup.sh installs it"
    bin_dir = PG_BIN if binary.exists() else Path(shutil.which("initdb")).parent
    # Not under pytest's tmp folder: that one is private to root, and the server runs as 'postgres'.
    base = Path(tempfile.mkdtemp(prefix="pref-pipeline-pg-"))
    data, sockets = base / "data", base / "sockets"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        shutil.chown(sockets, "postgres")
    port = free_port()
    subprocess.run(_as_postgres_user([str(bin_dir / "initdb"), "-D", str(data), "-U", "dagster", "--auth=trust",
                                      "-E", "UTF8"]), check=True, capture_output=True)
    subprocess.run(_as_postgres_user([
        str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-l", str(base / "server.log"),
        "-o", f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1", "start",
    ]), check=True, capture_output=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                con = psycopg2.connect(host="127.0.0.1", port=port, user="dagster", dbname="postgres")
                break
            except psycopg2.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        con.autocommit = True
        con.cursor().execute("CREATE DATABASE dagster")
        con.close()
        yield {"DAGSTER_PG_HOST": "127.0.0.1", "DAGSTER_PG_PORT": str(port), "DAGSTER_PG_DB": "dagster",
               "DAGSTER_PG_USERNAME": "dagster", "DAGSTER_PG_PASSWORD": ""}
    finally:
        subprocess.run(_as_postgres_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"]),
                       capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def test_runs_are_stored_in_postgres_with_the_queued_coordinator(postgres, home, prompts_file, tmp_path, monkeypatch):
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    shutil.copy(ROOT / "deploy" / "dagster.yaml", dagster_home / "dagster.yaml")
    for key, value in postgres.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))

    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"

    with FakeLLMServer() as server:
        config = pipeline_config(prompts_file, server.openai_base_url, generators=two_generators((0.2, 0.9)),
                                 judges=[{"model": "openai:judge"}])
        run = run_batches(config, Home.from_env())  # honours DAGSTER_HOME: the Postgres instance
    assert [r.success for r in run.batches.values()] == [True] and run.rollup.success

    with psycopg2.connect(host="127.0.0.1", port=int(postgres["DAGSTER_PG_PORT"]), user="dagster",
                          dbname="dagster") as con, con.cursor() as cur:
        cur.execute("SELECT status FROM runs")
        assert [row[0] for row in cur.fetchall()] == ["SUCCESS", "SUCCESS"]  # the batch, then the roll-up
        cur.execute("SELECT partition FROM dynamic_partitions WHERE partitions_def_name = 'prompt_batches'")
        assert [row[0] for row in cur.fetchall()] == ["prompts"]
        cur.execute("SELECT asset_key FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'")
        materialized = sorted(json.loads(row[0])[-1] for row in cur.fetchall())
    assert materialized == sorted(["prompts", "candidates", "judgments", "judgment_history", "preference_pairs",
                                   "comparisons", "quarantine", "preference_pairs_export", "batch_audit",
                                   "batch_published", "rejected_prompts",
                                   "preference_dataset", "audit_report"])
