"""Conversations end to end: a prompt file of chats (system, user, assistant, user) through every step, the
generators on the OpenAI SDK and the judge on the Anthropic SDK against the local fake server, out as TRL's
conversational dataset and a Hugging Face folder `datasets` loads."""

from __future__ import annotations

import json

import datasets
import pytest
from huggingface_hub import DatasetCard

from pref_pipeline.config import parse_config
from pref_pipeline.conversations import render
from pref_pipeline.paths import Home
from pref_pipeline.runs import run_batches
from tests.fakes import FakeLLMServer
from tests.helpers import config_dict, read_jsonl, table_rows, write_prompts


def chat(i: int, topic: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": f"You are a concise {topic} assistant (chat {i})."},
            {"role": "user", "content": f"I need help with {topic}, case {i}."},
            {"role": "assistant", "content": f"Sure. What about {topic} case {i} worries you?"},
            {"role": "user", "content": f"Give me three concrete steps for {topic} case {i}."}]


ROWS = ([{"id": f"chat-{i}", "category": topic, "messages": chat(i, topic)}
         for i, topic in enumerate(["gardening", "cooking", "gardening", "cooking", "gardening", "cooking"])]
        + [{"id": "plain", "category": "cooking", "prompt": "How long do I boil an egg?"}])
HHH_SYSTEM_START = "You are an assistant. Be "  # hhh_system.j2 with a principle's instruction ("Be honest: ...")


@pytest.fixture
def chats_file(tmp_path):
    return write_prompts(tmp_path / "chats.jsonl", ROWS)


def test_conversations_through_every_step_and_out_as_a_trainer_ready_dataset(home, chats_file):
    with FakeLLMServer() as server:
        config = parse_config(config_dict(
            [chats_file], generators=[{"model": "openai:gen-a", "temperature": 0.2, "base_url": server.openai_base_url},
                                      {"model": "openai:gen-b", "temperature": 1.0, "base_url": server.openai_base_url}],
            judges=[{"model": "anthropic:judge", "base_url": server.anthropic_base_url}],
            strategies=[{"method": "sampling"}, {"method": "hhh_contrast"}, {"method": "critique_revise"}],
            export={"test_share": 0.34}))
        run = run_batches(config, Home.from_env().ensure())
        requests = list(server.requests)
    assert run.success, run

    # Generation continued each conversation: its system message, every earlier turn, the turn to answer.
    generated = [r["body"] for r in requests if r["path"].endswith("/chat/completions")]
    for i, row in enumerate(ROWS[:6]):
        turns = row["messages"]
        sampled = [b for b in generated if b["messages"] == turns]
        # Both generators sampled it (and critique_revise answered it first) with every turn.
        assert {b["model"] for b in sampled} == {"gen-a", "gen-b"} and len(sampled) == 3, f"chat-{i}"
        # A strategy's system prompt (hhh_contrast's, critique_revise's alternative) goes in front of the chat's own.
        prefixed = [b["messages"][0]["content"] for b in generated
                    if b["messages"][1:] == turns[1:] and b["messages"][0]["content"] != turns[0]["content"]]
        assert all(system.endswith(f"\n\n{turns[0]['content']}") for system in prefixed)
        assert any(system.startswith(HHH_SYSTEM_START) for system in prefixed)
        critique = [b for b in generated if len(b["messages"]) == 1 and turns[2]["content"] in b["messages"][0]["content"]]
        assert critique, f"chat-{i}: the critique quotes the whole conversation"
    assert any(b["messages"] == [{"role": "user", "content": "How long do I boil an egg?"}] for b in generated)

    # The judge (Anthropic) read every turn, delimited, before the two answers.
    judged = [r["body"] for r in requests if r["path"].endswith("/v1/messages")]
    assert judged and all(b["model"] == "judge" for b in judged)
    seen = [b["messages"][-1]["content"] for b in judged]
    for row in ROWS[:6]:
        earlier = row["messages"][2]["content"]
        assert any(f'<turn role="assistant">\n{earlier}\n</turn>' in text for text in seen)

    prompts = {p["prompt_id"]: p for p in table_rows("prompts")}
    assert json.loads(prompts["chat-0"]["messages"]) == ROWS[0]["messages"]
    assert prompts["chat-0"]["prompt"] == render(ROWS[0]["messages"]) and prompts["plain"]["messages"] is None

    # The dataset: TRL's conversational format (auto: some prompts are conversations).
    exports = Home.from_env().exports
    pairs = read_jsonl(exports / "preference_pairs.jsonl")
    assert pairs and {p["generation_method"] for p in pairs} >= {"hhh_contrast", "critique_revise"}
    for pair in pairs:
        assert pair["chosen"][0]["role"] == "assistant" and len(pair["chosen"]) == len(pair["rejected"]) == 1
        expected = ([{"role": "user", "content": "How long do I boil an egg?"}] if pair["prompt_id"] == "plain"
                    else ROWS[int(pair["prompt_id"].split("-")[1])]["messages"])
        assert pair["prompt"] == expected
    loaded = datasets.load_dataset(str(exports / "hf"), cache_dir=str(home / "hf-cache"))
    assert set(loaded) == {"train", "test"}
    assert sum(len(split) for split in loaded.values()) == len(pairs)
    assert not set(loaded["train"]["prompt_id"]) & set(loaded["test"]["prompt_id"])
    message = datasets.List({"role": datasets.Value("string"), "content": datasets.Value("string")})
    assert loaded["train"].features["prompt"] == loaded["train"].features["chosen"] == message
    card = DatasetCard((exports / "hf" / "README.md").read_text())
    assert [f["split"] for f in card.data.configs[0]["data_files"]] == ["train", "test"]

    # The same data as strings (format: standard): the conversation rendered, its turns kept as JSON.
    standard = config.model_copy(update={"export": config.export.model_copy(update={"format": "standard"})})
    assert run_batches(standard, Home.from_env().ensure()).success  # every answer from the cache
    pairs = read_jsonl(exports / "preference_pairs.jsonl")
    chat_pair = next(p for p in pairs if p["prompt_id"] == "chat-1")
    assert chat_pair["prompt"] == render(ROWS[1]["messages"]) and isinstance(chat_pair["chosen"], str)
    assert json.loads(chat_pair["messages"]) == ROWS[1]["messages"]
    assert datasets.load_dataset(str(exports / "hf"), cache_dir=str(home / "hf-cache-2"))["train"].features[
        "prompt"] == datasets.Value("string")


