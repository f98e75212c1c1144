"""Human labels as a label source, through real Dagster runs with the in-process fake as the models.

``human_ranked`` asks no judge: its comparisons wait for people (``awaiting_label``), the batch is not a failed
gate. Labels written to ``human_labels`` by a rule the test knows become the pairs on the next run, each once,
with the person's winner and ``label_source: human``. A label on a pair the judges or the construction made
agrees (``human+judge`` / ``human+construction``) or not (the person's label is kept, and the audit counts the
disagreement).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import dagster as dg
import pandas as pd

from assets.resources import PipelineHome
from pref_pipeline import store
from pref_pipeline.paths import Home
from pref_pipeline.quarantine import AWAITING_LABEL, HUMAN_TIE
from tests.fakes.in_process import FakeLLM
from sensors.human_labels import build_human_labels_sensor
from tests.helpers import definitions, materialize, pipeline_config, read_jsonl, table_rows

LABELLED_AT = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)


def label_rows(picks: list[tuple[dict, str | None]], labeller: str = "ana", source: str = "review",
               at: datetime = LABELLED_AT) -> pd.DataFrame:
    """``human_labels`` rows: for each (comparison row, winner id or None for a tie), ``labeller``'s label."""
    return pd.DataFrame([{
        "label_id": store.label_id(source, c["comparison_id"], labeller), "source": source,
        "comparison_id": c["comparison_id"], "pair_id": "pair-" + c["comparison_id"].removeprefix("cmp-"),
        "prompt_id": c["prompt_id"], "category": None,
        "human_preference": "tie" if winner is None else ("x" if winner == c["candidate_x_id"] else "y"),
        "human_winner_id": winner, "labeller": labeller, "notes": None, "labelled_at": at} for c, winner in picks])


def judge_requests(fake: FakeLLM) -> int:
    return sum(1 for r in fake.requests if r["body"].get("model") == "judge-1")


def batch_audit() -> dict:
    return json.loads((Home.from_env().batch_reports("prompts") / "audit.json").read_text())


