"""The fake LLM server speaks OpenAI Chat Completions and Anthropic Messages to the real SDKs; the in-process fake
provider answers what the server answers, behind the pipeline's own response cache."""

from __future__ import annotations

import asyncio
import json
import time

import anthropic
import httpx
import openai
import pytest

from pref_pipeline.judging.prompts import JUDGE_SYSTEM_PROMPT, PAIRWISE_TEMPLATE, VERDICT_SCHEMA, render_judge_prompt
from pref_pipeline.sources import load_prompts
from tests.fakes import JUDGE_PROSE, FakeLLMServer, JudgeInfo
from tests.fakes.in_process import FakeLLM
from tests.helpers import generate, judge, pipeline_config, strong_and_weak

SHORT, LONG = "Tilt.", "The axial tilt of the Earth changes the angle of sunlight over the year."


def judge_prompt(response_a: str, response_b: str) -> str:
    return render_judge_prompt(
        PAIRWISE_TEMPLATE, question="What causes the seasons?", response_a=response_a, response_b=response_b,
        criteria="helpfulness",
    )


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


@pytest.fixture
def server():
    with FakeLLMServer() as srv:
        yield srv


def openai_client(srv: FakeLLMServer, **kwargs) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.openai_base_url, api_key="test", **kwargs)


def anthropic_client(srv: FakeLLMServer, **kwargs) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=srv.anthropic_base_url, api_key="test", **kwargs)


# ----- OpenAI Chat Completions -----

def test_openai_plain_generation(server):
    completion = openai_client(server).chat.completions.create(
        model="gen-1", messages=[{"role": "system", "content": "Be brief."}, *user("What is DNS?")],
        temperature=0.7, seed=3,
    )
    text = completion.choices[0].message.content
    assert completion.object == "chat.completion" and completion.model == "gen-1"
    assert completion.choices[0].message.role == "assistant" and completion.choices[0].finish_reason == "stop"
    assert text.startswith("Answer (gen-1, t=0.7, seed=3): ")
    usage = completion.usage
    assert usage.prompt_tokens == 5 and usage.completion_tokens == len(text.split())
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    [recorded] = server.requests
    assert recorded["path"] == "/v1/chat/completions" and recorded["body"]["seed"] == 3
    assert server.count("/chat/completions") == 1


def test_openai_generation_is_deterministic_and_varies_with_seed(server):
    client = openai_client(server)

    def generate(seed: int) -> str:
        completion = client.chat.completions.create(model="g", messages=user("Explain tides."), seed=seed)
        return completion.choices[0].message.content

    assert generate(1) == generate(1)
    assert len({len(generate(seed)) for seed in range(8)}) > 1


def test_openai_max_tokens_truncates(server):
    completion = openai_client(server).chat.completions.create(model="g", messages=user("Explain tides."), max_tokens=3)
    assert completion.choices[0].finish_reason == "length"
    assert len(completion.choices[0].message.content.split()) == 3


def test_openai_judge_json_schema(server):
    response_format = {
        "type": "json_schema", "json_schema": {"name": "verdict", "schema": VERDICT_SCHEMA, "strict": True},
    }
    client = openai_client(server)
    verdicts = []
    for a, b in ((LONG, SHORT), (SHORT, LONG), (SHORT, SHORT)):
        completion = client.chat.completions.create(
            model="judge-1", messages=[{"role": "system", "content": JUDGE_SYSTEM_PROMPT}, *user(judge_prompt(a, b))],
            response_format=response_format,
        )
        verdict = json.loads(completion.choices[0].message.content)
        assert isinstance(verdict, dict) and verdict["confidence"] == 0.8 and verdict["reasoning"]
        verdicts.append(verdict["preference"])
    assert verdicts == ["A", "B", "tie"]


def test_openai_judge_json_object_and_plain_text(server):
    client = openai_client(server)
    completion = client.chat.completions.create(
        model="j", messages=user(judge_prompt(SHORT, LONG)), response_format={"type": "json_object"}
    )
    assert json.loads(completion.choices[0].message.content)["preference"] == "B"
    completion = client.chat.completions.create(model="j", messages=user(judge_prompt(LONG, SHORT)))
    assert completion.choices[0].message.content.startswith("PREFERENCE: A\nCONFIDENCE: high\nREASONING: ")


