"""Issue 24 through the real webserver: three batches, one of them judged by a position-biased judge so its pairs
gate blocks it, in a real headless Chromium against `dagster dev` started by the test. The blocked batch stays
visibly blocked (catalog, its partition, the lineage) after another batch passes; the run page says why in the
user's terms; following each warning's advice clears it; `judge_calibration` cannot be launched without naming
its sets, and no call is made. Screenshots and page texts go to test-artifacts/ui/ (not in git)."""

from __future__ import annotations

import json
import os
import re
import time

import dagster as dg
import pytest

from assets.partitions import PROMPT_BATCHES
from tests.dagster_dev import LAUNCH_MUTATION, code_location, dagster_dev, graphql, launch_partition_run, wait_for_runs
from tests.fakes import FakeLLMServer
from tests.fakes.answers import default_judge
from tests.helpers import (
    CHROMIUM, CHROMIUM_ARGS, MATERIALIZE_ALL, UI_ARTIFACTS, two_generators, visit, write_config_file, write_prompts,
)

pytestmark = pytest.mark.slow

BATCHES = {  # batch -> its prompts; week-2's are answered by a position-biased judge until the judge is fixed
    "week-1": ["What causes the seasons on Earth?", "Why is the sky blue?"],
    "week-2": ["How do vaccines train the immune system?", "What is a prime number?"],
    "week-3": ["How does a refrigerator keep food cold?", "What is the difference between weather and climate?"],
}
BLOCKED = "week-2"

PARTITION_STATUS = """query S($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) { ... on AssetNode {
  partitionStats { numMaterialized numFailed }
  assetPartitionStatuses { ... on DefaultPartitionStatuses { materializedPartitions failedPartitions } } } } }"""

CHECKS = """query C($keys: [AssetKeyInput!]) { assetNodes(assetKeys: $keys) { assetKey { path }
  assetChecksOrError { ... on AssetChecks { checks { name
    executionForLatestMaterialization { status evaluation { description } } } } } } }"""


def partition_status(base: str, asset: str) -> dict:
    return graphql(base, PARTITION_STATUS, {"key": {"path": [asset]}})["assetNodeOrError"]


def judge_warnings(base: str, assets: list[str]) -> dict[str, dict | None]:
    nodes = graphql(base, CHECKS, {"keys": [{"path": [a]} for a in assets]})["assetNodes"]
    return {n["assetKey"]["path"][0]: next((c["executionForLatestMaterialization"] for c in
                                            n["assetChecksOrError"]["checks"] if c["name"] == "judge_is_current"), None)
            for n in nodes}


def wait_until(probe, timeout_s: float = 120, every_s: float = 2):
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every_s)


def keep(page, name: str) -> str:
    """Screenshot and page text under test-artifacts/ui/ (what a failed assertion is read against)."""
    page.screenshot(path=str(UI_ARTIFACTS / f"blocked-{name}.png"), full_page=True)
    text = page.inner_text("body")
    (UI_ARTIFACTS / f"blocked-{name}.txt").write_text(text)
    return text


def run_once(base: str, job: str, batch: str) -> dict:
    before = {r["runId"] for r in graphql(base, "{ runsOrError { ... on Runs { results { runId } } } }")[
        "runsOrError"]["results"]}
    run_id = launch_partition_run(base, job, batch)
    assert run_id not in before
    runs = wait_for_runs(base, {"runIds": [run_id]}, 1)
    return runs[0]