def gate_check(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    [evaluation] = [e for e in result.get_asset_check_evaluations() if e.check_name == "preference_pairs_gate"]
    return evaluation


def test_human_ranked_waits_for_people_then_their_labels_are_the_pairs(home, prompts_file):
    fake = FakeLLM()
    config = pipeline_config(prompts_file, strategies=[{"method": "human_ranked"}], candidates_per_prompt=3)
    first = materialize(config, fake=fake)
    assert first.success  # every comparison waits: not a failed gate
    check = gate_check(first)
    assert check.passed and "waiting: all 9 comparison(s) await human labels" in check.description
    assert judge_requests(fake) == 0  # no judge is asked
    comparisons = table_rows("comparisons")
    assert len(comparisons) == 9 and {c["status"] for c in comparisons} == {AWAITING_LABEL}
    assert all(c["winner_id"] is None and c["strategy"] == "human_ranked" for c in comparisons)
    assert table_rows("preference_pairs") == [] and table_rows("quarantine") == []  # waiting is not an error
    [materialized] = [m for m in first.get_asset_materialization_events() if m.asset_key.path == ["comparisons"]]
    assert materialized.materialization.metadata[AWAITING_LABEL].value == 9

    # People label by a rule: p1 the second candidate, p2 the first; one p3 comparison a tie, the others unlabelled.
    by_prompt: dict[str, list[dict]] = {}
    for c in sorted(comparisons, key=lambda c: c["comparison_id"]):
        by_prompt.setdefault(c["prompt_id"], []).append(c)
    picks = [(c, c["candidate_y_id"]) for c in by_prompt["p1"]] + [(c, c["candidate_x_id"]) for c in by_prompt["p2"]]
    tie = by_prompt["p3"][0]
    store.upsert_human_labels(Home.from_env(), label_rows(picks + [(tie, None)]))
    # A second person agrees on p1: still one pair per comparison.
    store.upsert_human_labels(Home.from_env(), label_rows(picks[:3], labeller="ben"))
    fake.reset()
    second = materialize(config, fake=fake)
    assert second.success and judge_requests(fake) == 0
    pairs = table_rows("preference_pairs")
    expected = {"pair-" + c["comparison_id"].removeprefix("cmp-"): winner for c, winner in picks}
    assert sorted(p["pair_id"] for p in pairs) == sorted(expected)  # exactly the labelled ones, each once
    for pair in pairs:
        assert pair["chosen_candidate_id"] == expected[pair["pair_id"]]
        assert pair["label_source"] == "human" and pair["generation_method"] == "human_ranked"
    status = {c["comparison_id"]: c for c in table_rows("comparisons")}
    assert status[tie["comparison_id"]]["status"] == HUMAN_TIE
    assert [c["status"] for c in by_prompt["p3"][1:]] == [AWAITING_LABEL] * 2
    assert [status[c["comparison_id"]]["status"] for c in by_prompt["p3"][1:]] == [AWAITING_LABEL] * 2
    assert {q["reason"] for q in table_rows("quarantine")} == {HUMAN_TIE}  # the tie; the waiting ones are not
    exported = read_jsonl(Home.from_env().exports / "preference_pairs.jsonl")
    assert sorted(r["pair_id"] for r in exported) == sorted(expected)
    audit = batch_audit()
    assert audit["pairs"]["awaiting_label"] == 2 and audit["agreement"]["human"]["n_no_machine"] == 9  # labels, not comparisons
    [kappa] = audit["agreement"]["human"]["inter_annotator"]
    assert (kappa["labeller_a"], kappa["labeller_b"], kappa["n"], kappa["observed_agreement"]) == ("ana", "ben", 3, 1.0)


def test_human_ranked_asks_for_its_own_samples_beside_sampling(home, prompts_file):
    fake = FakeLLM()
    config = pipeline_config(prompts_file, strategies=[{"method": "sampling"}, {"method": "human_ranked"}],
                             candidates_per_prompt=2)
    assert materialize(config, fake=fake).success
    candidates = table_rows("candidates")
    assert {c["strategy"] for c in candidates} == {"sampling", "human_ranked"} and len(candidates) == 12
    generation = [json.dumps(r["body"], sort_keys=True) for r in fake.requests if r["body"].get("model") != "judge-1"]
    assert len(generation) == 12 and len(set(generation)) == 12  # distinct requests: nothing asked twice
    statuses = {(c["strategy"], c["status"]) for c in table_rows("comparisons")}
    assert ("human_ranked", AWAITING_LABEL) in statuses and ("sampling", AWAITING_LABEL) not in statuses


def test_labels_on_judge_and_construction_pairs_agree_or_overrule_and_the_audit_counts_it(home, prompts_file):
    fake = FakeLLM()
    config = pipeline_config(prompts_file, strategies=[{"method": "sampling"}, {"method": "strong_vs_weak"}],
                             candidates_per_prompt=2)
    assert materialize(config, fake=fake).success
    comparisons = sorted(table_rows("comparisons"), key=lambda c: c["comparison_id"])
    constructed = [c for c in comparisons if c["label_source"] == "construction"]
    judged = [c for c in comparisons if c["label_source"] == "judge"]
    assert len(constructed) == 3 and len(judged) >= 2

    def other(c: dict) -> str:
        return c["candidate_y_id"] if c["winner_id"] == c["candidate_x_id"] else c["candidate_x_id"]

    # Agree with the first of each kind, disagree with the second.
    picks = [(constructed[0], constructed[0]["winner_id"]), (constructed[1], other(constructed[1])),
             (judged[0], judged[0]["winner_id"]), (judged[1], other(judged[1]))]
    store.upsert_human_labels(Home.from_env(), label_rows(picks, at=LABELLED_AT))
    # A second labeller, a week later, agrees with ana (and the construction) on the first construction pair.
    store.upsert_human_labels(Home.from_env(), label_rows([(constructed[0], constructed[0]["winner_id"])],
                                                          labeller="ben", at=LABELLED_AT + timedelta(days=7)))
    before = {p["pair_id"] for p in table_rows("preference_pairs")}
    result = materialize(config, fake=fake)
    assert result.success
    pairs = {p["pair_id"]: p for p in table_rows("preference_pairs")}
    assert set(pairs) == before  # one pair per comparison, whoever decided it

    def pair_of(c: dict) -> dict:
        return pairs["pair-" + c["comparison_id"].removeprefix("cmp-")]

    assert pair_of(constructed[0])["label_source"] == "human+construction"
    assert pair_of(judged[0])["label_source"] == "human+judge"
    for c, winner in picks[1::2]:  # a disagreement keeps the person's label
        assert pair_of(c)["label_source"] == "human" and pair_of(c)["chosen_candidate_id"] == winner
    stored = {c["comparison_id"]: c for c in table_rows("comparisons")}
    overruled = stored[constructed[1]["comparison_id"]]
    assert (overruled["status"], overruled["winner_id"], overruled["machine_winner_id"],
            overruled["machine_label_source"]) == ("human", other(constructed[1]), constructed[1]["winner_id"],
                                                   "construction")

    human = batch_audit()["agreement"]["human"]
    assert (human["n_labels"], human["n_compared"], human["agreement_rate"]) == (5, 5, 0.6)
    by_source = {e["label_source"]: (e["n"], e["agreement_rate"]) for e in human["by_label_source"]}
    assert by_source == {"construction": (3, round(2 / 3, 4)), "judge": (2, 0.5)}
    assert human["disagreements"]["n"] == 2
    assert human["disagreements"]["by_label_source"] == {"construction": 1, "judge": 1}
    assert {r["comparison_id"] for r in human["disagreements"]["rows"]} == {
        constructed[1]["comparison_id"], judged[1]["comparison_id"]}
    assert {e["strategy"] for e in human["by_strategy"]} == {"sampling", "strong_vs_weak"}
    assert {e["labeller"]: e["n"] for e in human["by_labeller"]} == {"ana": 4, "ben": 1}
    weeks = [(a["labeller"], a["n_with_pair"], a["n_agree"]) for a in batch_audit()["drift"]["annotators"]]
    assert weeks == [("ana", 4, 2), ("ben", 1, 1)]

    # The UI: the roll-up audit's page shows these as tables.
    [report] = [e.materialization.metadata for e in result.get_asset_materialization_events()
                if e.asset_key.path == ["audit_report"]]
    table = report["human_agreement.by_label_source"]
    assert isinstance(table, dg.TableMetadataValue)
    assert [(r.data["label_source"], r.data["n"]) for r in table.records] == [("judge", 2), ("construction", 3)]
    assert len(report["human_agreement.disagreements"].records) == 2
    assert [c.name for c in report["human_agreement.inter_annotator"].schema.columns][-1] == "kappa"
    assert [r.data["labeller"] for r in report["human_agreement.annotator_weekly"].records] == ["ana", "ben"]


def test_the_label_sensor_rebuilds_the_pairs_of_the_batch_people_labelled(home, prompts_file):
    fake = FakeLLM()
    config = pipeline_config(prompts_file, strategies=[{"method": "human_ranked"}], candidates_per_prompt=2)
    instance = dg.DagsterInstance.ephemeral()
    assert materialize(config, instance=instance, fake=fake).success
    defs = definitions(config, fake)
    sensor = build_human_labels_sensor()
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED  # off by default

    def tick(cursor: str | None):
        context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs,
                                          resources={"home": PipelineHome(root=str(home))})
        with dg.partition_loading_context(dynamic_partitions_store=instance):
            return sensor.evaluate_tick(context)

    quiet = tick(None)
    assert not quiet.run_requests and "have the stored human labels (0 labelled" in quiet.skip_message
    comparisons = table_rows("comparisons")
    store.upsert_human_labels(Home.from_env(), label_rows([(c, c["candidate_x_id"]) for c in comparisons]))
    labelled = tick(quiet.cursor)
    [request] = labelled.run_requests
    assert request.partition_key == "prompts" and sensor.job_name == "rebuild_from_judgments"
    pending = tick(labelled.cursor)
    assert not pending.run_requests and "already requested" in pending.skip_message

    fake.reset()
    result = defs.resolve_job_def("rebuild_from_judgments").execute_in_process(instance=instance, partition_key="prompts",
                                                                 tags=request.tags)
    assert result.success and fake.requests == []  # the pairs step and below only: no LLM call
    assert {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()} >= {
        "preference_pairs", "comparisons", "preference_pairs_export", "audit_report"}
    assert not {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()} & {
        "candidates", "judgments"}
    pairs = table_rows("preference_pairs")
    assert sorted(p["chosen_candidate_id"] for p in pairs) == sorted(c["candidate_x_id"] for c in comparisons)
    assert not tick(pending.cursor).run_requests  # applied: nothing more to do
    # A changed label is new again.
    store.upsert_human_labels(Home.from_env(), label_rows([(comparisons[0], comparisons[0]["candidate_y_id"])]))
    [again] = tick(pending.cursor).run_requests
    assert again.run_key != request.run_key


