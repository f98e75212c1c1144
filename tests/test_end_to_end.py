"""The whole pipeline through the real Dagster, DuckDB, GX and the official SDKs over real HTTP.

The fake server's default judge prefers the longer response (by characters) in either order, so
the expected dataset is known: one pair per comparison of unequal-length candidates, the longer
one chosen.
"""

from __future__ import annotations

import itertools
import json
from datetime import datetime
from pathlib import Path

import pytest

from pref_pipeline.judging import fingerprint_for
from pref_pipeline.judging.prompts import VERDICT_SCHEMA
from pref_pipeline.paths import Home
from tests.fakes import FakeLLMServer, default_judge
from tests.helpers import SAMPLE_PROMPTS, materialize, pipeline_config, read_jsonl, strong_and_weak, table_rows

SEED_FIELDS = ["prompt", "chosen", "rejected", "generation_method", "judge_model_id", "criteria"]


def config_for(provider: str, base_url: str, prompts_file: Path, **extra):
    return pipeline_config(prompts_file, base_url, generators=strong_and_weak(provider),
                           judges=[{"model": f"{provider}:judge-1", "criteria": "helpfulness_and_clarity"}],
                           **{"candidates_per_prompt": 3, **extra})


def check_dataset(config, provider: str) -> list[dict]:
    """Every exported row, field by field, against the candidates and the known judge policy."""
    home = Home.from_env()
    rows = read_jsonl(home.exports / "preference_pairs.jsonl")
    candidates = {c["candidate_id"]: c for c in table_rows("candidates")}
    by_prompt: dict[str, list[dict]] = {}
    for c in candidates.values():
        by_prompt.setdefault(c["prompt_id"], []).append(c)
    expected = {
        frozenset((x["candidate_id"], y["candidate_id"]))
        for group in by_prompt.values()
        for x, y in itertools.combinations(group, 2)
        if len(x["text"]) != len(y["text"])
    }
    assert len(candidates) == len(SAMPLE_PROMPTS) * 3
    assert expected, "the fake generator should give candidates of different lengths"
    assert {frozenset((r["chosen_candidate_id"], r["rejected_candidate_id"])) for r in rows} == expected

    prompts = {p["id"]: p for p in SAMPLE_PROMPTS}
    fingerprint = fingerprint_for(config.judges[0])
    for row in rows:
        assert list(row)[: len(SEED_FIELDS)] == SEED_FIELDS or set(SEED_FIELDS) <= set(row)
        chosen, rejected = candidates[row["chosen_candidate_id"]], candidates[row["rejected_candidate_id"]]
        assert row["prompt"] == prompts[row["prompt_id"]]["prompt"]
        assert row["category"] == prompts[row["prompt_id"]]["category"]
        assert row["chosen"] == chosen["text"] and row["rejected"] == rejected["text"]
        assert len(row["chosen"]) > len(row["rejected"])  # the fake judge prefers the longer one
        assert row["generation_method"] == "sampling" and row["label_source"] == "judge"  # the strategy's method
        assert row["judge_model_id"] == "judge-1"
        assert row["criteria"] == "helpfulness_and_clarity"
        assert row["judge_fingerprint"] == fingerprint
        # openai: judges ask for logprobs, and the label's probability (the fake's 0.9) is the confidence;
        # anthropic returns none, so the judge's stated 0.8 is.
        assert row["confidence"] == pytest.approx(0.9 if provider == "openai" else 0.8)
        assert row["chosen_model"] == chosen["generator_model"]
        assert row["chosen_model"] in {f"{provider}:gen-strong", f"{provider}:gen-weak"}
        sampling = json.loads(row["chosen_sampling"])
        assert isinstance(sampling["seed"], int) and sampling["max_tokens"] == 200
        if provider == "openai":
            assert sampling["temperature"] == (0.2 if row["chosen_model"].endswith("strong") else 1.0)
        # Swap consistency: when the chosen one was shown first it got "A", when second "B".
        chosen_first = chosen["candidate_index"] < rejected["candidate_index"]
        assert (row["verdict_ab"], row["verdict_ba"]) == (("A", "B") if chosen_first else ("B", "A"))
        assert row["reasoning"]
        datetime.fromisoformat(row["judged_at"].replace("Z", "+00:00"))
    return rows


