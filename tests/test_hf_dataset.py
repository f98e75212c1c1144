"""The dataset as trainers and the Hub take it: TRL's formats, the exports/hf folder that `datasets` loads, its
card (front matter that huggingface_hub parses), and publishing it through the real huggingface_hub client to
a local stand-in of the Hub's upload API."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import datasets
import pandas as pd
import pytest
from huggingface_hub import DatasetCard

from pref_pipeline.export import resolve_format, trainer_format
from pref_pipeline.hf_dataset import PublishError, publish, size_category, split_pairs, write_folder
from tests.fakes.hub_server import FakeHubServer, card_errors

CHAT = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Capital of France?"}]
AUDIT = {"length_bias": {"pct_longer_chosen": 0.62, "flagged": False},
         "position_bias": {"consistency_rate": 0.8},
         "agreement": {"human": {"agreement_rate": 0.75, "n": 8}},
         "quarantine": {"by_reason": [{"stage": "pairs", "reason": "inconsistent", "n": 3}]},
         "flags": ["the judge is at chance on human-labelled pairs"]}


def pairs_frame(n: int = 12, conversations: bool = True) -> pd.DataFrame:
    rows = []
    for i in range(n):
        chat = conversations and i % 2 == 0
        rows.append({"pair_id": f"pair-{i}", "prompt_id": f"p-{i // 2}", "prompt": f"Question {i // 2}?",
                     "messages": json.dumps(CHAT) if chat else None, "chosen": f"good {i}", "rejected": f"bad {i}",
                     "generation_method": "sampling" if i % 3 else "critique_revise",
                     "label_source": "judge" if i % 3 else "construction", "judge_model_id": "gpt-j",
                     "judge_fingerprint": "fp1", "criteria": "helpfulness", "category": "abc"[i % 3],
                     "judged_at": datetime(2026, 12, 1, tzinfo=timezone.utc)})
    return pd.DataFrame(rows)


def test_formats():
    pairs = pairs_frame()
    assert resolve_format(pairs, "auto") == "conversational"
    assert resolve_format(pairs_frame(conversations=False), "auto") == "standard"
    assert resolve_format(pairs, "standard") == "standard"
    conversational = trainer_format(pairs, "conversational")
    assert conversational["prompt"][0] == CHAT
    assert conversational["prompt"][1] == [{"role": "user", "content": "Question 0?"}]  # a string prompt: one turn
    assert conversational["chosen"][0] == [{"role": "assistant", "content": "good 0"}]
    assert "messages" not in conversational and list(conversational.columns)[:3] == ["pair_id", "prompt_id", "prompt"]
    assert trainer_format(pairs, "standard") is pairs


def test_the_test_split_holds_whole_prompts_stratified_by_category():
    pairs = pairs_frame(40)
    splits = split_pairs(pairs, 0.25)
    train, test = set(splits["train"]["prompt_id"]), set(splits["test"]["prompt_id"])
    assert train and test and not train & test
    assert len(splits["train"]) + len(splits["test"]) == len(pairs)
    for _, group in pairs.groupby("category"):
        assert group["prompt_id"].isin(test).any() and group["prompt_id"].isin(train).any()
    assert split_pairs(pairs, 0.25)["test"]["pair_id"].tolist() == splits["test"]["pair_id"].tolist()  # stable
    assert list(split_pairs(pairs, 0.0)) == ["train"]


@pytest.mark.parametrize("fmt", ["conversational", "standard"])
def test_the_folder_loads_with_datasets_and_its_card_parses(tmp_path, monkeypatch, fmt):
    pairs = pairs_frame(40)
    written = write_folder(tmp_path / "hf", pairs, fmt=fmt, test_share=0.2, audit=AUDIT, license="cc-by-4.0")
    loaded = datasets.load_dataset(str(tmp_path / "hf"), cache_dir=str(tmp_path / "cache"))
    assert set(loaded) == {"train", "test"} == set(written["splits"])
    assert sum(len(loaded[s]) for s in loaded) == len(pairs)
    assert not set(loaded["train"]["prompt_id"]) & set(loaded["test"]["prompt_id"])
    features = loaded["train"].features
    if fmt == "conversational":
        assert features["prompt"] == datasets.List({"role": datasets.Value("string"),
                                                    "content": datasets.Value("string")})
        assert features["chosen"] == features["rejected"] == features["prompt"]
        assert any(row == CHAT for row in [*loaded["train"]["prompt"], *loaded["test"]["prompt"]])
    else:
        assert features["prompt"] == datasets.Value("string") and features["messages"] == datasets.Value("string")

    readme = (tmp_path / "hf" / "README.md").read_text()
    card = DatasetCard(readme)
    assert card.data.license == "cc-by-4.0" and card.data.size_categories == ["n<1K"]
    assert [f["split"] for f in card.data.configs[0]["data_files"]] == ["train", "test"]
    assert "preference" in card.data.tags and card.data.task_categories == ["text-generation"]
    assert card_errors(readme) == []
    for text in (f"TRL's **{fmt}** preference format", "| critique_revise | construction |", "| gpt-j | fp1 | 40 |",
                 "62.0%", "80.0%", "75.0% on 8 labels", "| pairs | inconsistent | 3 |",
                 "- the judge is at chance on human-labelled pairs"):
        assert text in readme, text

    write_folder(tmp_path / "hf", pairs, fmt=fmt, test_share=0.0)  # re-written whole: no stale test split
    assert sorted(p.name for p in (tmp_path / "hf" / "data").iterdir()) == ["train-00000-of-00001.parquet"]
    assert "other" in (tmp_path / "hf" / "README.md").read_text()  # no license given


def test_size_categories():
    assert [size_category(n) for n in (0, 999, 1000, 54_321, 2_000_000)] == \
        ["n<1K", "n<1K", "1K<n<10K", "10K<n<100K", "1M<n<10M"]


def test_publish_uploads_the_folder_with_the_token_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    write_folder(tmp_path / "hf", pairs_frame(), fmt="conversational", audit=AUDIT)
    with FakeHubServer() as hub:
        environ = {"HF_TOKEN": "hf_secret_token_123", "HF_ENDPOINT": hub.url}
        url = publish(tmp_path / "hf", "my-org/prefs", private=True, environ=environ)
        assert url.startswith(f"{hub.url}/datasets/my-org/prefs/commit/")
        assert hub.repos["my-org/prefs"]["type"] == "dataset" and hub.repos["my-org/prefs"]["visibility"] == "private"
        assert sorted(hub.files["my-org/prefs"]) == ["README.md", "data/train-00000-of-00001.parquet"]
        assert hub.files["my-org/prefs"]["README.md"] == (tmp_path / "hf" / "README.md").read_bytes()
        assert all(r["headers"]["authorization"] == "Bearer hf_secret_token_123" for r in hub.requests)
        publish(tmp_path / "hf", "my-org/prefs", environ=environ)  # again: the repository exists, a new commit
        assert len(hub.commits) == 2
    assert not any("hf_secret_token_123" in p.read_text(errors="ignore") for p in tmp_path.rglob("*") if p.is_file())
    for bad_args, message in [((tmp_path / "hf", "prefs"), "--repo must be ORG/NAME"),
                              ((tmp_path / "none", "o/n"), "holds no dataset")]:
        with pytest.raises(PublishError, match=message):
            publish(*bad_args, environ={"HF_TOKEN": "x"})
    with pytest.raises(PublishError, match="HF_TOKEN is not set"):
        publish(tmp_path / "hf", "o/n", environ={})
