"""Keys come from the environment and are written nowhere: a run through the real CLI with recognisable fake
keys (OpenAI and Anthropic, against the fake server, with some failing calls so error paths write too), then
every DuckDB table, export, report, cache entry, log line, Dagster event and file under the homes is searched."""

from __future__ import annotations

import secrets

import dagster as dg
import diskcache
import pytest
from dagster._serdes import serialize_value

from tests.cli_runs import SCHEMA, cli_env, prompt_rows, record_figures, run_cli
from pref_pipeline.paths import Home
from pref_pipeline.table_files import connect as connect_tables
from tests.fakes import FakeLLMServer
from tests.helpers import two_generators, write_config_file, write_prompts

pytestmark = pytest.mark.slow


def test_the_keys_appear_in_no_table_export_report_cache_entry_log_line_event_or_file(tmp_path):
    openai_key = f"sk-test-{secrets.token_hex(20)}"
    anthropic_key = f"sk-ant-test-{secrets.token_hex(20)}"
    # What is searched for: each whole key and its last 12 characters (a key shown masked keeps its tail).
    needles = [openai_key, anthropic_key, openai_key[-12:], anthropic_key[-12:]]
    home, dagster_home = tmp_path / "home", tmp_path / "dagster_home"
    with FakeLLMServer(fault_rate=0.1, fault_kinds=[500, "disconnect"], fault_seed=3) as server:
        write_prompts(tmp_path / "prompts.jsonl", prompt_rows(8))
        config = write_config_file(tmp_path / "pipeline.yaml", ["prompts.jsonl"],
                                   generators=two_generators((0.2, 0.9), base_url=server.openai_base_url),
                                   judges=[{"model": "anthropic:judge", "base_url": server.anthropic_base_url}])
        env = cli_env(home, DAGSTER_HOME=str(dagster_home), OPENAI_API_KEY=openai_key,
                      ANTHROPIC_API_KEY=anthropic_key)
        result = run_cli(config, env)
        sent = {r["auth"] for r in server.requests}
        faults = sum(server.faults.values())
    assert result.returncode == 0, result.stderr[-3000:]
    assert all(any(key in (auth or "") for auth in sent) for key in (openai_key, anthropic_key))  # both were sent...
    assert faults > 0  # ...also on calls that failed and were retried

    def leaks(text: str) -> list[str]:
        return [needle for needle in needles if needle in text]

    found: dict[str, list[str]] = {}
    # Log lines: everything the CLI printed.
    for stream, text in (("stdout", result.stdout), ("stderr", result.stderr)):
        if leaks(text):
            found[stream] = leaks(text)

    # Every file under both homes and the test folder (DuckDB, cache, exports, reports, Dagster's storage).
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    for path in files:
        data = path.read_bytes()
        hits = [n for n in needles if n.encode() in data or n.encode("utf-16-le") in data]
        if hits:
            found[str(path)] = hits

    # Every value of every DuckDB table, as text (the file itself may hold strings compressed).
    table_count = 0
    with connect_tables(Home.at(home)) as con:
        columns = con.execute("SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = ?",
                              [SCHEMA]).fetchall()
        table_count = len({t for t, _ in columns})
        for table, column in columns:
            for needle in needles:
                n = con.execute(f'SELECT count(*) FROM {SCHEMA}.{table} WHERE CAST("{column}" AS VARCHAR) '
                                "LIKE '%' || ? || '%'", [needle]).fetchone()[0]
                if n:
                    found.setdefault(f"duckdb {table}.{column}", []).append(needle)

    # Every response cache entry, key and value.
    with diskcache.Cache(str(home / "cache")) as cache:
        entries = 0
        for key in cache.iterkeys():
            entries += 1
            if leaks(repr(key) + repr(cache.get(key))):
                found[f"cache entry {key}"] = leaks(repr(key) + repr(cache.get(key)))

    # Every Dagster event of every run, and the runs themselves (config, tags), from the persistent instance.
    events = 0
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        runs = instance.get_runs()
        for run in runs:
            if leaks(serialize_value(run)):
                found[f"run {run.run_id}"] = leaks(serialize_value(run))
            for event in instance.all_logs(run.run_id):
                events += 1
                if leaks(serialize_value(event)):
                    found.setdefault(f"event of run {run.run_id}", []).extend(leaks(serialize_value(event)))
    assert len(runs) == 2 and events > 50 and entries > 0 and table_count >= 5
    assert not found, found
    record_figures("secrets", {"files_searched": len(files), "duckdb_tables_searched": table_count,
                               "cache_entries_searched": entries, "dagster_runs": len(runs),
                               "dagster_events_searched": events, "log_lines_searched":
                               len((result.stdout + result.stderr).splitlines()), "places_with_a_key": 0})
