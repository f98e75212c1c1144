"""What the UI says after a judge change and after a bad configuration, read the way the UI reads it: the
GraphQL API of a real `dagster dev` started by the test (its daemon runs the sensors). Also what Reload
changes: runs read the YAML when they start, the UI shows what it loaded."""

from __future__ import annotations

import os
import time

import dagster as dg
import pytest

from assets.partitions import PROMPT_BATCHES
from pref_pipeline.config import load_config
from pref_pipeline.judging import judge_code_version
from tests.dagster_dev import code_location, dagster_dev, graphql, launch_partition_run, reload_location, wait_for_runs
from tests.fakes import FakeLLMServer
from tests.helpers import SAMPLE_PROMPTS, write_prompts, write_ui_config

pytestmark = pytest.mark.slow

JUDGED = ["judgments", "judgment_history", "comparisons", "preference_pairs", "quarantine", "batch_audit",
          "preference_pairs_export", "preference_dataset", "audit_report"]
NOT_JUDGED = ["prompts", "candidates"]

CHECKS_QUERY = """query Checks($keys: [AssetKeyInput!]) { assetNodes(assetKeys: $keys) {
  assetKey { path } isPartitioned staleStatus
  assetChecksOrError { ... on AssetChecks { checks { name
    executionForLatestMaterialization { status evaluation { severity description } } } } } } }"""

JUDGMENTS_QUERY = """{ assetNodes(assetKeys: [{path: ["judgments"]}]) { opVersion
  assetMaterializations(limit: 1) { tags { key value } metadataEntries { label ... on JsonMetadataEntry { jsonString } } } } }"""

PARTITION_STALENESS = """query Stale($key: AssetKeyInput!, $partitions: [String!]!) { assetNodeOrError(assetKey: $key) {
  ... on AssetNode { staleStatusByPartition(partitions: $partitions)
    staleCausesByPartition(partitions: $partitions) { reason category } } } }"""


def judge_checks(base: str) -> dict[str, dict | None]:
    """Per asset: the latest judge_is_current execution the UI shows for it (None: no status shown)."""
    nodes = graphql(base, CHECKS_QUERY, {"keys": [{"path": [a]} for a in JUDGED + NOT_JUDGED]})["assetNodes"]
    shown: dict[str, dict | None] = {}
    for node in nodes:
        for check in node["assetChecksOrError"].get("checks", []):
            if check["name"] == "judge_is_current":
                shown[node["assetKey"]["path"][0]] = check["executionForLatestMaterialization"]
    return shown


def wait_for_checks(base: str, predicate, timeout_s: float = 150) -> dict[str, dict | None]:
    deadline = time.monotonic() + timeout_s
    while True:
        shown = judge_checks(base)
        if predicate(shown) or time.monotonic() > deadline:
            return shown
        time.sleep(3)


