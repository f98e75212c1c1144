"""Human-annotated sets mixed into the exported dataset (``export.human_sets``, seed 000): the asked share within
one pair, rows tagged with their set and licence, the card and the audit saying how much is human, every
accepted format read, bad files named, and a real Dagster run with a set configured."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import datasets
import pandas as pd
import pytest
from huggingface_hub import DatasetCard

from pref_pipeline import audit as audit_lib
from pref_pipeline import schema
from pref_pipeline.config import ConfigError, parse_config
from pref_pipeline.export import PARQUET_NAME, export_pairs
from pref_pipeline.human_sets import SHIPPED_SETS, HumanSetError, load_set, mixed_counts, read_records
from pref_pipeline.pairing import human_share, publish_dataset
from pref_pipeline.paths import Home
from tests.helpers import read_jsonl

LLMBAR, MT_BENCH = SHIPPED_SETS / "LLMBar_Natural.json", SHIPPED_SETS / "Processed_MT-Bench.json"
HH_RLHF = SHIPPED_SETS / "hh-rlhf_harmless-base_test_sample.jsonl"
CHAT = [{"role": "user", "content": "Plan a trip."}, {"role": "assistant", "content": "Where to?"},
        {"role": "user", "content": "Lisbon, two days."}]


def synthetic_pairs(n: int, batch: str = "b1") -> pd.DataFrame:
    """``n`` pipeline pairs as a batch's export holds them (three categories, two pairs per prompt)."""
    rows = [{"pair_id": f"pair-{batch}-{i}", "prompt_id": f"p-{batch}-{i // 2}", "prompt": f"Question {i // 2}?",
             "chosen": f"a good answer {i}", "rejected": f"bad {i}", "generation_method": "sampling",
             "judge_model_id": "judge-1", "criteria": "helpfulness", "category": "abc"[i % 3], "confidence": 0.9,
             "judge_fingerprint": "fp1", "label_source": "judge", "chosen_words": 4, "rejected_words": 2}
            for i in range(n)]
    return schema.with_batch(schema.conform("preference_pairs", pd.DataFrame(rows)), batch)


def publish(home: Path, synthetic: int, human_sets: list[dict], **export) -> tuple:
    """Publish ``synthetic`` pairs as one batch, then the dataset with ``human_sets``: the config, the
    ``PublishedDataset`` and the combined Parquet."""
    paths = Home.at(home)
    export_pairs(synthetic_pairs(synthetic), paths.batch_exports("b1"))
    config = parse_config({"export": {"human_sets": human_sets, **export}})
    published = publish_dataset(config, paths)
    return config, published, pd.read_parquet(paths.exports / PARQUET_NAME)


@pytest.mark.parametrize("synthetic", [3, 10, 37, 123])
@pytest.mark.parametrize("shares", [(0.2,), (0.1, 0.25), (0.3, 0.05)])
def test_each_set_makes_up_its_share_within_one_pair(home, synthetic, shares):
    sets = [{"path": "LLMBar_Natural.json", "share": shares[0]}]
    if len(shares) > 1:
        sets.append({"path": "Processed_MT-Bench.json", "share": shares[1]})
    _, published, dataset = publish(home, synthetic, sets)
    total = len(dataset)
    human = dataset[dataset["label_source"] == "human_set"]
    assert total == synthetic + len(human) == published.combined.rows
    assert (dataset["label_source"] != "human_set").sum() == synthetic  # every synthetic pair is still there
    for name, share in zip(["LLMBar_Natural", "Processed_MT-Bench"], shares):
        count = int((human["source"] == name).sum())
        assert abs(count - share * total) <= 1, (name, count, share, total)
        assert count > 0 or share * total < 1  # a set too small a share of a tiny dataset adds none
    assert human["pair_id"].is_unique
    assert published.human_share["pairs"] == len(human) and published.human_share["total_pairs"] == total


