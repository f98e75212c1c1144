"""The pairs step and a batch's publication as plain functions (``pref_pipeline.pairing``): no Dagster.

Candidates and verdicts come from the fake OpenAI-compatible server through the core functions; the step then
makes the pairs, runs the gate, fills quarantine and writes the batch's audit, and the export follows its verdict.
"""

from __future__ import annotations

import json

import pytest

from pref_pipeline import schema
from pref_pipeline.batches import UnknownBatch, load_batch
from pref_pipeline.config import parse_config
from pref_pipeline.pairing import NotPublished, make_pairs, publish_batch, publishable
from pref_pipeline.paths import Home
from pref_pipeline.quarantine import PAIRS_GATE_STAGE
from tests.helpers import generate, judge
from tests.fakes import FakeLLMServer

BATCH = "prompts"


def config_for(base_url: str, prompts_file, **extra):
    return parse_config({
        "prompts": [{"path": str(prompts_file)}],
        "generators": [{"model": "openai:gen-a", "base_url": base_url, "temperature": 0.3},
                       {"model": "openai:gen-b", "base_url": base_url, "temperature": 0.9}],
        "candidates_per_prompt": 2,
        "judges": [{"model": "openai:judge", "base_url": base_url}],
        **extra,
    })


def pairs_step(config, home: Home):
    batch = load_batch(config, BATCH)
    candidates = generate(batch.prompts, config).candidates
    judgments = judge(batch.prompts, candidates, config).judgments
    return make_pairs(batch.prompts, batch.rejected, candidates, judgments, config, home.batch_reports(BATCH),
                      batch=BATCH)


def test_a_good_batch_is_paired_audited_and_published(home, prompts_file):
    with FakeLLMServer() as server:
        config = config_for(server.openai_base_url, prompts_file)
        step = pairs_step(config, Home.from_env().ensure())
    assert step.published and step.cause is None and step.quarantined_by_gate == 0
    assert len(step.pairs) == step.audit["pairs"]["kept"] > 0
    for frame in (step.pairs, step.comparisons):
        assert set(frame[schema.BATCH_COLUMN]) == {BATCH}  # every stored row names its batch
    assert json.loads(step.audit_json.read_text())["pairs"]["kept"] == len(step.pairs)
    assert step.audit_md.exists() and step.audit_json.parent == Home.from_env().batch_reports(BATCH)
    assert step.seconds >= step.gate_seconds > 0

    published = publish_batch(step.pairs, step.quarantine, config, Home.from_env(), BATCH)
    assert published.left_out == 0 and len(published.pairs) == len(step.pairs)
    lines = published.jsonl.read_text(encoding="utf-8").splitlines()
    assert {json.loads(line)["pair_id"] for line in lines} == set(step.pairs["pair_id"])


def test_a_blocked_batch_is_quarantined_with_its_cause_and_never_published(home, prompts_file):
    """A position-biased judge (the first response shown always wins): no pair, the gate blocks the batch; the
    cause is said in the user's terms, in the step's result and the batch's audit, and the export refuses."""
    first_wins = lambda info: {"preference": "A", "confidence": 0.9, "reasoning": "The first."}  # noqa: E731
    with FakeLLMServer(judge_fn=first_wins) as server:
        config = config_for(server.openai_base_url, prompts_file)
        step = pairs_step(config, Home.from_env().ensure())
    assert not step.published and step.pairs.empty
    assert step.cause.startswith("pairs 0 < gates.min_pairs 1")
    assert "position consistency 0 %" in step.cause
    assert step.audit["flags"][0].startswith(f"batch '{BATCH}' not published: {step.cause}")
    assert step.audit["batches"]["by_batch"][0]["status"] == "blocked"
    gate_rows = step.quarantine[step.quarantine["stage"] == PAIRS_GATE_STAGE]
    assert len(gate_rows) == step.quarantined_by_gate == 1  # no pair: one row for the batch
    assert set(gate_rows[schema.BATCH_COLUMN]) == {BATCH}
    with pytest.raises(NotPublished, match="the pairs gate rejected this batch"):
        publish_batch(step.pairs, step.quarantine, config, Home.from_env(), BATCH)
    assert not Home.from_env().batch_exports(BATCH).exists()


def test_publishable_leaves_out_what_the_rebalancing_set_aside(home, prompts_file):
    with FakeLLMServer() as server:  # the fake judge prefers the longer response: rebalancing drops some pairs
        config = config_for(server.openai_base_url, prompts_file, export={"rebalance_length": True},
                            gates={"min_pairs": 0})
        step = pairs_step(config, Home.from_env().ensure())
    assert step.published and step.left_out > 0
    kept = publishable(step.pairs, step.quarantine, config)
    assert len(kept) == len(step.pairs) - step.left_out
    strict = config.model_copy(update={"gates": config.gates.model_copy(update={"min_pairs": len(step.pairs)})})
    with pytest.raises(NotPublished, match="length rebalancing left"):
        publishable(step.pairs, step.quarantine, strict)


def test_a_batch_the_configuration_does_not_name_is_refused(prompts_file):
    config = parse_config({"prompts": [{"path": str(prompts_file)}]})
    with pytest.raises(UnknownBatch, match="no prompt batch 'gone'.*batches: prompts"):
        load_batch(config, "gone")

