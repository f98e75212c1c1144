"""The LLM-call layer through the real Dagster assets and the CLI: re-runs that cost nothing, usage metadata,
the dry-run estimate, the progress bar, and the new configuration keys."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from pref_pipeline.cli import main
from pref_pipeline.config import ConfigError, load_config, parse_config
from pref_pipeline.paths import Home
from tests.fakes import FakeLLMServer
from tests.fakes.in_process import FakeLLM
from tests.helpers import materialize, pipeline_config, write_config_file

PRICES = {"openai:gen-a": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
          "openai:gen-b": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
          "openai:judge-1": {"input_per_mtok": 10.0, "output_per_mtok": 20.0}}


def priced_config(prompts_file: Path, criteria: str = "helpfulness_and_clarity", **extra):
    return pipeline_config(prompts_file, judges=[{"model": "openai:judge-1", "criteria": criteria}],
                           **{"candidates_per_prompt": 3, "prices": PRICES, **extra})


def metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    [mat] = result.asset_materializations_for_node(asset)
    return {k: getattr(v, "value", v) for k, v in mat.metadata.items()}


def test_second_run_makes_zero_calls_and_a_new_judge_reasks_only_the_judge(home, prompts_file):
    fake = FakeLLM()
    config = priced_config(prompts_file)
    instance = dg.DagsterInstance.ephemeral()
    first = materialize(config, instance=instance, fake=fake)
    assert first.success
    # Progress a person can watch: counts and rate in the Dagster run's own log.
    logs = [e.user_message for e in instance.all_logs(first.run_id) if e.step_key in ("candidates", "judgments")]
    assert any(m.startswith("judge openai:judge-1: 18/18 done (0 from cache), 0 failed, ") and m.endswith("/s")
               for m in logs), logs
    assert any(m.startswith("generate ") and "done (0 from cache)" in m for m in logs)
    assert any(m.startswith("judgments: 18 paid LLM calls (0 batch), 0 from cache, 0 failed") for m in logs)
    assert len(fake.requests) == 9 + 18
    cand, judg = metadata(first, "candidates"), metadata(first, "judgments")
    assert (cand["llm_calls"], cand["llm_cached_calls"]) == (9, 0)
    assert (judg["llm_calls"], judg["llm_cached_calls"]) == (18, 0)
    assert cand["llm_cost_usd"] == pytest.approx((cand["llm_input_tokens"] + 2 * cand["llm_output_tokens"]) / 1e6)
    assert judg["llm_cost_usd"] == pytest.approx(
        (10 * judg["llm_input_tokens"] + 20 * judg["llm_output_tokens"]) / 1e6)
    assert set(judg["llm_usage_by_model"]) == {"openai:judge-1"}

    fake.reset()
    second = materialize(config, fake=fake)
    assert second.success
    assert fake.requests == []  # unchanged inputs: zero LLM calls
    cand2, judg2 = metadata(second, "candidates"), metadata(second, "judgments")
    assert (cand2["llm_calls"], cand2["llm_cached_calls"], cand2["llm_cost_usd"]) == (0, 9, 0)
    assert (judg2["llm_calls"], judg2["llm_cached_calls"], judg2["llm_cost_usd"]) == (0, 18, 0)
    exported = (Home.from_env().exports / "preference_pairs.jsonl").read_text()

    fake.reset()
    third = materialize(priced_config(prompts_file, criteria="harmlessness"), fake=fake)
    assert third.success
    assert {r["body"]["model"] for r in fake.requests} == {"judge-1"}  # only the judge is asked again
    assert len(fake.requests) == 18
    assert metadata(third, "candidates")["llm_calls"] == 0
    assert len(exported.splitlines()) == len((Home.from_env().exports / "preference_pairs.jsonl")
                                             .read_text().splitlines())


def write_yaml(path: Path, base_url: str, prompts_file: Path, **extra) -> Path:
    return write_config_file(path, [prompts_file.name], base_url,
                             generators=[{"model": "openai:gen-a", "temperature": 0.3, "rpm": 6000},
                                         {"model": "openai:gen-b", "temperature": 0.9, "tpm": 1_000_000}],
                             candidates_per_prompt=2, judges=[{"model": "openai:judge", "max_concurrency": 8}],
                             prices={"openai:judge": {"input_per_mtok": 1.0, "output_per_mtok": 4.0}}, **extra)


def test_estimate_before_and_after_a_run(home, prompts_file, capsys, monkeypatch):
    with FakeLLMServer() as server:
        config = write_yaml(prompts_file.parent / "p.yaml", server.openai_base_url, prompts_file)
        assert main(["estimate", "--config", str(config)]) == 0
        table = capsys.readouterr().out
        assert "dry run over 3 prompts" in table and "openai:judge" in table and "~4 characters per token" in table
        assert main(["estimate", "--config", str(config), "--json"]) == 0
        before = json.loads(capsys.readouterr().out)
        assert server.requests == []  # a dry run calls nothing
        rows = {(r["step"], r["model"]): r for r in before["rows"]}
        assert rows[("judgments", "openai:judge")]["calls"] == 3 * 1 * 2  # C(2,2) pairs x 2 orders per prompt
        assert rows[("judgments", "openai:judge")]["max_output_tokens"] == 6 * 512
        judge = rows[("judgments", "openai:judge")]
        assert judge["cost_usd"] == pytest.approx((judge["input_tokens"] * 1.0 + judge["max_output_tokens"] * 4.0) / 1e6)
        assert before["total"]["to_pay"] == 6 + 6
        assert before["total"]["unpriced_models"] == ["openai:gen-a", "openai:gen-b"]

        monkeypatch.delenv("PREF_PIPELINE_PROGRESS", raising=False)
        assert main(["run", "--config", str(config), "--progress"]) == 0
        err = capsys.readouterr().err
        assert "candidates:" in err and "judgments:" in err and "call" in err  # the tqdm bars
        monkeypatch.delenv("PREF_PIPELINE_PROGRESS", raising=False)

        assert main(["estimate", "--config", str(config), "--json"]) == 0
        after = json.loads(capsys.readouterr().out)
        assert after["total"]["to_pay"] == 0 and after["total"]["cached"] == 12 and after["total"]["cost_usd"] == 0


def test_new_config_keys_validate_and_name_their_errors(tmp_path):
    path = write_yaml(tmp_path / "ok.yaml", "http://127.0.0.1:9/v1", tmp_path / "p.jsonl", cache=False)
    config = load_config(path)
    assert config.cache is False and config.generators[0].rpm == 6000 and config.generators[1].tpm == 1_000_000
    assert config.judges[0].batch is False and config.judges[0].max_concurrency == 8
    assert config.prices["openai:judge"].output_per_mtok == 4.0
    assert parse_config({}).cache is True
    with pytest.raises(ConfigError, match=r"generators\[0\]: batch: local: models have no batch API"):
        parse_config({"generators": [{"model": "local:smollm2-135m", "batch": True}]})
    with pytest.raises(ConfigError, match=r"judges\[0\]\.rpm"):
        parse_config({"judges": [{"model": "openai:j", "rpm": 0}]})
    with pytest.raises(ConfigError, match=r"prices\.openai:x\.input_per_mtok"):
        parse_config({"prices": {"openai:x": {"output_per_mtok": 1}}})
    # rpm/tpm/batch do not change what a judge answers: its fingerprint stays.
    from pref_pipeline.judging import fingerprint_for

    plain = parse_config({"judges": [{"model": "openai:j"}]}).judges[0]
    tuned = parse_config({"judges": [{"model": "openai:j", "rpm": 10, "tpm": 99, "batch": True,
                                      "max_concurrency": 2}]}).judges[0]
    assert fingerprint_for(plain) == fingerprint_for(tuned)