def test_judge_fn_sees_the_tagged_parts_and_str_is_verbatim():
    seen: list[JudgeInfo] = []

    def judge(info: JudgeInfo) -> str:
        seen.append(info)
        return "not { json"

    response_a = "Closing tags </response_a> inside a response are escaped and restored."
    with FakeLLMServer(judge_fn=judge) as srv:
        completion = openai_client(srv).chat.completions.create(
            model="j", messages=user(judge_prompt(response_a, LONG)), response_format={"type": "json_object"}
        )
    assert completion.choices[0].message.content == "not { json"
    [info] = seen
    assert (info.question, info.response_a, info.response_b) == ("What causes the seasons?", response_a, LONG)
    assert info.structured and info.protocol == "openai" and info.body["model"] == "j"


def test_models_list(server):
    assert [m.id for m in openai_client(server).models.list()] == ["fake-model"]
    assert [m.id for m in anthropic_client(server).models.list()] == ["fake-model"]


# ----- Anthropic Messages -----

def test_anthropic_plain_generation(server):
    message = anthropic_client(server).messages.create(
        model="claude-fake", max_tokens=200, system=[{"type": "text", "text": "Be brief."}],
        messages=user("What is DNS?"), extra_body={"temperature": 0.2},  # anthropic 2.x has no temperature kwarg
    )
    assert message.id.startswith("msg_") and message.type == "message" and message.role == "assistant"
    assert message.model == "claude-fake" and message.stop_reason == "end_turn" and message.stop_sequence is None
    assert message.content[0].type == "text" and message.content[0].text.startswith("Answer (claude-fake, t=0.2")
    assert message.usage.input_tokens == 5 and message.usage.output_tokens == len(message.content[0].text.split())
    assert server.count("/v1/messages") == 1


def test_anthropic_max_tokens_truncates(server):
    message = anthropic_client(server).messages.create(model="c", max_tokens=2, messages=user("Explain tides."))
    assert message.stop_reason == "max_tokens" and len(message.content[0].text.split()) == 2


def test_anthropic_judge_with_output_config(server):
    client = anthropic_client(server)
    message = client.messages.create(
        model="judge-1", max_tokens=512, system=JUDGE_SYSTEM_PROMPT, messages=user(judge_prompt(SHORT, LONG)),
        output_config={"format": {"type": "json_schema", "schema": VERDICT_SCHEMA}},
    )
    verdict = json.loads(message.content[0].text)
    assert verdict["preference"] == "B" and verdict["confidence"] == 0.8
    assert server.requests[0]["body"]["output_config"]["format"]["schema"] == VERDICT_SCHEMA
    plain = client.messages.create(model="judge-1", max_tokens=512, messages=user(judge_prompt(LONG, SHORT)))
    assert plain.content[0].text.startswith("PREFERENCE: A\n")


def test_invalid_request_is_a_400_in_the_protocol_shape(server):
    response = httpx.post(f"{server.url}/v1/messages", json={"model": "c", "messages": []})
    assert response.status_code == 400
    assert response.json()["error"] == {
        "type": "invalid_request_error", "message": "missing required field(s): max_tokens",
    }
    response = httpx.post(f"{server.url}/v1/chat/completions", content=b"not json")
    assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error"
    assert (server.requests[-1]["path"], server.requests[-1]["body"]) == ("/v1/chat/completions", None)


# ----- fault injection -----

def test_rate_limit_429_is_surfaced_with_retry_after():
    with FakeLLMServer(rpm_limit=1) as srv:
        client = openai_client(srv, max_retries=0)
        client.chat.completions.create(model="g", messages=user("one"))
        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(model="g", messages=user("two"))
        assert 55 <= int(caught.value.response.headers["retry-after"]) <= 60
        assert caught.value.body["code"] == "rate_limit_exceeded"
        with pytest.raises(anthropic.RateLimitError) as caught_a:
            anthropic_client(srv, max_retries=0).messages.create(model="c", max_tokens=5, messages=user("three"))
        assert caught_a.value.body["error"]["type"] == "rate_limit_error"
        assert srv.rate_limited == 2


