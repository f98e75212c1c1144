"""The gates in real Dagster runs of the project's definitions: each failing on purpose, the export untouched.

A first run (module fixture) publishes a good batch through a fake OpenAI-compatible server; each test
copies that home, re-runs the same batch with a configuration (or judge) that one gate must reject, and
checks that the check failed with its expectations and sample rows, the export step did not run, the
files under ``exports/`` are byte for byte the previous good export, and the rejected rows are in
``quarantine`` with their reasons.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from assets.resources import PipelineHome
from pref_pipeline import gates
from pref_pipeline.definitions import build_definitions
from pref_pipeline.runs import PipelineRun, run_batches
from pref_pipeline.paths import SCHEMA, Home
from pref_pipeline.quarantine import gate_quarantine
from pref_pipeline.table_files import connect as connect_tables
from tests.fakes import FakeLLMServer, default_judge
from tests.helpers import SAMPLE_PROMPTS, pipeline_config, strong_and_weak, use_home, write_prompts

BATCH = "prompts"


def config_for(base_url: str, prompts_file: Path, judge: str = "judge-1", **extra):
    return pipeline_config(prompts_file, base_url, generators=strong_and_weak(),
                           judges=[{"model": f"openai:{judge}", "criteria": "helpfulness_and_clarity"}],
                           **{"candidates_per_prompt": 3, **extra})


def run(config) -> PipelineRun:
    """One batch's run, then the roll-up run: the audit over every batch, and the dataset when the batch succeeded."""
    pipeline = run_batches(config, Home.from_env().ensure())
    assert len(pipeline.batches) == 1
    return pipeline


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
            and not p.name.startswith(".")}


def materialized(pipeline: PipelineRun) -> set[str]:
    results = [*pipeline.batches.values(), *([pipeline.rollup] if pipeline.rollup else [])]
    return {e.asset_key.to_user_string() for r in results for e in r.get_asset_materialization_events()}


def checks(pipeline: PipelineRun) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for r in pipeline.batches.values() for e in r.get_asset_check_evaluations()}


def table(name: str) -> pd.DataFrame:
    with connect_tables(Home.from_env()) as con:
        return con.execute(f"SELECT * FROM {SCHEMA}.{name}").fetchdf()


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """A home where batch ``prompts`` was run and published once (default gates, recency weight on)."""
    root = tmp_path_factory.mktemp("published")
    prompts = write_prompts(root / "prompts.jsonl", SAMPLE_PROMPTS)
    with pytest.MonkeyPatch.context() as mp:
        use_home(mp, root / "home")
        with FakeLLMServer() as server:
            result = run(config_for(server.openai_base_url, prompts, export={"recency_half_life_days": 30}))
        audit = json.loads((root / "home" / "reports" / "audit.json").read_text())
    return {"home": root / "home", "prompts": prompts, "result": result, "audit": audit}


@pytest.fixture
def republish(published, home):
    """A copy of the published home (the ``home`` fixture points PREF_PIPELINE_HOME at it)."""
    shutil.copytree(published["home"], home)
    return published["prompts"]


def test_the_good_run_publishes_with_checks_plots_and_recency_weight(published):
    result, audit = published["result"], published["audit"]
    assert result.success
    assert {name: e.passed for name, e in checks(result).items()} == {
        "prompts_gate": True, "candidates_gate": True, "judgments_gate": True, "preference_pairs_gate": True,
        "judge_is_current": True}
    assert {"preference_pairs_export", "audit_report", "judgment_history", "quarantine"} <= materialized(result)
    rows = [json.loads(line) for line in (published["home"] / "exports" / "preference_pairs.jsonl").read_text().splitlines()]
    assert rows and len(rows) == audit["pairs"]["kept"]
    assert all(r["recency_weight"] == pytest.approx(1.0, abs=1e-3) for r in rows)  # judged within seconds
    # audit.json keeps its contract keys; the plots are PNG files and images in the UI's report.
    for section, key in (("length_bias", "pct_longer_chosen"), ("length_bias", "flagged"),
                         ("position_bias", "consistency_rate"), ("position_bias", "first_position_win_rate"),
                         ("pairs", "kept"), ("pairs", "quarantined")):
        assert key in audit[section]
    assert isinstance(audit["flags"], list)
    reports = published["home"] / "reports"
    assert {"length_difference.png", "position.png", "drift.png"} <= {p.name for p in reports.glob("*.png")}
    [event] = [e for e in result.rollup.get_asset_materialization_events() if e.asset_key == dg.AssetKey("audit_report")]
    report = event.materialization.metadata["report"].value
    assert report.count("](data:image/png;base64,") >= 3
    assert event.materialization.metadata["length_bias.pct_longer_chosen"].value == audit["length_bias"]["pct_longer_chosen"]


