"""The Dagster UI in a real headless Chromium, and a backfill through the GraphQL API, against
`dagster dev` started by the test. Screenshots are kept in test-artifacts/ui/."""

from __future__ import annotations

import os
import time

import dagster as dg
import pytest

from assets.partitions import PROMPT_BATCHES
from tests.dagster_dev import dagster_dev, graphql, wait_for_runs
from tests.fakes import FakeLLMServer
from tests.helpers import (
    CHROMIUM, CHROMIUM_ARGS, MATERIALIZE_ALL, SAMPLE_PROMPTS, UI_ARTIFACTS, visit, write_prompts, write_ui_config,
)

pytestmark = pytest.mark.slow

ASSETS = ["prompts", "rejected_prompts", "candidates", "judgments", "judgment_history", "comparisons",
          "preference_pairs", "quarantine", "preference_pairs_export", "batch_audit", "batch_published",
          "preference_dataset", "audit_report"]


@pytest.fixture(scope="module")
def dagster_ui(tmp_path_factory):
    """`dagster dev` on the workspace, configured against a fake LLM server, one batch registered."""
    base_dir = tmp_path_factory.mktemp("ui")
    dagster_home, pref_home = base_dir / "dagster_home", base_dir / "pref_home"
    dagster_home.mkdir()
    prompts = write_prompts(base_dir / "prompts.jsonl", SAMPLE_PROMPTS[:2])
    with FakeLLMServer() as server:
        config = write_ui_config(base_dir / "pipeline.yaml", prompts, server.openai_base_url)
        env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "PREF_PIPELINE_HOME": str(pref_home),
               "PREF_PIPELINE_CONFIG": str(config)}
        with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
            instance.add_dynamic_partitions(PROMPT_BATCHES.name, ["prompts"])
        with dagster_dev(env, base_dir / "dagster-dev.log") as base:
            yield {"base": base, "pref_home": pref_home, "server": server}


@pytest.fixture(scope="module")
def page():
    from playwright.sync_api import sync_playwright

    UI_ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser.new_page(viewport={"width": 1400, "height": 1000})
        browser.close()


def test_materialize_from_the_ui_and_see_the_report_and_checks(dagster_ui, page):
    base = dagster_ui["base"]
    # With two asset groups (preference_data, judge_calibration) the lineage page shows each group folded
    # into one node; the sidebar's tree, opened at the group, lists its assets.
    visit(page, f"{base}/asset-groups/preference_data?open-nodes%5B0%5D=global%40global%3Apreference_data",
          "Materialize all")
    deadline = time.monotonic() + 60
    while (missing := [a for a in ASSETS if a not in page.inner_text("body")]) and time.monotonic() < deadline:
        time.sleep(0.5)
    if missing:
        page.screenshot(path=str(UI_ARTIFACTS / "failed-asset-graph.png"), full_page=True)
    assert not missing, f"the lineage page never listed {missing}"
    page.screenshot(path=str(UI_ARTIFACTS / "1-asset-graph.png"))

    page.get_by_role("button", name=MATERIALIZE_ALL).click()
    page.get_by_role("button", name="All", exact=True).click()  # every partition: the one batch
    page.get_by_role("button", name="Launch 1 run").click()
    page.get_by_text("Launched run").wait_for(timeout=30_000)
    page.screenshot(path=str(UI_ARTIFACTS / "2-launched.png"))
    [run] = wait_for_runs(base, {"tags": [{"key": "dagster/partition", "value": "prompts"}]}, 1)
    assert run["status"] == "SUCCESS"
    exported = dagster_ui["pref_home"] / "exports" / "preference_pairs.jsonl"
    assert exported.exists() and exported.read_text().strip()

    text = visit(page, f"{base}/assets/audit_report", "length_bias.pct_longer_chosen")
    assert "pairs.quarantined" in text and "position_bias.first_position_win_rate" in text
    page.screenshot(path=str(UI_ARTIFACTS / "3-audit-metadata.png"), full_page=True)
    page.get_by_text("Show Markdown").first.click()  # the report is long, so the UI opens it in a dialog
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Preference data audit").first.wait_for(timeout=30_000)
    report = dialog.inner_text()
    assert "pairs kept" in report and "Length bias" in report and "Position bias" in report
    plots = dialog.locator("img")
    assert plots.count() >= 2  # the plots are embedded in the report
    assert all(plots.nth(i).evaluate("img => img.complete && img.naturalWidth > 0") for i in range(plots.count()))
    page.screenshot(path=str(UI_ARTIFACTS / "3-audit-report.png"), full_page=True)
    page.keyboard.press("Escape")

    text = visit(page, f"{base}/assets/preference_pairs?view=checks", "preference_pairs_gate")
    assert "blocking asset check" in text and "Passed" in text
    page.screenshot(path=str(UI_ARTIFACTS / "4-checks.png"), full_page=True)


def test_backfill_through_graphql(dagster_ui):
    base = dagster_ui["base"]
    data = graphql(base, """mutation Backfill($params: LaunchBackfillParams!) {
        launchPartitionBackfill(backfillParams: $params) {
          __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }""",
                   {"params": {"partitionNames": ["prompts"],
                               "assetSelection": [{"path": [name]} for name in ASSETS]}})
    result = data["launchPartitionBackfill"]
    assert result["__typename"] == "LaunchBackfillSuccess", result
    runs = wait_for_runs(base, {"tags": [{"key": "dagster/backfill", "value": result["backfillId"]}]}, 1)
    assert [r["status"] for r in runs] == ["SUCCESS"]
    deadline = time.monotonic() + 120
    while True:  # the backfill daemon marks it complete on a later tick
        status = graphql(base, """query B($id: String!) { partitionBackfillOrError(backfillId: $id) {
            ... on PartitionBackfill { status } } }""", {"id": result["backfillId"]})["partitionBackfillOrError"]["status"]
        if status != "REQUESTED" or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert status in ("COMPLETED", "COMPLETED_SUCCESS"), status