def test_a_blocked_batch_in_the_ui(tmp_path):
    from playwright.sync_api import sync_playwright

    UI_ARTIFACTS.mkdir(parents=True, exist_ok=True)
    dagster_home, pref_home, folder = tmp_path / "dagster_home", tmp_path / "pref_home", tmp_path / "prompts"
    dagster_home.mkdir()
    folder.mkdir()
    for batch, prompts in BATCHES.items():
        write_prompts(folder / f"{batch}.jsonl", [{"id": f"{batch}-{i}", "category": "factual", "prompt": p}
                                                  for i, p in enumerate(prompts)])
    biased = {"on": True}

    def judge(info):
        """First shown wins for week-2's prompts while ``biased`` (no verdict survives the swap)."""
        if biased["on"] and any(p in info.question for p in BATCHES[BLOCKED]):
            return {"preference": "A", "confidence": 0.9, "reasoning": "The first one."}
        return default_judge(info)

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        instance.add_dynamic_partitions(PROMPT_BATCHES.name, list(BATCHES))
    with FakeLLMServer(judge_fn=judge) as server:
        config = write_config_file(tmp_path / "pipeline.yaml", [], server.openai_base_url, prompt_folder=str(folder),
                                   generators=two_generators((0.2, 0.9)), judges=[{"model": "openai:judge"}],
                                   cache=False)  # so the fixed judge is asked again, not its cached answers
        env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "PREF_PIPELINE_HOME": str(pref_home),
               "PREF_PIPELINE_CONFIG": str(config)}
        with dagster_dev(env, tmp_path / "dagster-dev.log") as base, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1600, "height": 1100})

            # Three batches: week-1 passes, week-2 is blocked, then week-3 passes after it.
            assert run_once(base, "preference_pipeline", "week-1")["status"] == "SUCCESS"
            blocked_run = run_once(base, "preference_pipeline", BLOCKED)
            assert blocked_run["status"] == "FAILURE"
            assert run_once(base, "preference_pipeline", "week-3")["status"] == "SUCCESS"

            # The blocked batch's partition is failed, whatever week-3 did after it.
            status = partition_status(base, "batch_published")
            assert status["assetPartitionStatuses"]["failedPartitions"] == [BLOCKED]
            assert status["partitionStats"]["numFailed"] == 1
            # The roll-ups were made in the blocked batch's run too, and nothing is red there.
            for rollup in ("preference_dataset", "audit_report"):
                node = graphql(base, """query R($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) {
                    ... on AssetNode { assetMaterializations(limit: 3) { runId } } } }""",
                               {"key": {"path": [rollup]}})["assetNodeOrError"]
                assert blocked_run["runId"] in {m["runId"] for m in node["assetMaterializations"]}, rollup

            # The run page: the cause in the user's terms, from batch_published's Failure.
            text = visit(page, f"{base}/runs/{blocked_run['runId']}", "batch_published")
            page.get_by_text("is not published").first.wait_for(timeout=60_000)
            text = keep(page, "1-run-page")
            assert f"batch '{BLOCKED}' is not published: the pairs gate rejected this batch" in text
            assert "pairs 0 < gates.min_pairs 1" in text

            # Its partition, on the asset's Partitions tab.
            visit(page, f"{base}/assets/batch_published?view=partitions", "Partitions")
            page.get_by_text(re.compile(r"Failed \(1\)")).first.wait_for(timeout=60_000)
            keep(page, "2-partitions")
            # The catalog: batch_published's row counts 2 materialized, 0 missing, 1 failed, 0 in progress.
            visit(page, f"{base}/assets", "batch_published")
            counts = re.compile(r"\nbatch_published\nWhether this batch is published[^\n]*\n(?:[^\n]*\n){2}"
                                r"preference_data\n(\d+)\n(\d+)\n(\d+)\n(\d+)\n3 partitions")
            shown = wait_until(lambda: counts.search(page.inner_text("body")), timeout_s=60)
            keep(page, "3-catalog")
            assert shown and shown.groups() == ("2", "0", "1", "0")
            # The lineage: the asset's node with its partitions, the failed one counted.
            visit(page, f"{base}/assets/batch_published?view=lineage", "batch_published")
            time.sleep(5)  # the nodes' partition counts load after the graph
            page.get_by_text("(1 failed)").first.wait_for(timeout=60_000)  # "66% filled (1 failed)", in red
            keep(page, "4-lineage")

            # The roll-ups name the batch left out.
            text = visit(page, f"{base}/assets/preference_dataset", "left_out_batches")
            assert BLOCKED in keep(page, "5-dataset")

            # Warning: after a judgments-only run of week-1, what sits below judgments is older than its verdicts;
            # the advice names the batch and the job; following it clears the warning.
            assert run_once(base, "rejudge", "week-1")["status"] == "SUCCESS"  # the whole chain: all current
            launched = graphql(base, LAUNCH_MUTATION, {"params": {
                "selector": {"repositoryLocationName": code_location(base)["name"],
                             "repositoryName": "__repository__", "jobName": "__ASSET_JOB",
                             "assetSelection": [{"path": ["judgments"]}]},
                "executionMetadata": {"tags": [{"key": "dagster/partition", "value": "week-1"}]}}})["launchRun"]
            assert launched["__typename"] == "LaunchRunSuccess", launched
            wait_for_runs(base, {"runIds": [launched["run"]["runId"]]}, 1)
            below = ["preference_pairs", "preference_pairs_export", "audit_report"]
            shown = wait_until(lambda: (s := judge_warnings(base, below)) and all(
                e and e["status"] == "FAILED" for e in s.values()) and s)
            assert shown, judge_warnings(base, below)
            for asset, execution in shown.items():
                description = execution["evaluation"]["description"]
                assert "week-1" in description and "rebuild_from_judgments job for week-1" in description, asset
                assert "judge_change_sensor" not in description
            visit(page, f"{base}/assets/preference_pairs?view=checks", "judge_is_current")
            page.get_by_text("rebuild_from_judgments").first.wait_for(timeout=60_000)
            keep(page, "6-stale-advice")
            assert run_once(base, "rebuild_from_judgments", "week-1")["status"] == "SUCCESS"
            cleared = wait_until(lambda: all(e and e["status"] == "SUCCEEDED"
                                             for e in judge_warnings(base, below).values()))
            assert cleared, judge_warnings(base, below)

            # The blocked batch's advice: fix the judge, run the batch again: it passes, the partition clears.
            biased["on"] = False
            assert run_once(base, "preference_pipeline", BLOCKED)["status"] == "SUCCESS"
            status = partition_status(base, "batch_published")
            assert status["assetPartitionStatuses"]["failedPartitions"] == []
            assert status["partitionStats"]["numFailed"] == 0
            visit(page, f"{base}/assets/audit_report", "left_out_batches")
            keep(page, "7-cleared")
            audit = json.loads((pref_home / "reports" / "audit.json").read_text())
            assert audit["batches"]["blocked"] == 0 and not [f for f in audit["flags"] if BLOCKED in f]

            # judge_calibration cannot spend by accident: without its sets the launch is refused, no call made.
            calls = server.count("/chat/completions")
            refused = graphql(base, LAUNCH_MUTATION, {"params": {
                "selector": {"repositoryLocationName": code_location(base)["name"],
                             "repositoryName": "__repository__", "jobName": "calibrate_judges"}}})["launchRun"]
            assert refused["__typename"] == "RunConfigValidationInvalid", refused
            assert any("sets" in e["message"] for e in refused["errors"])
            # The global lineage's "Materialize all…" leaves judge_calibration out (the graph cannot materialize it).
            visit(page, f"{base}/asset-groups", "Materialize all")
            page.get_by_role("button", name=MATERIALIZE_ALL).click()
            dialog = page.get_by_role("dialog")
            dialog.get_by_role("button", name=re.compile(r"^Launch")).first.wait_for(timeout=60_000)
            text = keep(page, "8-materialize-all")
            assert "judge_calibration" not in dialog.inner_text() and "Launchpad" not in text
            page.keyboard.press("Escape")
            assert server.count("/chat/completions") == calls
            browser.close()