def check_audit(rows: list[dict]) -> dict:
    audit = json.loads((Home.from_env().reports / "audit.json").read_text())
    assert audit["pairs"]["kept"] == len(rows)
    assert audit["length_bias"]["pct_longer_chosen"] == 1.0  # a length-only judge, caught
    assert audit["length_bias"]["flagged"] is True
    assert audit["position_bias"]["consistency_rate"] == 1.0
    assert any("length bias" in flag for flag in audit["flags"])
    assert "Length bias" in (Home.from_env().reports / "audit.md").read_text()
    return audit


def test_openai_provider_end_to_end(home, prompts_file):
    with FakeLLMServer() as server:
        config = config_for("openai", server.openai_base_url, prompts_file)
        result = materialize(config)
        assert result.success
        rows = check_dataset(config, "openai")
        check_audit(rows)
        judge_calls = [r for r in server.requests if r["body"]["model"] == "judge-1"]
        generation_calls = [r for r in server.requests if r["body"]["model"].startswith("gen-")]
    assert len(generation_calls) == 9
    assert len(judge_calls) == 2 * 3 * 3  # 3 pairs per prompt, both orders
    fmt = judge_calls[0]["body"]["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["schema"] == VERDICT_SCHEMA
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks == {"prompts_gate": True, "candidates_gate": True, "judgments_gate": True,
                      "preference_pairs_gate": True, "judge_is_current": True}


def test_anthropic_provider_end_to_end(home, prompts_file):
    with FakeLLMServer() as server:
        config = config_for("anthropic", server.anthropic_base_url, prompts_file)
        result = materialize(config)
        assert result.success
        rows = check_dataset(config, "anthropic")
        check_audit(rows)
        judge_calls = [r for r in server.requests if r["body"]["model"] == "judge-1"]
    assert len(judge_calls) == 18
    body = judge_calls[0]["body"]
    assert body["output_config"]["format"] == {"type": "json_schema", "schema": VERDICT_SCHEMA}
    assert body["system"] and body["max_tokens"] == 512


def test_unparseable_verdicts_are_recorded_retried_and_never_read_as_a(home, prompts_file):
    """A judge that answers garbage on the first try of each request: every verdict is retried."""
    seen: set[str] = set()

    def flaky(info):
        key = info.body["messages"][-1]["content"] if isinstance(info.body.get("messages"), list) else ""
        if key not in seen:
            seen.add(key)
            return "I like A. Definitely A-level work, but B is also fine."  # no verdict in it
        return default_judge(info)

    with FakeLLMServer(judge_fn=flaky) as server:
        config = config_for("openai", server.openai_base_url, prompts_file)
        assert materialize(config).success
        temperatures = [r["body"]["temperature"] for r in server.requests if r["body"]["model"] == "judge-1"]
    judgments = table_rows("judgments")
    assert len(judgments) == 18
    assert all(j["attempts"] == 2 and j["parse_status"] == "ok" for j in judgments)
    assert all(json.loads(j["failed_outputs"]) == ["I like A. Definitely A-level work, but B is also fine."]
               for j in judgments)
    # The greedy judge's retry samples, with another seed, so it does not repeat itself.
    assert sorted(temperatures) == [0.0] * 18 + [0.7] * 18
    check_dataset(config, "openai")


def test_judge_that_never_parses_blocks_the_export(home, prompts_file):
    """Unparseable everywhere: the gate fails, nothing is exported, the verdicts stay as evidence."""
    with FakeLLMServer(judge_fn=lambda info: "A or B, hard to say") as server:
        config = config_for("openai", server.openai_base_url, prompts_file)
        result = materialize(config)
    assert not result.success
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks == {"prompts_gate": True, "candidates_gate": True, "judgments_gate": True,
                      "preference_pairs_gate": False, "judge_is_current": True}
    assert [e.step_key for e in result.all_events if e.is_step_failure] == ["batch_published"]
    # The roll-ups still run, over the batches that passed: none, so the dataset is empty.
    assert not (Home.from_env().exports / "batches").exists()
    assert (Home.from_env().exports / "preference_pairs.jsonl").read_text() == ""
    judgments = table_rows("judgments")
    assert {j["parse_status"] for j in judgments} == {"unparseable"}
    assert all(j["preference"] is None for j in judgments)
    assert all(j["attempts"] == 3 for j in judgments)  # 1 + parse_retries (2)
    assert {c["status"] for c in table_rows("comparisons")} == {"unparseable"}
