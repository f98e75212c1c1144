"""The walkthrough of the UI as a first-time user meets it (docs/operations.md), in a real headless Chromium against
`dagster dev` with no partition yet: what zero partitions look like, adding the first partition from the
launch dialog, a junk partition's failure and deleting it, and the `llm` pool limit. Screenshots go to
test-artifacts/ui/ (not in git)."""

from __future__ import annotations

import os
import time

import dagster as dg
import pytest

from tests.dagster_dev import dagster_dev, graphql, wait_for_runs
from tests.fakes import FakeLLMServer
from tests.helpers import (
    CHROMIUM, CHROMIUM_ARGS, MATERIALIZE_ALL, SAMPLE_PROMPTS, UI_ARTIFACTS, visit, write_prompts, write_ui_config,
)

pytestmark = pytest.mark.slow


def partition_keys(dagster_home) -> list[str]:
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        return list(instance.get_dynamic_partitions("prompt_batches"))


def add_partition_and_launch(page, base: str, name: str) -> None:
    """Materialize all… → Add a partition → Save → (select it) → Launch 1 run, as docs/operations.md says."""
    visit(page, f"{base}/asset-groups/preference_data", "Materialize all")
    page.get_by_role("button", name=MATERIALIZE_ALL).click()
    page.get_by_text("Add a partition").click()
    page.get_by_placeholder("name").fill(name)
    page.get_by_role("button", name="Save").click()
    launch = page.get_by_role("button", name="Launch 1 run")
    try:  # the dialog may select the new partition by itself, once it has read the partitions again
        launch.wait_for(timeout=10_000)
    except Exception:  # else: pick it in the partition list (reopened, so that the list is read again)
        page.get_by_role("button", name="Cancel").click()
        page.get_by_role("button", name=MATERIALIZE_ALL).click()
        page.get_by_text("Select a partition or create one").click()
        page.get_by_role("menuitem", name=name).first.click()
        page.keyboard.press("Escape")
        try:
            launch.wait_for(timeout=30_000)
        except Exception:
            page.screenshot(path=str(UI_ARTIFACTS / f"failed-walkthrough-add-{name}.png"))
            (UI_ARTIFACTS / f"failed-walkthrough-add-{name}.txt").write_text(page.inner_text("body"))
            raise
    page.screenshot(path=str(UI_ARTIFACTS / f"walkthrough-add-{name}.png"))
    launch.click()
    page.get_by_text("Launched run").wait_for(timeout=30_000)


def step_failure(dagster_home, run_id: str) -> tuple[str, str]:
    """(step, innermost message) of the run's failed step."""
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        [entry] = instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
    error = entry.dagster_event.step_failure_data.error
    while error.cause is not None:
        error = error.cause
    return entry.step_key, error.message


def test_first_time_walkthrough(tmp_path):
    from playwright.sync_api import sync_playwright

    UI_ARTIFACTS.mkdir(parents=True, exist_ok=True)
    dagster_home, pref_home = tmp_path / "dagster_home", tmp_path / "pref_home"
    dagster_home.mkdir()
    prompts = write_prompts(tmp_path / "week-1.jsonl", SAMPLE_PROMPTS[:2])
    with FakeLLMServer() as server:
        config = write_ui_config(tmp_path / "pipeline.yaml", prompts, server.openai_base_url)
        env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "PREF_PIPELINE_HOME": str(pref_home),
               "PREF_PIPELINE_CONFIG": str(config)}
        with dagster_dev(env, tmp_path / "dagster-dev.log") as base, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1600, "height": 1000})

            # 1. Zero partitions: "0 partitions" (green: nothing missing), the roll-ups never materialized.
            text = visit(page, f"{base}/assets", "0 partitions")
            assert "Never materialized" in text and "1 partition" not in text
            page.screenshot(path=str(UI_ARTIFACTS / "walkthrough-zero-partitions.png"))
            visit(page, f"{base}/asset-groups/preference_data", "Materialize all")
            time.sleep(5)  # the sidebar's status icons load after the graph
            page.screenshot(path=str(UI_ARTIFACTS / "walkthrough-zero-partitions-lineage.png"))
            assert partition_keys(dagster_home) == []

            # 3. A junk partition: its run fails in prompts, naming the batches the configuration has.
            add_partition_and_launch(page, base, "typo")
            [run] = wait_for_runs(base, {"tags": [{"key": "dagster/partition", "value": "typo"}]}, 1)
            assert run["status"] == "FAILURE"
            step, message = step_failure(dagster_home, run["runId"])
            assert step == "prompts"
            assert "no prompt batch 'typo' in the configuration (batches: week-1); was its file removed?" in message

            # ... deleted from an asset's page: ▾ beside "Materialize…" → Delete partitions.
            visit(page, f"{base}/assets/prompts", "Materialize…")
            page.get_by_role("button", name="arrow_drop_down").first.click()
            page.get_by_text("Delete partitions").click()
            page.get_by_role("dialog").get_by_text("Select a partition").click()
            page.get_by_role("menuitem", name="typo").first.click()
            page.get_by_role("dialog").get_by_text("Select partition keys").click()  # closes the list
            page.screenshot(path=str(UI_ARTIFACTS / "walkthrough-delete-partition.png"))
            page.get_by_role("button", name="Delete 1 partition").click()
            deadline = time.monotonic() + 30
            while partition_keys(dagster_home) and time.monotonic() < deadline:
                time.sleep(1)
            assert partition_keys(dagster_home) == []

            # 2. The first real partition, named after the prompt file, from the same dialog.
            add_partition_and_launch(page, base, "week-1")
            [run] = wait_for_runs(base, {"tags": [{"key": "dagster/partition", "value": "week-1"}]}, 1)
            assert run["status"] == "SUCCESS"
            assert (pref_home / "exports" / "preference_pairs.jsonl").read_text().strip()

            # 5. The llm pool limit: Deployment → Concurrency → Add pool limit.
            visit(page, f"{base}/deployment/concurrency", "Add pool limit")
            page.get_by_role("button", name="Add pool limit").click()
            page.get_by_placeholder("Pool", exact=True).fill("llm")
            page.get_by_placeholder("0 - 1000").fill("1")
            page.get_by_role("button", name="Add limit").click()
            deadline = time.monotonic() + 30
            while True:
                limits = {c["concurrencyKey"]: c["slotCount"] for c in graphql(
                    base, "{ instance { concurrencyLimits { concurrencyKey slotCount } } }")["instance"][
                    "concurrencyLimits"]}
                if "llm" in limits or time.monotonic() > deadline:
                    break
                time.sleep(1)
            assert limits.get("llm") == 1
            page.screenshot(path=str(UI_ARTIFACTS / "walkthrough-pool-limit.png"))
            browser.close()
