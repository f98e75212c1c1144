"""What Dagster records of a batch its pairs gate blocks, beside batches that pass (issue 24): the gate's result
per batch (partition), the blocked batch's ``batch_published`` partition failed with the cause in the user's
terms until a run of that batch passes, the roll-ups made over the batches that passed, naming the one left
out. Real Dagster (``dagster.materialize`` on one persistent-in-memory instance), the in-process fake LLM."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from assets.partitions import PROMPT_BATCHES
from pref_pipeline.paths import Home
from tests.fakes.in_process import FakeLLM
from tests.helpers import SAMPLE_PROMPTS, materialize, pipeline_config, two_generators, write_prompts

PUBLISHED = dg.AssetKey("batch_published")
GATE = dg.AssetCheckKey(dg.AssetKey("preference_pairs"), "preference_pairs_gate")


def first_shown_wins(info):
    """A position-biased judge: the response shown first always wins, so no verdict survives the swap."""
    return {"preference": "A", "confidence": 0.9, "reasoning": "The first one."}


def gate_by_partition(instance: dg.DagsterInstance) -> dict[str, bool]:
    """The latest pairs-gate result per batch, as the instance records it."""
    records = instance.event_log_storage.get_asset_check_execution_history(GATE, limit=50)
    latest: dict[str, bool] = {}
    for record in reversed(records):  # oldest first, so the newest wins
        evaluation = record.event.asset_check_evaluation if record.event else None
        if evaluation is not None:
            latest[evaluation.partition] = evaluation.passed
    return latest


def failed_step(result: dg.ExecuteInProcessResult, step: str):
    [event] = [e for e in result.all_events if e.is_step_failure and e.step_key == step]
    return event.step_failure_data


@pytest.fixture
def three_batches(tmp_path, home):
    """Batches a, b (a passing judge) and blocked (a position-biased judge), on one instance."""
    folder = tmp_path / "prompts"
    folder.mkdir()
    for name in ("a", "blocked", "b"):
        write_prompts(folder / f"{name}.jsonl", [dict(row, id=f"{name}-{row['id']}") for row in SAMPLE_PROMPTS[:2]])
    config = pipeline_config(None, prompt_folder=str(folder), generators=two_generators((0.3, 0.9)),
                             judges=[{"model": "openai:judge"}], audit={"plots": True})
    instance, fake = dg.DagsterInstance.ephemeral(), FakeLLM()
    assert materialize(config, "a", instance=instance, fake=fake).success
    fake.set_judge_fn(first_shown_wins)
    blocked = materialize(config, "blocked", instance=instance, fake=fake)
    fake.set_judge_fn(None)
    later = materialize(config, "b", instance=instance, fake=fake)
    return {"config": config, "instance": instance, "fake": fake, "blocked": blocked, "later": later}


def test_a_blocked_batch_stays_visibly_blocked_and_the_rollups_succeed_over_the_others(three_batches):
    instance, blocked = three_batches["instance"], three_batches["blocked"]
    assert three_batches["later"].success

    # The step that fails is batch_published, with the cause in the user's terms, not a stack of Dagster frames.
    failure = failed_step(blocked, "batch_published")
    assert failure.user_failure_data is not None  # a dagster.Failure: the run page shows its description first
    cause = failure.user_failure_data.description
    assert cause.startswith("batch 'blocked' is not published: the pairs gate rejected this batch")
    assert "pairs 0 < gates.min_pairs 1" in cause and "every verdict flipped with the order" in cause
    assert failure.user_failure_data.metadata["batch"].value == "blocked"
    assert failure.error.cls_name == "Failure"
    # Only that step failed: the pairs step, the export (not published) and both roll-ups succeeded.
    assert [e.step_key for e in blocked.all_events if e.is_step_failure] == ["batch_published"]
    made = {e.asset_key.to_user_string() for e in blocked.get_asset_materialization_events()}
    assert {"preference_pairs", "batch_audit", "preference_pairs_export", "audit_report",
            "preference_dataset"} <= made
    export = [e for e in blocked.get_asset_materialization_events()
              if e.asset_key == dg.AssetKey("preference_pairs_export")][0].materialization.metadata
    assert export["published"].value is False

    # Per batch: the gate's result per partition, and the blocked partition failed whatever the later batch did.
    assert gate_by_partition(instance) == {"a": True, "blocked": False, "b": True}
    failed = instance.get_status_by_partition(PUBLISHED, ["a", "blocked", "b"], PROMPT_BATCHES)
    assert {k: v.value for k, v in failed.items()} == {"a": "MATERIALIZED", "blocked": "FAILED", "b": "MATERIALIZED"}

    # The roll-ups over the batches that passed name the one left out.
    dataset = [e for e in three_batches["later"].get_asset_materialization_events()
               if e.asset_key == dg.AssetKey("preference_dataset")][0].materialization.metadata
    assert dataset["batches"].value == ["a", "b"]
    assert dataset["left_out_batches"].value == {"blocked": pytest.approx(dataset["left_out_batches"].value["blocked"])}
    assert "pairs 0 < gates.min_pairs 1" in dataset["left_out_batches"].value["blocked"]
    audit = json.loads((Home.from_env().reports / "audit.json").read_text())
    assert any(flag.startswith("batch 'blocked' not published") for flag in audit["flags"])


def materialization(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(asset)]
    return event.materialization.metadata


def test_the_strategy_table_and_the_plots_are_entries_of_their_own(three_batches):
    for asset in ("audit_report", "batch_audit"):
        metadata = materialization(three_batches["later"], asset)
        table = metadata["strategies"]
        assert isinstance(table, dg.TableMetadataValue)
        assert [c.name for c in table.schema.columns][:2] == ["strategy", "comparisons"]
        assert table.records and all(r.data["comparisons"] > 0 for r in table.records)
        plots = {k: v for k, v in metadata.items() if k.startswith("plot.")}
        assert "plot.position" in plots, sorted(metadata)
        assert all(isinstance(v, dg.MarkdownMetadataValue) and "](data:image/png;base64," in v.value
                   for v in plots.values())
    # The blocked batch's one quarantine row that stands for the batch, said apart from the comparisons.
    blocked = materialization(three_batches["blocked"], "batch_audit")
    by_kind = blocked["pairs.quarantined_by_kind"].value
    assert sum(by_kind.values()) == blocked["pairs.quarantined"].value
    assert any(kind.startswith("gate:preference_pairs / ") for kind in by_kind)
    audit = json.loads((Home.from_env().reports / "batches" / "blocked" / "audit.json").read_text())
    assert audit["pairs"]["quarantined_batch_rows"] == 1
    assert audit["pairs"]["quarantined"] == audit["pairs"]["comparisons"] + 1
    report = (Home.from_env().reports / "batches" / "blocked" / "audit.md").read_text()
    assert "1 of them a row standing for a whole blocked batch rather than a pair" in report


def test_a_run_of_the_blocked_batch_that_passes_clears_it(three_batches):
    instance, config, fake = three_batches["instance"], three_batches["config"], three_batches["fake"]
    fixed = config.model_copy(update={"judges": pipeline_config(None, judges=[{"model": "openai:judge-2"}]).judges})
    assert materialize(fixed, "blocked", instance=instance, fake=fake).success  # another judge (not cached)
    status = instance.get_status_by_partition(PUBLISHED, ["a", "blocked", "b"], PROMPT_BATCHES)
    assert {v.value for v in status.values()} == {"MATERIALIZED"}
    assert gate_by_partition(instance)["blocked"] is True


def test_the_prompts_asset_names_the_valid_partition_names(tmp_path, home):
    """What to type in "Add a partition": the batch names the configuration has, on the prompts asset."""
    from assets.pipeline import build_chain_assets

    folder = tmp_path / "prompts"
    folder.mkdir()
    for name in ("week-1", "week-2"):
        write_prompts(folder / f"{name}.jsonl", SAMPLE_PROMPTS[:1])
    config = pipeline_config(None, prompt_folder=str(folder))
    [multi] = [a for a in build_chain_assets(config) if dg.AssetKey("prompts") in a.keys]
    description = multi.specs_by_key[dg.AssetKey("prompts")].description
    assert "the valid names were: week-1, week-2 (Reload definitions after adding a file)" in description