@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
def test_injected_429_fails_without_retries_and_is_retried(protocol):
    def call(srv: FakeLLMServer, max_retries: int):
        if protocol == "openai":
            return openai_client(srv, max_retries=max_retries).chat.completions.create(model="g", messages=user("hi"))
        client = anthropic_client(srv, max_retries=max_retries)
        return client.messages.create(model="c", max_tokens=50, messages=user("hi"))

    error = openai.RateLimitError if protocol == "openai" else anthropic.RateLimitError
    with FakeLLMServer(fail_plan=[429]) as srv:
        with pytest.raises(error) as caught:
            call(srv, max_retries=0)
        assert caught.value.response.headers["retry-after"] == "0"
        srv.fail_plan = [429]
        assert call(srv, max_retries=2) is not None
        assert len(srv.requests) == 3 and srv.fail_plan == []


def test_500_then_success_with_one_retry():
    with FakeLLMServer(fail_plan=[500]) as srv:
        completion = openai_client(srv, max_retries=1).chat.completions.create(model="g", messages=user("hi"))
        assert completion.choices[0].message.content
        assert srv.count("/chat/completions") == 2
        srv.fail_plan = [503]
        with pytest.raises(anthropic.InternalServerError) as caught:
            anthropic_client(srv, max_retries=0).messages.create(model="c", max_tokens=5, messages=user("hi"))
        assert caught.value.status_code == 503 and caught.value.body["type"] == "error"


def test_timeout_and_garbage_faults():
    with FakeLLMServer(fail_plan=["timeout", "garbage", None]) as srv:
        client = openai_client(srv, max_retries=0, timeout=0.3)
        with pytest.raises(openai.APITimeoutError):
            client.chat.completions.create(model="g", messages=user("hi"))
        with pytest.raises(ValueError):  # the SDK cannot decode the 200 body
            client.chat.completions.create(model="g", messages=user("hi"))
        assert client.chat.completions.create(model="g", messages=user("hi")).choices[0].message.content


def test_a_disconnect_closes_the_connection_mid_answer_and_a_retry_gets_through():
    with FakeLLMServer(fail_plan=["disconnect", "disconnect"]) as srv:
        with pytest.raises(openai.APIConnectionError):
            openai_client(srv, max_retries=0).chat.completions.create(model="g", messages=user("hi"))
        message = anthropic_client(srv, max_retries=1).messages.create(model="c", max_tokens=20, messages=user("hi"))
        assert message.content[0].text and srv.faults == {"disconnect": 2} and len(srv.requests) == 3


def test_random_faults_and_prose_verdicts_at_a_rate_are_counted():
    with FakeLLMServer(fault_rate=1.0, fault_kinds=[503]) as srv:
        client = openai_client(srv, max_retries=0)
        for _ in range(3):
            with pytest.raises(openai.InternalServerError):
                client.chat.completions.create(model="g", messages=user("hi"))
        assert srv.faults == {"503": 3}
        srv.fault_rate = 0.5
        outcomes = []
        for _ in range(40):
            try:
                outcomes.append(bool(client.chat.completions.create(model="g", messages=user("hi"))))
            except openai.InternalServerError:
                outcomes.append(False)
        assert 5 < outcomes.count(False) < 35 and srv.faults["503"] == 3 + outcomes.count(False)
    with FakeLLMServer(judge_prose_rate=1.0) as srv:
        client = openai_client(srv)
        verdict = client.chat.completions.create(model="j", messages=user(judge_prompt(SHORT, LONG)))
        assert verdict.choices[0].message.content == JUDGE_PROSE
        answer = client.chat.completions.create(model="g", messages=user("hi")).choices[0].message.content
        assert answer != JUDGE_PROSE and srv.faults == {"prose": 1}  # generation is never replaced
        srv.reset()
        assert srv.faults == {}


def test_fail_plan_rejects_unknown_entries():
    with pytest.raises(ValueError, match="fail_plan"):
        FakeLLMServer(fail_plan=["slow"])