def longer_wins_except_python_first_shown(info):
    """Position-biased on one prompt in three: for the Python question the first-shown response always wins."""
    if "Python" in info.question:
        return {"preference": "A", "confidence": 0.8, "reasoning": "The first one."}
    return default_judge(info)


CASES = {
    # name: (configuration changes, judge model, judge function, the check that must fail)
    "min_prompts": ({"gates": {"min_prompts": 10}}, "judge-1", None, "prompts_gate"),
    "min_candidates": ({"gates": {"min_candidates": 100}}, "judge-1", None, "candidates_gate"),
    "min_judgments": ({"gates": {"min_judgments": 1000}}, "judge-1", None, "judgments_gate"),
    "min_pairs": ({"gates": {"min_pairs": 100}}, "judge-1", None, "preference_pairs_gate"),
    # The fake judge prefers the longer response: 100% longer chosen, outside 0.5 ± 0.15.
    "max_length_bias": ({"gates": {"max_length_bias": 0.15}}, "judge-1", None, "preference_pairs_gate"),
    # Same verdict in both orders for 6 of 9 comparisons (0.67) below a floor of 0.8.
    "min_position_consistency": ({"gates": {"min_position_consistency": 0.8}}, "judge-position",
                                 longer_wins_except_python_first_shown, "preference_pairs_gate"),
}
UPSTREAM = ["prompts", "candidates", "judgments", "preference_pairs"]


@pytest.mark.parametrize("case", list(CASES))
def test_a_failing_gate_stops_the_run_and_leaves_the_export_untouched(case, republish):
    changes, judge, judge_fn, failing = CASES[case]
    exports = Home.from_env().exports
    before = snapshot(exports)
    assert "preference_pairs.jsonl" in before and f"batches/{BATCH}/preference_pairs.jsonl" in before
    with FakeLLMServer(judge_fn=judge_fn) as server:
        result = run(config_for(server.openai_base_url, republish, judge=judge, **changes))

    assert not result.success
    evaluations = checks(result)
    assert not evaluations[failing].passed
    assert all(e.passed for name, e in evaluations.items() if name != failing)
    # Blocking: nothing downstream of the failed check ran, and the export step never wrote. The pairs gate
    # blocks publishing instead: the export runs and writes nothing, batch_published fails with the cause.
    stage = failing.removesuffix("_gate")
    downstream = UPSTREAM[UPSTREAM.index(stage) + 1:] + ["batch_published", "preference_dataset"]
    if stage == "preference_pairs":
        assert "batch_audit" in materialized(result)  # made by the pairs step: a blocked batch has its audit
        assert "preference_pairs_export" in materialized(result)  # published: false, files untouched
        assert result.outcomes()[BATCH].blocked
    else:
        downstream += ["batch_audit", "preference_pairs_export"]
    assert not set(downstream) & materialized(result)
    assert "audit_report" in materialized(result)  # the audit over every batch is written on every run
    assert snapshot(exports) == before

    # Visible in the UI: the failed expectations, readable lines, and sample rows.
    metadata = evaluations[failing].metadata
    failed = metadata["failed_expectations"].value
    assert failed and all(f["expectation"].startswith("expect_") for f in failed)
    assert metadata["failures"].value.startswith("- expect_")
    assert "|" in metadata["sample_rows"].value  # a Markdown table of rows
    assert evaluations[failing].description.startswith(f"{stage}: ")

    quarantine = table("quarantine")
    rejected = quarantine[quarantine["stage"] == f"gate:{stage}"]
    if stage == "preference_pairs":
        # The pairs step owns quarantine: the rows its gate rejected are kept there with the reason.
        assert len(rejected) == metadata["quarantined_rows"].value > 0
        assert set(rejected["batch_id"]) == {BATCH}
        pairs = table("preference_pairs")  # stored by the step before the check, kept as evidence
        assert set(rejected["item_id"]) == set(pairs["pair_id"]) and set(rejected["reason"]) == {"batch_rejected"}
        assert all(failed[0]["expectation"] in detail for detail in rejected["detail"])
    else:
        # Checks only check: an upstream gate writes no table; its stage's rows stay stored as evidence and the
        # check says what failed. The batch never reached the pairs step, so it has no new quarantine rows.
        assert rejected.empty
        assert (table(stage)["batch_id"] == BATCH).any()


