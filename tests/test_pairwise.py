"""Swap-consistent pairwise judging: combining the two orders, and one judge's retry loop."""

from __future__ import annotations

import asyncio
import json

import pytest

from pref_pipeline.config import judge_spec
from pref_pipeline.judging import fingerprint_for
from pref_pipeline.judging.pairwise import JudgeItem, PairwiseJudge, combine_orders
from pref_pipeline.judging.retries import RETRY_TEMPERATURE
from pref_pipeline.judging.prompts import JUDGE_SYSTEM_PROMPT, VERDICT_SCHEMA
from pref_pipeline.providers.base import ChatRequest, ChatResponse, Provider

GARBAGE = "I cannot decide, both have merits."


class QueueProvider(Provider):
    """Answers each request with the next text of a queue and records what it was asked."""

    def __init__(self, spec, texts, *, finish_reason="stop"):
        super().__init__(spec)
        self.texts = list(texts)
        self.requests: list[ChatRequest] = []
        self.finish_reason = finish_reason

    async def complete(self, request: ChatRequest) -> ChatResponse:
        self.requests.append(request)
        if not self.texts:
            raise AssertionError("the judge asked for more answers than the test queued")
        return ChatResponse(text=self.texts.pop(0), model="served-judge", input_tokens=10, output_tokens=5,
                            finish_reason=self.finish_reason, latency_s=0.25)


def verdict(pref: str, confidence: float = 0.8) -> str:
    return json.dumps({"preference": pref, "confidence": confidence, "reasoning": f"{pref} is better"})


def make_judge(texts, **spec_fields):
    spec = judge_spec(model="openai:judge", **spec_fields)
    provider = QueueProvider(spec, texts)
    return PairwiseJudge(spec, provider), provider


# --------------------------------------------------------------------------- combine_orders

@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        ("x", "x", ("consistent", "x")),
        ("y", "y", ("consistent", "y")),
        ("tie", "tie", ("tie", None)),
        ("x", "tie", ("inconsistent", None)),
        ("tie", "y", ("inconsistent", None)),
        ("x", "y", ("inconsistent", None)),
        ("y", "x", ("inconsistent", None)),
        (None, "x", ("unparseable", None)),
        ("x", None, ("unparseable", None)),
        (None, None, ("unparseable", None)),
        ("tie", None, ("unparseable", None)),
    ],
)
def test_combine_orders(first, second, expected):
    assert combine_orders(first, second) == expected


# --------------------------------------------------------------------------- judge_order

def test_valid_first_answer_is_one_attempt():
    judge, provider = make_judge([verdict("B", 0.9)])
    result = asyncio.run(judge.judge_order("Q?", "text x", "text y", "xy", seed=11))
    assert result.attempts == 1
    assert result.failed_outputs == []
    assert result.verdict.preference == "B"
    assert result.preferred == "y"  # "xy": B is candidate y
    assert result.served_model == "served-judge"
    assert (result.input_tokens, result.output_tokens) == (10, 5)
    request = provider.requests[0]
    assert request.seed == 11
    assert request.temperature == 0.0
    assert request.system == JUDGE_SYSTEM_PROMPT
    assert request.json_schema == VERDICT_SCHEMA
    assert "<response_a>\ntext x\n</response_a>" in request.user
    assert "<response_b>\ntext y\n</response_b>" in request.user


def test_unparseable_then_valid_retries_with_new_seed_and_sampling():
    judge, provider = make_judge([GARBAGE, verdict("A")], temperature=0.0, parse_retries=2)
    result = asyncio.run(judge.judge_order("Q?", "x text", "y text", "xy", seed=100))
    assert result.attempts == 2
    assert result.failed_outputs == [GARBAGE]
    assert result.raw_output == verdict("A")
    assert result.verdict.preference == "A"
    assert result.verdict.status == "ok"
    assert result.preferred == "x"
    assert len(provider.requests) == 2
    first, retry = provider.requests
    assert first.seed == 100 and first.temperature == 0.0
    assert retry.seed != first.seed
    assert retry.temperature == RETRY_TEMPERATURE == 0.7
    assert retry.user == first.user  # same prompt, only sampling changes
    assert (result.input_tokens, result.output_tokens) == (20, 10)  # both calls counted
    assert result.latency_s == pytest.approx(0.5)


def test_retry_of_sampling_judge_keeps_its_temperature():
    judge, provider = make_judge([GARBAGE, verdict("B")], temperature=1.1)
    asyncio.run(judge.judge_order("Q?", "x", "y", "xy", seed=5))
    first, retry = provider.requests
    assert first.temperature == retry.temperature == 1.1
    assert retry.seed != first.seed


def test_configured_seed_overrides_the_per_pair_seed():
    judge, provider = make_judge([verdict("A")], seed=7)
    asyncio.run(judge.judge_order("Q?", "x", "y", "xy", seed=99))
    assert provider.requests[0].seed == 7


@pytest.mark.parametrize("retries", [0, 1, 3])
def test_always_unparseable(retries):
    outputs = [f"{GARBAGE} ({i})" for i in range(retries + 1)]
    judge, provider = make_judge(outputs, parse_retries=retries)
    result = asyncio.run(judge.judge_order("Q?", "x", "y", "xy", seed=1))
    assert result.verdict.status == "unparseable"
    assert result.verdict.preference is None
    assert result.preferred is None
    assert result.attempts == retries + 1
    assert len(provider.requests) == retries + 1
    assert len({r.seed for r in provider.requests}) == retries + 1  # every attempt a different seed
    # Every failed output is kept: the last as raw_output, the earlier ones in failed_outputs.
    assert result.raw_output == outputs[-1]
    assert result.failed_outputs == outputs[:-1]


