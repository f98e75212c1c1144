"""A faulty API through the real CLI: a quarter of all calls fail (429, 500, 503, a timeout, a closed
connection) and the judge answers 15 % of verdicts with prose. The run completes; every prompt ends
with its pair or a recorded reason; no pair is duplicated; no unparseable verdict is counted."""

from __future__ import annotations

import json

import pytest

from pref_pipeline.judging.parsing import parse_verdict
from tests.cli_runs import (
    assert_outputs_whole, cli_env, exported_pairs, prompt_rows, record_figures, run_cli, tables, write_config,
)
from tests.fakes import JUDGE_PROSE, FakeLLMServer
from tests.fakes.llm_server import FAULT_KINDS
from tests.helpers import write_prompts

pytestmark = pytest.mark.slow

PROMPTS = 50
FAULT_RATE = 0.25
PROSE_RATE = 0.15


def test_a_quarter_of_calls_failing_and_a_chatty_judge_end_in_pairs_or_recorded_reasons(home, tmp_path):
    with FakeLLMServer(latency_s=0.02, fault_rate=FAULT_RATE, judge_prose_rate=PROSE_RATE, fault_seed=14) as server:
        write_prompts(tmp_path / "prompts.jsonl", prompt_rows(PROMPTS))
        # A timeout fault hangs for 30 s: the client gives up after timeout_s and retries (max_retries: 4, the default).
        config = write_config(tmp_path / "pipeline.yaml", server.openai_base_url, ["prompts.jsonl"], concurrency=8,
                              extra_model="    timeout_s: 2\n")
        result = run_cli(config, cli_env(home))
        faults = dict(server.faults)
        calls = server.count("/chat/completions")
    assert result.returncode == 0, result.stderr[-4000:]
    assert "Traceback" not in result.stderr

    # Every kind of fault was injected, many times.
    assert set(faults) == {str(kind) for kind in FAULT_KINDS} | {"prose"}, faults
    assert sum(n for kind, n in faults.items() if kind != "prose") >= 0.2 * calls

    data = tables(home)
    prompts, candidates, judgments = data["prompts"], data["candidates"], data["judgments"]
    comparisons, quarantine = data["comparisons"], data["quarantine"]
    pairs = exported_pairs(home)
    assert len(prompts) == PROMPTS and len(candidates) == 2 * PROMPTS

    # No pair duplicated, in the table or the export; the export is what the table kept.
    pair_ids = [p["pair_id"] for p in pairs]
    assert len(pair_ids) == len(set(pair_ids)) == len(data["preference_pairs"]) > 0
    assert set(pair_ids) == set(data["preference_pairs"]["pair_id"])
    assert len({(p["prompt_id"], p["chosen_candidate_id"], p["rejected_candidate_id"]) for p in pairs}) == len(pairs)
    assert judgments["judgment_id"].is_unique and candidates["candidate_id"].is_unique

    # Every prompt ends with its pair or a recorded reason.
    paired = {p["prompt_id"] for p in pairs}
    reasons = quarantine.groupby("prompt_id")["reason"].apply(sorted).to_dict()
    unaccounted = [p for p in prompts["prompt_id"] if p not in paired and p not in reasons]
    assert not unaccounted, unaccounted
    for status in set(comparisons["status"]) - {"consistent"}:  # each comparison that gave no pair says why
        lost = comparisons.loc[comparisons["status"] == status, "comparison_id"]
        assert set(lost) <= set(quarantine.loc[quarantine["reason"] == status, "comparison_id"]), status

    # No unparseable verdict counted: both orders of every exported pair parsed, and read the same again.
    by_comparison = judgments.groupby("comparison_id")
    prose_retried = 0
    for pair in pairs:
        rows = by_comparison.get_group("cmp-" + pair["pair_id"].removeprefix("pair-"))
        assert len(rows) == 2 and rows["error"].isna().all()
        assert (rows["parse_status"] != "unparseable").all()
        for row in rows.itertuples():
            again = parse_verdict(row.raw_output)
            assert again.usable and again.preference == row.preference
            assert row.raw_output != JUDGE_PROSE
            prose_retried += JUDGE_PROSE in json.loads(row.failed_outputs)
    assert prose_retried > 0  # some exported pairs came from a verdict asked again after prose
    unparseable = judgments[judgments["parse_status"] == "unparseable"]
    assert set(unparseable["comparison_id"]).isdisjoint("cmp-" + p.removeprefix("pair-") for p in pair_ids)

    failed_generation = int(candidates["error"].notna().sum())
    failed_judge = int(judgments["error"].notna().sum())
    whole = assert_outputs_whole(home)
    injected = sum(n for kind, n in faults.items() if kind != "prose")
    record_figures("api_faults", {
        "prompts": PROMPTS,
        "http_requests": calls,
        "faults_injected": injected,
        "faults_by_kind": faults,
        "calls_failed_after_retries": failed_generation + failed_judge,  # recorded rows, quarantined with a reason
        "faults_survived": injected - (failed_generation + failed_judge) * 5,  # a failed call used 1 + 4 retries
        "prose_verdicts_injected": faults.get("prose", 0),
        "verdicts_unparseable_after_parse_retries": len(unparseable),
        "pairs_exported": len(pairs),
        "prompts_with_a_pair": len(paired),
        "prompts_with_a_recorded_reason_only": len(set(reasons) - paired),
        "comparisons_by_status": comparisons["status"].value_counts().to_dict(),
        "duplicated_pairs": len(pair_ids) - len(set(pair_ids)),
        "unparseable_verdicts_counted": 0,
        "files_checked_whole": whole,
    })
