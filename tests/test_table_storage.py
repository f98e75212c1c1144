"""Tables as Parquet files per batch: parallel runs on one home, a batch run twice, an object-store
home against a real local S3-compatible server (moto's ThreadedMotoServer), and a home of the old layout."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from pref_pipeline import schema, store, table_files
from pref_pipeline.audit import audit_home
from pref_pipeline.cli import main
from pref_pipeline.paths import Home, OldLayoutError
from tests import cli_runs
from tests.cli_runs import cli_env, exported_pairs, prompt_rows, run_cli, start_run, tables
from tests.fakes import FakeLLMServer
from tests.helpers import write_prompts

PER_BATCH = 4
CALLS_PER_BATCH = PER_BATCH * 2 + PER_BATCH * 2  # two candidates per prompt, one comparison judged in both orders


def batch_configs(folder: Path, base_url: str, names: tuple[str, ...]) -> list[Path]:
    configs = []
    for name in names:
        write_prompts(folder / f"{name}.jsonl", prompt_rows(PER_BATCH, tag=name))
        configs.append(cli_runs.write_config(folder / f"{name}.yaml", base_url, [f"{name}.jsonl"]))
    return configs


def test_an_empty_table_is_a_file_with_its_declared_columns(tmp_path):
    home = Home.at(tmp_path / "home")
    path = table_files.write_part(home, "comparisons", "a", schema.empty("comparisons"))
    assert path.exists() and not list(path.parent.glob(".*tmp*"))  # written whole, nothing left beside it
    read = table_files.read_table(home, "comparisons")
    assert len(read) == 0 and list(read.columns) == schema.names("comparisons")
    with table_files.connect(home) as con:
        kinds = dict(con.execute("SELECT column_name, data_type FROM information_schema.columns "
                                 "WHERE table_name = 'comparisons'").fetchall())
    assert kinds["confidence"] == "DOUBLE" and kinds["status"] == "VARCHAR"


def test_a_column_mixing_kinds_in_an_undeclared_table_is_stored_as_text(tmp_path):
    home = Home.at(tmp_path / "home")
    table_files.write_part(home, "rejected_prompts", "a", pd.DataFrame({"raw": [1, "x", None], "line": [1, 2, 3]}))
    assert table_files.read_table(home, "rejected_prompts")["raw"].tolist() == ["1", "x", None]


def test_appended_tables_are_deduplicated_by_their_key_when_read(tmp_path):
    home = Home.at(tmp_path / "home")
    rows = pd.DataFrame({"quarantine_id": ["q1", "q2"], "stage": "export", "reason": ["old", "kept"],
                         "quarantined_at": pd.Timestamp("2026-01-01", tz="UTC"), "batch_id": "a"})
    assert store.append_quarantine(home, rows) == 2
    newer = rows.iloc[:1].assign(reason="new", quarantined_at=pd.Timestamp("2026-01-02", tz="UTC"))
    store.append_quarantine(home, newer)
    stored = store.read_table(home, "quarantine").set_index("quarantine_id")["reason"].to_dict()
    assert stored == {"q1": "new", "q2": "kept"}  # the latest row of an id wins
    assert len(list((home.tables / "quarantine" / "batch=a").glob("append-*.parquet"))) == 2  # one file per append


def test_two_processes_write_different_batches_of_one_home_at_once(home, tmp_path):
    """Two `pref-pipeline run` of different batches started together: both succeed without waiting on a lock,
    each batch's tables are its own files, and the roll-ups (export, audit) hold both batches."""
    with FakeLLMServer(latency_s=0.05) as server:
        configs = batch_configs(tmp_path, server.openai_base_url, ("a", "b"))
        env = cli_env(home)
        runs = [start_run(config, env) for config in configs]
        outputs = [run.communicate(timeout=600) for run in runs]
        paid = server.count("/chat/completions")
    assert [run.returncode for run in runs] == [0, 0], [err[-3000:] for _, err in outputs]
    assert paid == 2 * CALLS_PER_BATCH
    for table in ("prompts", "candidates", "judgments", "comparisons", "preference_pairs", "quarantine"):
        assert sorted(p.name for p in (home / "tables" / table).iterdir()) == ["batch=a", "batch=b"], table
    data = tables(home)
    assert data["prompts"]["batch_id"].value_counts().to_dict() == {"a": PER_BATCH, "b": PER_BATCH}
    assert data["judgment_history"]["batch_id"].value_counts().to_dict() == {"a": 2 * PER_BATCH, "b": 2 * PER_BATCH}
    stored = data["preference_pairs"]
    assert stored["pair_id"].is_unique and set(stored["batch_id"]) == {"a", "b"}
    assert sorted(p["pair_id"] for p in exported_pairs(home)) == sorted(stored["pair_id"])
    audit = json.loads((home / "reports" / "audit.json").read_text())
    assert audit["pairs"]["kept"] == len(stored)  # the later roll-up read both batches
    assert audit_home(Home.at(home))["pairs"]["kept"] == len(stored)