def test_unparseable_is_never_read_as_a():
    judge, _ = make_judge(["A or B", "Answer A is long. Assistant A.", "PREFERENCE: C"], parse_retries=2)
    result = asyncio.run(judge.judge_order("Q?", "x", "y", "xy"))
    assert result.verdict.preference != "A"
    assert result.preferred is None


def test_order_yx_maps_a_to_candidate_y():
    judge, provider = make_judge([verdict("A")])
    result = asyncio.run(judge.judge_order("Q?", "candidate x text", "candidate y text", "yx", seed=3))
    assert result.order == "yx"
    assert result.verdict.preference == "A"
    assert result.preferred == "y"
    user = provider.requests[0].user
    assert "<response_a>\ncandidate y text\n</response_a>" in user
    assert "<response_b>\ncandidate x text\n</response_b>" in user


@pytest.mark.parametrize(("order", "label", "preferred"),
                         [("xy", "A", "x"), ("xy", "B", "y"), ("yx", "B", "x"), ("xy", "tie", "tie"), ("yx", "tie", "tie")])
def test_preferred_mapping(order, label, preferred):
    judge, _ = make_judge([verdict(label)])
    assert asyncio.run(judge.judge_order("Q?", "x", "y", order)).preferred == preferred


def test_truncated_answer_from_token_limit_is_usable():
    spec = judge_spec(model="openai:judge")
    provider = QueueProvider(spec, ['{"preference": "B", "confidence": 0.7, "reasoning": "Resp'], finish_reason="length")
    result = asyncio.run(PairwiseJudge(spec, provider).judge_order("Q?", "x", "y", "xy"))
    assert result.attempts == 1
    assert (result.verdict.preference, result.verdict.status) == ("B", "truncated")


def test_judge_fingerprint_is_stable_and_distinguishes_judges():
    a = judge_spec(model="openai:judge")
    assert fingerprint_for(a) == fingerprint_for(judge_spec(model="openai:judge"))
    assert fingerprint_for(a) != fingerprint_for(judge_spec(model="openai:other"))
    judge, _ = make_judge([])
    assert judge.fingerprint == fingerprint_for(a)


# --------------------------------------------------------------------------- judge_many (rounds)

class RoundsProvider(QueueProvider):
    """Records the size of every complete_many call (one round; one batch in batch mode)."""

    def __init__(self, spec, texts):
        super().__init__(spec, texts)
        self.rounds: list[int] = []

    async def complete_many(self, requests, *, label=None):
        self.rounds.append(len(requests))
        return await super().complete_many(requests, label=label)


def test_judge_many_retries_only_the_unparseable_in_later_rounds():
    from pref_pipeline.judging.pairwise import JudgeItem

    spec = judge_spec(model="openai:judge", parse_retries=2)
    # round 1: item 0 ok, item 1 garbage, item 2 garbage; round 2: item 1 ok, item 2 garbage; round 3: item 2 ok
    provider = RoundsProvider(spec, [verdict("A"), GARBAGE, GARBAGE + "!", verdict("B"), GARBAGE + "?", verdict("tie")])
    items = [JudgeItem("Q?", "x", "y", "xy", seed=10), JudgeItem("Q?", "x", "y", "yx", seed=20),
             JudgeItem("Q2?", "x", "y", "xy", seed=30)]
    outcomes = asyncio.run(PairwiseJudge(spec, provider).judge_many(items))
    assert provider.rounds == [3, 2, 1]
    first, second, third = (o.value for o in outcomes)
    assert (first.attempts, first.failed_outputs, first.verdict.preference) == (1, [], "A")
    assert (second.attempts, second.failed_outputs, second.preferred) == (2, [GARBAGE], "x")  # "yx": B is x
    assert (third.attempts, third.failed_outputs, third.verdict.preference) == (3, [GARBAGE + "!", GARBAGE + "?"], "tie")
    assert (third.input_tokens, third.output_tokens) == (30, 15)
    retry_seeds = [r.seed for r in provider.requests[3:]]
    assert retry_seeds == [21, 31, 32] and {r.temperature for r in provider.requests[3:]} == {RETRY_TEMPERATURE}


def test_judge_many_transport_error_is_an_outcome_and_judge_order_raises_it():
    from pref_pipeline.judging.pairwise import JudgeItem
    from pref_pipeline.providers.base import ProviderError

    spec = judge_spec(model="openai:judge")
    judge, provider = make_judge([])  # an empty queue: every call fails
    [outcome] = asyncio.run(judge.judge_many([JudgeItem("Q?", "x", "y", "xy")]))
    assert not outcome.ok and "more answers than the test queued" in outcome.error
    with pytest.raises(ProviderError):
        asyncio.run(judge.judge_order("Q?", "x", "y", "xy"))
    assert spec.parse_retries == 2


def test_a_reasoning_cap_is_written_into_the_verdict_schema_and_the_fingerprint_only_when_set():
    plain, capped = judge_spec(model="openai:j"), judge_spec(model="openai:j", reasoning_max_chars=60)
    assert plain.verdict_schema() is VERDICT_SCHEMA and "maxLength" not in json.dumps(VERDICT_SCHEMA)
    assert capped.verdict_schema()["properties"]["reasoning"] == {"type": "string", "maxLength": 60}
    assert capped.verdict_schema()["required"] == VERDICT_SCHEMA["required"]
    assert fingerprint_for(plain) != fingerprint_for(capped)
    assert judge_spec(model="openai:j", verdict_format="lines").verdict_schema() is None
    request = PairwiseJudge(capped, provider=QueueProvider(capped, [])).base_request(JudgeItem("Q?", "x", "y", "xy"))
    assert request.json_schema["properties"]["reasoning"]["maxLength"] == 60