def test_latency_applies():
    with FakeLLMServer(latency_s=0.05) as srv:
        started = time.perf_counter()
        anthropic_client(srv).messages.create(model="c", max_tokens=5, messages=user("hi"))
        assert time.perf_counter() - started >= 0.05


def test_concurrent_requests_overlap():
    async def run(srv: FakeLLMServer) -> float:
        async with openai.AsyncOpenAI(base_url=srv.openai_base_url, api_key="test", max_retries=0) as client:
            started = time.perf_counter()
            await asyncio.gather(*(
                client.chat.completions.create(model="g", messages=user(f"question {i}")) for i in range(20)
            ))
            return time.perf_counter() - started

    with FakeLLMServer(latency_s=0.3) as srv:
        elapsed = asyncio.run(run(srv))
        assert srv.count("/chat/completions") == 20
    assert 0.3 <= elapsed < 3.0  # serial would take 6 s


def test_settings_can_change_between_runs(server):
    client = openai_client(server)
    server.set_judge_fn(lambda info: {"preference": "tie", "confidence": 0.5, "reasoning": "same"})
    completion = client.chat.completions.create(model="j", messages=user(judge_prompt(LONG, SHORT)))
    assert json.loads(completion.choices[0].message.content)["preference"] == "tie"
    server.set_judge_fn(None)
    server.set_generate_fn(lambda info: f"echo: {info.prompt}")
    assert client.chat.completions.create(model="g", messages=user("ping")).choices[0].message.content == "echo: ping"
    server.reset()
    assert server.requests == [] and server.count("") == 0


# ----- the in-process fake provider -----

@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
def test_the_in_process_fake_answers_what_the_server_answers(home, prompts_file, protocol):
    """The same candidates, verdicts and label probabilities through the SDK and the server as through the
    in-process provider, and the same requests recorded: the answers are decided in one place."""
    def config(base_url=None):
        return pipeline_config(prompts_file, base_url, generators=strong_and_weak(protocol), cache=False,
                               judges=[{"model": f"{protocol}:judge-1"}])

    with FakeLLMServer() as server:
        over_http = config(server.openai_base_url if protocol == "openai" else server.anthropic_base_url)
        prompts = load_prompts(over_http.prompts).prompts
        served = generate(prompts, over_http).candidates
        served_verdicts = judge(prompts, served, over_http).judgments
    fake = FakeLLM()
    candidates = generate(prompts, config(), fake).candidates
    verdicts = judge(prompts, candidates, config(), fake).judgments

    assert candidates["text"].tolist() == served["text"].tolist() and candidates["error"].isna().all()
    assert candidates[["input_tokens", "output_tokens", "finish_reason"]].equals(
        served[["input_tokens", "output_tokens", "finish_reason"]])
    columns = ["preference", "confidence", "label_probability", "raw_output", "parse_status", "attempts"]
    assert len(verdicts) == 6 and verdicts[columns].equals(served_verdicts[columns])
    assert verdicts["label_probability"].notna().all() == (protocol == "openai")  # logprobs from OpenAI only
    def asked(requests):  # in any order: requests in flight together may reach the server in another
        return sorted(json.dumps([r["path"], r["body"]["model"], r["body"]["messages"]]) for r in requests)

    assert len(fake.requests) == 6 + 6 and asked(fake.requests) == asked(server.requests)


def test_the_in_process_fake_sits_behind_the_response_cache(home, prompts_file):
    """A second run asks the fake nothing: the pipeline's cache and ledger are in front of the provider factory."""
    fake = FakeLLM()
    config = pipeline_config(prompts_file)
    prompts = load_prompts(config.prompts).prompts
    first = generate(prompts, config, fake)
    assert len(fake.requests) == 6 and first.usage["api_calls"] == 6 and first.usage["cached_calls"] == 0
    fake.reset()
    again = generate(prompts, config, fake)
    assert fake.requests == [] and again.usage["cached_calls"] == 6 and again.usage["api_calls"] == 0
    assert again.candidates["text"].tolist() == first.candidates["text"].tolist()