def test_a_conversation_dataset_through_every_strategy_and_judge_type(home, tmp_path):
    """A user's own Hugging Face dataset folder (save_to_disk) of conversations, each with a gold final answer,
    through every strategy and every judge type (the in-process fake as the models): every model call carries
    the conversation, and every pair's prompt is it."""
    from tests.fakes.in_process import FakeLLM
    from tests.helpers import materialize

    rows = [{"id": f"chat-{i}", "category": topic, "turns": chat(i, topic),
             "gold": f"Step one for {topic}: prepare. Step two: check the {topic} plan. Step three: review it twice."}
            for i, topic in enumerate(["gardening", "cooking", "gardening", "cooking"])]
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "my_chats"))
    fake = FakeLLM()
    config = parse_config(config_dict(
        [], generators=[{"model": "openai:gen", "temperature": 0.5}, {"model": "openai:gen", "temperature": 0.9}],
        judges=[{"model": "openai:judge"}, {"model": "openai:scorer", "type": "pointwise"},
                {"type": "rule", "rule": "reference_match"}],
        judging={"aggregation": "majority"},
        prompts=[{"dataset": str(tmp_path / "my_chats"), "batch": "prompts",
                  "columns": {"messages": "turns", "reference": "gold"}}],
        strategies=[{"method": m} for m in ("sampling", "few_shot_contrast", "critique_revise", "hhh_contrast",
                                            "human_vs_model", "score_extremes")]
        + [{"method": "strong_vs_weak", "confirm": True}, {"method": "gold_corruption", "model": "none"}]))
    assert materialize(config, fake=fake).success

    generation = [r["body"] for r in fake.requests if "Compare two" not in str(r["body"]) and "score" not in
                  str(r["body"].get("response_format", "")) and "Rate" not in str(r["body"]["messages"][-1])]
    candidates = table_rows("candidates")
    assert {c["strategy"] for c in candidates} == {"sampling", "few_shot_contrast", "critique_revise", "hhh_contrast",
                                                   "human_vs_model", "score_extremes", "strong_vs_weak",
                                                   "gold_corruption"}
    assert all(c["error"] is None for c in candidates)
    for row in rows:
        earlier = row["turns"][2]["content"]
        # Every asked-for answer continued the conversation (or, for critiques and edits, quoted it).
        asked = [b for b in generation if any(earlier in m["content"] for m in b["messages"])]
        assert len(asked) >= 8, row["id"]
    judge_prompts = [m["content"] for r in fake.requests for m in r["body"]["messages"] if "<turn role=" in m["content"]]
    assert any("<response_a>" in p for p in judge_prompts) and any("<response>" in p for p in judge_prompts)
    pairs = table_rows("preference_pairs")
    assert {p["generation_method"] for p in pairs} >= {"sampling", "hhh_contrast", "gold_corruption", "critique_revise"}
    by_id = {row["id"]: row["turns"] for row in rows}
    assert all(json.loads(p["messages"]) == by_id[p["prompt_id"]] for p in pairs)
    assert {j["judge_type"] for j in table_rows("judgments")} == {"pairwise", "pointwise", "rule"}
    gold = [p for p in pairs if p["generation_method"] == "gold_corruption"]
    assert gold and all(p["chosen"] == next(r["gold"] for r in rows if r["id"] == p["prompt_id"]) for p in gold)