def test_the_bound_figures_are_on_the_check(republish):
    with FakeLLMServer(judge_fn=longer_wins_except_python_first_shown) as server:
        result = run(config_for(server.openai_base_url, republish, judge="judge-position",
                                gates={"min_position_consistency": 0.8, "max_length_bias": 0.5}))
    evaluation = checks(result)["preference_pairs_gate"]
    figures = evaluation.metadata["figures"].value
    assert figures["position_consistency"] == {"rate": round(6 / 9, 4), "n_both_orders": 9,
                                               "min_position_consistency": 0.8}
    assert figures["length_bias"]["pct_longer_chosen"] == 1.0  # length bound 0.5: passes; the floor fails
    assert [f["label"] for f in evaluation.metadata["failed_expectations"].value] == [
        "expect_column_mean_to_be_between(same_verdict_both_orders)"]


def bad_pairs(kind: str) -> pd.DataFrame:
    pairs = table("preference_pairs")
    if kind == "null_required":
        pairs.loc[0, "judge_model_id"] = None
    elif kind == "chosen_equals_rejected":
        pairs.loc[0, "rejected"] = pairs.loc[0, "chosen"]
    elif kind == "duplicate_pair_id":
        pairs.loc[1, "pair_id"] = pairs.loc[0, "pair_id"]
    elif kind == "confidence_out_of_range":
        pairs.loc[0, "confidence"] = 1.5
    elif kind == "confidence_not_a_number":
        pairs["confidence"] = pairs["confidence"].astype(object)
        pairs.loc[0, "confidence"] = "high"
    elif kind == "verdict_not_allowed":
        pairs.loc[0, "verdict_ab"] = "C"
    elif kind == "missing_column":
        pairs = pairs.drop(columns=["criteria"])
    elif kind == "empty_text":
        pairs.loc[0, "chosen"] = "  "
    return pairs


@pytest.mark.parametrize("kind", ["null_required", "chosen_equals_rejected", "duplicate_pair_id",
                                  "confidence_out_of_range", "confidence_not_a_number", "verdict_not_allowed",
                                  "missing_column", "empty_text"])
def test_a_batch_the_pairs_gate_rejected_is_never_published(kind, republish):
    """The export does not validate again; it reads the gate's verdict from the batch's quarantine rows, so
    even materialized on its own (no check before it in the run) it publishes nothing the gate rejected."""
    config = config_for("http://127.0.0.1:9/v1", republish)
    home = Home.from_env()
    export = build_definitions(config, home).get_assets_def("preference_pairs_export")
    exports = home.exports
    before = snapshot(exports)
    pairs, judgments, stored_quarantine = table("preference_pairs"), table("judgments"), table("quarantine")
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("prompt_batches", [BATCH])

    def context():
        return dg.build_asset_context(partition_key=BATCH, instance=instance,
                                      resources={"home": PipelineHome(root=str(home.root))})

    bad = bad_pairs(kind)
    gate = gates.validate_pairs(bad, config.gates, judgments)
    assert not gate.success
    rejected = gate_quarantine("preference_pairs", bad, gate).assign(batch_id=BATCH)
    quarantine = pd.concat([q for q in (stored_quarantine, rejected) if len(q)])
    result = export(context(), preference_pairs=bad, quarantine=quarantine)
    assert result.metadata["published"] is False  # not published; batch_published fails and says why
    assert result.metadata["why"].startswith("not exported: the pairs gate rejected this batch")
    assert snapshot(exports) == before
    batch_published = build_definitions(config, home).get_assets_def("batch_published")
    with pytest.raises(dg.Failure, match="batch 'prompts' is not published: the pairs gate rejected this batch"):
        batch_published(context(), preference_pairs=bad, quarantine=quarantine)
    # The same call with the stored pairs and their quarantine (gate passed) publishes them again.
    export(context(), preference_pairs=pairs, quarantine=stored_quarantine)
    assert (exports / "batches" / BATCH / "preference_pairs.jsonl").exists()