def test_a_judge_change_shows_as_stale_and_a_bad_configuration_as_a_short_error(tmp_path):
    dagster_home, pref_home = tmp_path / "dagster_home", tmp_path / "pref_home"
    dagster_home.mkdir()
    prompts = write_prompts(tmp_path / "prompts.jsonl", SAMPLE_PROMPTS[:2])
    config = tmp_path / "pipeline.yaml"
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        instance.add_dynamic_partitions(PROMPT_BATCHES.name, ["prompts"])
    with FakeLLMServer() as server:
        write_ui_config(config, prompts, server.openai_base_url, "judge")
        env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "PREF_PIPELINE_HOME": str(pref_home),
               "PREF_PIPELINE_CONFIG": str(config)}
        with dagster_dev(env, tmp_path / "dagster-dev.log") as base:
            assert code_location(base)["locationOrLoadError"]["__typename"] == "RepositoryLocation"
            launch_partition_run(base, "preference_pipeline", "prompts")
            [run] = wait_for_runs(base, {"pipelineName": "preference_pipeline"}, 1)
            assert run["status"] == "SUCCESS"
            shown = judge_checks(base)
            assert sorted(shown) == sorted(JUDGED)  # prompts and candidates do not depend on the judge
            assert all(e and e["status"] == "SUCCEEDED" for e in shown.values()), shown

            # The judge changes in the file: the sensor marks judgments and everything below it, no run, no reload.
            fingerprints = [judge_code_version(load_config(config))]
            write_ui_config(config, prompts, server.openai_base_url, "judge-2")
            shown = wait_for_checks(base, lambda s: all(e and e["status"] == "FAILED" for e in s.values()))
            for asset, execution in shown.items():
                assert execution and execution["status"] == "FAILED", (asset, execution)
                assert execution["evaluation"]["severity"] == "WARN"
                assert "stale: 1 of 1 batch(es)" in execution["evaluation"]["description"]
                assert "prompts (judged by " in execution["evaluation"]["description"]
                assert "(openai:judge-2)" in execution["evaluation"]["description"]

            # A run launched without a Reload reads the YAML as it is now: it judges with the new judge, while the
            # UI still shows the code version (judge fingerprint) it loaded.
            old_fp, new_fp = fingerprints[0], judge_code_version(load_config(config))
            launch_partition_run(base, "rejudge", "prompts")
            [rejudged] = wait_for_runs(base, {"pipelineName": "rejudge"}, 1)
            assert rejudged["status"] == "SUCCESS"
            judgments = graphql(base, JUDGMENTS_QUERY)["assetNodes"][0]
            latest = judgments["assetMaterializations"][0]
            assert {t["key"]: t["value"] for t in latest["tags"]}["dagster/code_version"] == new_fp
            assert {e["label"]: e.get("jsonString") for e in latest["metadataEntries"]}["judges"] == '["openai:judge-2"]'
            assert judgments["opVersion"] == old_fp  # what the UI displays until Reload
            shown = judge_checks(base)
            assert all(e and e["status"] == "SUCCEEDED" for e in shown.values()), shown
            reload_location(base)
            assert graphql(base, JUDGMENTS_QUERY)["assetNodes"][0]["opVersion"] == new_fp

            # Switched back (A -> B -> A): marked again by the sensor; after Reload, Dagster's own marker shows on
            # the judgments partition (new code version), but not on the asset as a whole (per partition only).
            write_ui_config(config, prompts, server.openai_base_url, "judge")
            shown = wait_for_checks(base, lambda s: all(e and e["status"] == "FAILED" for e in s.values()))
            assert all(e and e["status"] == "FAILED" for e in shown.values()), shown
            assert f"prompts (judged by {new_fp})" in shown["audit_report"]["evaluation"]["description"]
            reload_location(base)
            node = graphql(base, PARTITION_STALENESS, {"key": {"path": ["judgments"]},
                                                       "partitions": ["prompts"]})["assetNodeOrError"]
            assert node["staleStatusByPartition"] == ["STALE"]
            assert node["staleCausesByPartition"][0][0]["category"] == "CODE"
            levels = {n["assetKey"]["path"][0]: n["staleStatus"] for n in graphql(
                base, CHECKS_QUERY, {"keys": [{"path": ["judgments"]}, {"path": ["preference_pairs"]}]})["assetNodes"]}
            assert levels == {"judgments": "FRESH", "preference_pairs": "FRESH"}

            # A configuration error is the code location's error: the message, no stack frames.
            config.write_text("generators:\n  - model: openai:gen\n    temprature: 0.3\n")
            graphql(base, """mutation R($n: String!) { reloadRepositoryLocation(repositoryLocationName: $n) {
                __typename } }""", {"n": code_location(base)["name"]})
            error = code_location(base)["locationOrLoadError"]
            assert error["__typename"] == "PythonError"
            assert "generators[0].temprature: unknown key; did you mean `temperature`?" in error["message"]
            assert error["message"].startswith(f"invalid configuration in {config}")
            assert error["stack"] == [] and error["cause"] is None