def test_the_same_batch_run_twice_pays_once_and_stores_it_once(home, tmp_path):
    with FakeLLMServer() as server:
        [config] = batch_configs(tmp_path, server.openai_base_url, ("a",))
        env = cli_env(home)
        first = run_cli(config, env)
        assert first.returncode == 0, first.stderr[-3000:]
        paid = server.count("/chat/completions")
        before = tables(home)
        second = run_cli(config, env)
        assert second.returncode == 0, second.stderr[-3000:]
        assert server.count("/chat/completions") == paid == CALLS_PER_BATCH  # every answer from the cache
    after = tables(home)
    assert {name: len(frame) for name, frame in after.items()} == {name: len(frame) for name, frame in before.items()}
    assert after["judgment_history"].groupby(["judgment_id", "judge_fingerprint"]).size().max() == 1
    assert len(list((home / "tables" / "prompts" / "batch=a").glob("*.parquet"))) == 1  # replaced, not added


@pytest.fixture
def s3_server():
    """moto's S3-compatible HTTP server on 127.0.0.1 with an empty bucket; the AWS variables point at it."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": f"http://{host}:{port}"}
    client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], aws_access_key_id="testing",
                          aws_secret_access_key="testing", region_name="us-east-1")
    client.create_bucket(Bucket="prefs")
    try:
        yield env, client
    finally:
        server.stop()


def test_an_object_store_home_runs_end_to_end(home, tmp_path, s3_server, monkeypatch):
    """PREF_PIPELINE_HOME=s3://prefs/team: the tables go to the bucket (read back through fsspec registered on
    DuckDB), the cache, exports and reports to PREF_PIPELINE_LOCAL_HOME."""
    aws, client = s3_server
    local = tmp_path / "local"
    with FakeLLMServer() as server:
        [config] = batch_configs(tmp_path, server.openai_base_url, ("a",))
        env = {**cli_env(home), **aws, "PREF_PIPELINE_HOME": "s3://prefs/team", "PREF_PIPELINE_LOCAL_HOME": str(local)}
        done = run_cli(config, env)
    assert done.returncode == 0, done.stderr[-3000:]
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="prefs", Prefix="team/")["Contents"]]
    assert "team/tables/preference_pairs/batch=a/part.parquet" in keys
    assert any(k.startswith("team/tables/judgment_history/batch=a/append-") for k in keys)
    assert all(k.startswith("team/tables/") for k in keys)  # nothing else goes to the bucket
    assert not home.exists()  # the local default home was not used
    audit = json.loads((local / "reports" / "audit.json").read_text())
    pairs = exported_pairs(local)
    assert audit["pairs"]["kept"] == len(pairs) > 0
    assert (local / "cache").is_dir()

    for name, value in aws.items():
        monkeypatch.setenv(name, value)
    remote = Home.at("s3://prefs/team", local=local)
    stored = store.read_table(remote, "preference_pairs")
    assert sorted(stored["pair_id"]) == sorted(p["pair_id"] for p in pairs)
    assert audit_home(remote)["pairs"]["kept"] == audit["pairs"]["kept"]


def test_a_home_of_the_old_single_file_layout_is_refused_with_a_clear_error(home, tmp_path, capsys):
    home.mkdir(parents=True, exist_ok=True)
    duckdb.connect(str(home / "pref_pipeline.duckdb")).close()
    with pytest.raises(OldLayoutError, match="old single-file layout"):
        table_files.connect(Home.at(home))
    with pytest.raises(OldLayoutError):
        table_files.write_part(Home.at(home), "prompts", "a", schema.empty("prompts"))
    config = cli_runs.write_config(tmp_path / "a.yaml", "http://127.0.0.1:9/v1", ["a.jsonl"])
    write_prompts(tmp_path / "a.jsonl", prompt_rows(2, tag="a"))
    assert main(["run", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "old single-file layout" in err and "PREF_PIPELINE_HOME" in err and "Traceback" not in err
    assert not (home / "tables").exists()