def test_the_counts_follow_the_formula_and_the_draw_is_stable(home):
    assert mixed_counts(100, [0.2, 0.1]) == [29, 14]  # 0.2 * 100 / 0.7 = 28.6, 0.1 * 100 / 0.7 = 14.3
    assert mixed_counts(0, [0.5]) == [0]
    llmbar = load_set(LLMBAR, share=0.2, license="mit")
    assert llmbar.drawn(10)["pair_id"].tolist() == llmbar.drawn(10)["pair_id"].tolist()
    assert set(llmbar.drawn(10)["pair_id"]) < set(llmbar.drawn(20)["pair_id"])  # more pairs: a superset
    other_seed = load_set(LLMBAR, share=0.2, license="mit", seed=7)
    assert set(other_seed.drawn(10)["pair_id"]) != set(llmbar.drawn(10)["pair_id"])
    assert len(llmbar.drawn(500)) == 100


def test_rows_are_tagged_with_their_set_and_licence_and_keep_the_human_choice(home, tmp_path):
    own = tmp_path / "team_labels.jsonl"
    own.write_text("".join(json.dumps({"prompt": f"Team question {i}?", "chosen": f"right {i}", "rejected": "wrong",
                                       "category": "team"}) + "\n" for i in range(30)), encoding="utf-8")
    sets = [{"path": "LLMBar_Natural.json", "share": 0.1}, {"path": "hh-rlhf_harmless-base_test_sample.jsonl",
                                                           "share": 0.1},
            {"path": str(own), "share": 0.1, "license": "cc-by-4.0", "name": "team"}]
    _, _, dataset = publish(home, 40, sets)
    jsonl = read_jsonl(Path(home) / "exports" / "preference_pairs.jsonl")
    assert len(jsonl) == len(dataset) and [r["pair_id"] for r in jsonl] == dataset["pair_id"].tolist()
    human = [r for r in jsonl if r["label_source"] == "human_set"]
    assert {(r["source"], r["license"]) for r in human} == {("LLMBar_Natural", "mit"),
                                                            ("hh-rlhf_harmless-base_test_sample", "mit"),
                                                            ("team", "cc-by-4.0")}
    assert all(r["generation_method"] == "human_set" and r["prompt"] and r["chosen"] and r["rejected"] for r in human)
    # The batches' lines are copied as they are (no source, license); the Parquet has them null.
    assert all(r.get("source") is None and r.get("license") is None for r in jsonl if r["label_source"] != "human_set")
    assert dataset.loc[dataset["label_source"] != "human_set", ["source", "license"]].isna().all().all()
    as_json = datasets.load_dataset("json", data_files=str(Path(home) / "exports" / "preference_pairs.jsonl"),
                                    cache_dir=str(tmp_path / "cache"))["train"]
    assert len(as_json) == len(jsonl) and sorted(filter(None, as_json["license"])) == sorted(r["license"] for r in human)

    people_chose = {(r["input"], frozenset((r["output_1"], r["output_2"]))): (r["output_1"], r["output_2"])[r["label"] - 1]
                    for r in read_records(LLMBAR)}
    llmbar_rows = [r for r in human if r["source"] == "LLMBar_Natural"]
    assert llmbar_rows and all(r["category"] == "LLMBar_Natural" for r in llmbar_rows)
    for row in llmbar_rows:  # people's choice is the chosen response
        assert people_chose[(row["prompt"], frozenset((row["chosen"], row["rejected"])))] == row["chosen"]
    hh = [json.loads(line) for line in HH_RLHF.read_text(encoding="utf-8").splitlines()]
    for row in (r for r in human if r["source"] == "hh-rlhf_harmless-base_test_sample"):
        record = next(h for h in hh if h["chosen"].strip().startswith(row["prompt"]))
        assert record["chosen"].rstrip().endswith(row["chosen"]) and record["rejected"].rstrip().endswith(row["rejected"])
        assert row["prompt"].startswith("Human:") and "Assistant:" not in row["chosen"]
    team = [r for r in human if r["source"] == "team"]
    assert team and all(r["chosen"].startswith("right") and r["category"] == "team" for r in team)