def test_a_first_batch_without_pairs_does_not_break_later_batches(home, tmp_path):
    """Batch ``a`` ends with no pair (its judge is position-biased: every comparison inconsistent), so its
    pairs table is empty and its comparisons have no winner. Tables first stored from such all-null columns
    must still take batch ``b``'s rows; the combined JSONL has no blank line for the empty batch."""
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write_prompts(first, SAMPLE_PROMPTS[:1])
    write_prompts(second, SAMPLE_PROMPTS[1:])

    def no_pairs_for_seasons(info):
        if "seasons" in info.question:
            return {"preference": "A", "confidence": 0.8, "reasoning": "First."}  # inconsistent: no pair
        return default_judge(info)

    with FakeLLMServer(judge_fn=no_pairs_for_seasons) as server:
        config = config_for(server.openai_base_url, first, gates={"min_pairs": 0})
        config = config.model_copy(update={"prompts": [config.prompts[0], config.prompts[0].model_copy(
            update={"path": second})]})
        results = run_batches(config, Home.from_env().ensure())
    assert {batch: r.success for batch, r in results.batches.items()} == {"a": True, "b": True}
    assert results.rollup.success
    pairs = table("preference_pairs")
    assert set(pairs["batch_id"]) == {"b"} and len(pairs) > 0
    rows = (Home.from_env().exports / "preference_pairs.jsonl").read_text().splitlines()
    assert len(rows) == len(pairs) and all(json.loads(row)["batch_id"] == "b" for row in rows)
    assert (Home.from_env().exports / "batches" / "a" / "preference_pairs.jsonl").read_bytes() == b""


def shorter_wins_for_python(info):
    """Longer wins, except on the Python question where the shorter does: longer chosen in about 2 of 3 pairs."""
    if "Python" in info.question:
        a, b = len(info.response_a), len(info.response_b)
        return {"preference": "A" if a < b else "B" if b < a else "tie", "confidence": 0.8, "reasoning": "Short."}
    return default_judge(info)


def test_rebalanced_export_chooses_the_longer_half_of_the_time(republish):
    with FakeLLMServer(judge_fn=shorter_wins_for_python) as server:
        result = run(config_for(server.openai_base_url, republish, judge="judge-mixed",
                                export={"rebalance_length": True}))
    assert result.success
    pairs = table("preference_pairs")
    longer = (pairs["chosen_words"] > pairs["rejected_words"]).sum()
    shorter = (pairs["chosen_words"] < pairs["rejected_words"]).sum()
    assert longer > shorter > 0
    exported = [json.loads(line) for line in (Home.from_env().exports / "preference_pairs.jsonl").read_text().splitlines()]
    assert sum(r["chosen_words"] > r["rejected_words"] for r in exported) == shorter  # as many as the other way
    assert sum(r["chosen_words"] < r["rejected_words"] for r in exported) == shorter
    quarantine = table("quarantine")
    left_out = quarantine[quarantine["stage"] == "export"]
    assert len(left_out) == longer - shorter and set(left_out["reason"]) == {"length_rebalance"}
    assert not set(left_out["item_id"]) & {r["pair_id"] for r in exported}
    audit = json.loads((Home.from_env().reports / "audit.json").read_text())
    # The audit measures the judge before rebalancing, and says how many pairs the export left out.
    assert audit["pairs"]["kept"] == len(pairs) and audit["pairs"]["left_out_by_export"] == longer - shorter
    assert audit["length_bias"]["pct_longer_chosen"] == round(longer / (longer + shorter), 4)