def test_the_people_decide_by_majority_of_each_labellers_newest_label():
    from pref_pipeline.human_pairs import decisions

    comparisons = {"cmp-a": ("x1", "y1"), "cmp-b": ("x2", "y2"), "cmp-c": ("x3", "y3"), "cmp-d": ("x4", "y4")}
    rows = [  # (comparison, labeller, winner, day)
        ("cmp-a", "ana", "y1", 1), ("cmp-a", "ana", "x1", 2), ("cmp-a", "ben", "x1", 1),  # ana changed her mind: x1
        ("cmp-b", "ana", "x2", 1), ("cmp-b", "ben", "y2", 1),  # split evenly: no decision
        ("cmp-c", "ana", None, 1), ("cmp-c", "ben", None, 1),  # every label a tie
        ("cmp-d", "ana", "x4", 1), ("cmp-d", "ben", None, 1), ("cmp-d", "cyd", "other", 1)]  # a tie abstains
    labels = pd.DataFrame([{"label_id": f"h{i}", "comparison_id": c, "labeller": who, "human_winner_id": winner,
                            "labelled_at": LABELLED_AT + timedelta(days=d)} for i, (c, who, winner, d) in enumerate(rows)])
    found = decisions(labels, comparisons)
    assert (found["cmp-a"].winner, found["cmp-a"].labellers) == ("x1", ("ana", "ben"))
    assert not found["cmp-b"].decided and found["cmp-b"].labellers == ("ana", "ben")
    assert found["cmp-c"].tie and found["cmp-c"].winner is None
    assert (found["cmp-d"].winner, found["cmp-d"].labellers) == ("x4", ("ana", "ben"))  # "other" names neither