def test_the_export_reads_its_own_files_back_in_both_formats(home, tmp_path):
    """A dataset this project exported (standard or conversational, JSONL or gzipped) is a human set as it is."""
    rows = [{"prompt": "Question?", "chosen": "Yes.", "rejected": "No.", "category": "qa"},
            {"prompt": render_text(CHAT), "messages": json.dumps(CHAT), "chosen": "Book a tram.", "rejected": "Hm."}]
    standard = tmp_path / "standard.jsonl.gz"
    with gzip.open(standard, "wt", encoding="utf-8") as out:
        out.writelines(json.dumps(r) + "\n" for r in rows)
    conversational = tmp_path / "conversational.json"
    conversational.write_text(json.dumps([
        {"prompt": [{"role": "user", "content": "Question?"}], "chosen": [{"role": "assistant", "content": "Yes."}],
         "rejected": [{"role": "assistant", "content": "No."}], "category": "qa"},
        {"prompt": CHAT, "chosen": [{"role": "assistant", "content": "Book a tram."}],
         "rejected": [{"role": "assistant", "content": "Hm."}]}]), encoding="utf-8")
    read = [load_set(path, share=0.1, license="mit", name="mine").pairs for path in (standard, conversational)]
    fields = ["pair_id", "prompt_id", "prompt", "messages", "chosen", "rejected", "category"]
    assert read[0][fields].equals(read[1][fields])
    assert json.loads(read[0]["messages"].iloc[1]) == CHAT and pd.isna(read[0]["messages"].iloc[0])
    assert read[0]["category"].tolist() == ["qa", "mine"]

    # A conversational export of a conversation set: the prompts are the conversations again.
    _, published, _ = publish(home, 2, [{"path": str(conversational), "share": 0.5, "license": "mit"}],
                              format="conversational")
    lines = read_jsonl(Path(home) / "exports" / "preference_pairs.jsonl")
    assert published.combined.format == "conversational"
    assert CHAT in [r["prompt"] for r in lines if r["label_source"] == "human_set"]


def render_text(messages: list[dict]) -> str:
    from pref_pipeline.conversations import render

    return render(messages)


def test_the_card_and_the_audit_say_how_much_is_human_and_the_folder_loads(home, tmp_path):
    short = tmp_path / "few.json"
    short.write_text(json.dumps([{"input": f"Q{i}?", "output_1": f"good {i}", "output_2": "bad", "label": 1}
                                 for i in range(3)]), encoding="utf-8")
    sets = [{"path": "LLMBar_Natural.json", "share": 0.2}, {"path": str(short), "share": 0.2, "license": "unknown"}]
    paths = Home.at(home)
    export_pairs(synthetic_pairs(60), paths.batch_exports("b1"))
    config = parse_config({"export": {"human_sets": sets, "test_share": 0.25}})

    share = human_share(config, paths)  # what the roll-up audit records, before the dataset is built
    figures, json_path, md_path = audit_lib.report_home(paths, human_share=share)
    recorded = json.loads(json_path.read_text())["export"]["human_share"]
    assert recorded == share
    # 60 synthetic: LLMBar asks round(0.2 * 60 / 0.6) = 20; the short set asks 20 too and has 3.
    assert [(s["name"], s["pairs_asked"], s["available"], s["pairs"], s["short"]) for s in recorded["sets"]] == \
        [("LLMBar_Natural", 20, 100, 20, False), ("few", 20, 3, 3, True)]
    assert (recorded["pairs"], recorded["total_pairs"], recorded["share"]) == (23, 83, round(23 / 83, 4))
    assert recorded["sets"][0]["share"] == round(20 / 83, 4) and recorded["sets"][1]["license"] == "unknown"
    assert any("few has 3 pairs, fewer than the 20" in flag for flag in figures["flags"])
    assert "23 of the 83 pairs (27.7%) are human-annotated" in md_path.read_text()

    published = publish_dataset(config, paths)
    assert published.human_share == share and published.combined.added == 23
    card_text = (published.hf_folder / "README.md").read_text()
    assert DatasetCard(card_text).data.configs[0]["data_files"][1]["split"] == "test"
    for text in ("23 of the 83 pairs (27.7%) are human-annotated",
                 "| LLMBar_Natural | `LLMBar_Natural.json` | mit | 20.0% | 20 | 100 | 20 | 24.1% |",
                 "| few | `few.json` | unknown | 20.0% | 20 | 3 | 3 | 3.6% |",
                 "few has fewer pairs (3) than its share asks (20): all of them are in"):
        assert text in card_text, text

    loaded = datasets.load_dataset(str(published.hf_folder), cache_dir=str(tmp_path / "cache"))
    assert set(loaded) == {"train", "test"} and sum(len(loaded[s]) for s in loaded) == 83
    assert not set(loaded["train"]["prompt_id"]) & set(loaded["test"]["prompt_id"])
    tags = {split: [s for s, ls in zip(loaded[split]["source"], loaded[split]["label_source"]) if ls == "human_set"]
            for split in loaded}
    assert tags["test"] and tags["train"]  # the human pairs split by prompt like the rest
    assert sum(len(t) for t in tags.values()) == 23
    assert loaded["train"].features["license"] == datasets.Value("string")
    saved = tmp_path / "saved"
    loaded.save_to_disk(str(saved))
    assert sum(len(split) for split in datasets.load_from_disk(str(saved)).values()) == 83


def test_no_sets_changes_nothing_and_says_so(home):
    _, published, dataset = publish(home, 5, [])
    assert len(dataset) == 5 and published.combined.added == 0
    assert published.human_share == {"pairs": 0, "synthetic_pairs": 5, "total_pairs": 5, "share": 0.0, "sets": []}
    assert "None: every pair is synthetic" in (published.hf_folder / "README.md").read_text()


@pytest.mark.parametrize("text, message", [
    ('{"input": "Q", "output_1": "a", "output_2": "b", "label": 1}\n\n{"input": "Q2", "output_1": "a"\n',
     r"bad\.jsonl line 3: not valid JSON"),
    ('{"input": "Q", "output_1": "a", "output_2": "b", "label": 1}\n{"question": "Q2"}\n',
     r"bad\.jsonl line 2: expected \{prompt, chosen, rejected\}"),
    ('{"input": "Q", "output_1": "a", "output_2": "b", "label": 3}\n', r"bad\.jsonl line 1: label must be 1 or 2"),
    ('{"prompt": "Q", "chosen": "a"}\n', r"bad\.jsonl line 1: .*missing `rejected`"),
    ('{"prompt": [{"role": "assistant", "content": "hi"}], "chosen": "a", "rejected": "b"}\n',
     r"bad\.jsonl line 1: `messages` ends with a assistant turn"),
    ('{"prompt": "Q", "chosen": [{"role": "user", "content": "a"}], "rejected": "b"}\n',
     r"bad\.jsonl line 1: `chosen` must be text or one assistant turn"),
    ('["not an object"]\n', r"bad\.jsonl record 1: expected a JSON object"),
    ('{"chosen": "\\n\\nHuman: hi\\n\\nAssistant: ", "rejected": "\\n\\nHuman: hi\\n\\nAssistant: "}\n',
     r"bad\.jsonl: holds no pair \(1 records with an empty response\)"),
])
def test_a_bad_file_is_named_with_its_line_and_nothing_is_written(home, tmp_path, text, message):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(text, encoding="utf-8")
    _, before, _ = publish(home, 4, [])  # a dataset already published
    exports = Path(home) / "exports"
    files = {p: p.read_bytes() for p in exports.rglob("*") if p.is_file() and ".lock" not in p.name}
    config = parse_config({"export": {"human_sets": [{"path": str(bad), "share": 0.2, "license": "mit"}]}})
    with pytest.raises(HumanSetError, match=message):
        publish_dataset(config, Home.at(home))
    assert {p: p.read_bytes() for p in exports.rglob("*") if p.is_file() and ".lock" not in p.name} == files


@pytest.mark.parametrize("entry, message", [
    ({"path": "nowhere.jsonl", "share": 0.2}, r"export\.human_sets\[0\]: path: no such file: nowhere\.jsonl"),
    ({"path": "LLMBar_Natural.json", "share": 0.0}, r"export\.human_sets\[0\]\.share: Input should be greater than 0"),
    ({"path": "LLMBar_Natural.json", "share": 1.0}, r"export\.human_sets\[0\]\.share: Input should be less than 1"),
    ({"path": "LLMBar_Natural.json"}, r"export\.human_sets\[0\]\.share: Field required"),
    ({"path": "LLMBar_Natural.json", "share": 0.1, "licence": "mit"}, r"licence: unknown key; did you mean `license`"),
])
def test_configuration_errors_name_the_key(entry, message):
    with pytest.raises(ConfigError, match=message):
        parse_config({"export": {"human_sets": [entry]}})


def test_a_file_of_ones_own_needs_a_licence_and_shares_leave_room(tmp_path):
    own = tmp_path / "mine.json"
    own.write_text("[]", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"export\.human_sets\[0\]: license is required for mine\.json"):
        parse_config({"export": {"human_sets": [{"path": str(own), "share": 0.1}]}})
    with pytest.raises(ConfigError, match=r"export: human_sets: the shares add up to 1; they must leave room"):
        parse_config({"export": {"human_sets": [{"path": "LLMBar_Natural.json", "share": 0.6},
                                                {"path": "Processed_MT-Bench.json", "share": 0.4}]}})
    config_file = tmp_path / "config.yaml"  # a relative path is read beside the configuration file
    config_file.write_text("export:\n  human_sets:\n    - {path: mine.json, share: 0.1, license: mit}\n")
    from pref_pipeline.config import load_config

    assert load_config(config_file).export.human_sets[0].path == own


def test_a_real_dagster_run_mixes_a_human_set_in(home, prompts_file, capsys):
    """The pipeline (the in-process fake as the models) with LLMBar at 25%: the dataset, its card, the audit."""
    from tests.fakes.in_process import FakeLLM
    from tests.helpers import materialize, pipeline_config

    config = pipeline_config(prompts_file, export={"human_sets": [{"path": "LLMBar_Natural.json", "share": 0.25}]})
    result = materialize(config, fake=FakeLLM())
    assert result.success
    exports = Path(home) / "exports"
    rows = read_jsonl(exports / "preference_pairs.jsonl")
    human = [r for r in rows if r["label_source"] == "human_set"]
    synthetic = len(rows) - len(human)
    assert synthetic > 0 and abs(len(human) - 0.25 * len(rows)) <= 1
    assert {(r["source"], r["license"]) for r in human} == {("LLMBar_Natural", "mit")}
    audit = json.loads((Path(home) / "reports" / "audit.json").read_text())
    assert audit["export"]["human_share"]["pairs"] == len(human)
    assert audit["export"]["human_share"]["synthetic_pairs"] == synthetic
    assert audit["pairs"]["kept"] >= synthetic  # the stable keys are where they were
    card = (exports / "hf" / "README.md").read_text()
    assert f"{len(human)} of the {len(rows)} pairs" in card
    dataset_event = next(e for e in result.get_asset_materialization_events()
                         if e.asset_key.to_user_string() == "preference_dataset")
    assert dataset_event.materialization.metadata["human_pairs"].value == len(human)
    from pref_pipeline.cli import _summary  # what `pref-pipeline run` prints at the end

    _summary(Home.from_env(), None)
    assert f"({synthetic} pairs, plus {len(human)} human-annotated from export.human_sets: " in capsys.readouterr().out


def test_human_pairs_weigh_one_when_the_export_weighs_by_recency(home):
    paths = Home.at(home)
    export_pairs(synthetic_pairs(20).assign(recency_weight=0.5), paths.batch_exports("b1"))
    config = parse_config({"export": {"recency_half_life_days": 10,
                                      "human_sets": [{"path": "LLMBar_Natural.json", "share": 0.2}]}})
    publish_dataset(config, paths)
    dataset = pd.read_parquet(paths.exports / PARQUET_NAME)
    human = dataset["label_source"] == "human_set"
    assert human.sum() == 5 and (dataset.loc[human, "recency_weight"] == 1.0).all()
    assert (dataset.loc[~human, "recency_weight"] == 0.5).all()
