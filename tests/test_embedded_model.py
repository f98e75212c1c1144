"""The bundled SmolLM2-135M: in process through ``local:``, and served by ``python -m llama_cpp.server``
(a real OpenAI-compatible server nobody here wrote) through the ``openai:`` provider."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

import httpx
import pytest

from pref_pipeline.cli import main
from pref_pipeline.config import parse_config
from pref_pipeline.paths import Home
from pref_pipeline.providers.local_provider import resolve_model_path
from tests.helpers import free_port, materialize, table_rows

pytestmark = pytest.mark.slow


def test_cli_runs_the_embedded_default_on_a_few_prompts(home, prompts_file, tmp_path, capsys):
    config = tmp_path / "small.yaml"
    config.write_text(
        f"prompts: [{{path: {prompts_file}}}]\n"
        "generators:\n"
        "  - {model: 'local:smollm2-135m', temperature: 0.7, max_tokens: 24}\n"
        "  - {model: 'local:smollm2-135m', temperature: 1.2, max_tokens: 24}\n"
        "judges:\n"
        "  - {model: 'local:smollm2-135m', temperature: 1.0, max_tokens: 64}\n"
    )
    code = main(["run", "--config", str(config)])
    out = capsys.readouterr().out
    judgments = table_rows("judgments")
    assert len(judgments) == 3 * 2  # one pair of candidates per prompt, both orders
    assert {j["served_model"] for j in judgments} == {"smollm2-135m"}
    assert all(j["parse_status"] in ("ok", "truncated", "unparseable") for j in judgments)
    assert all(j["preference"] in ("A", "B", "tie") for j in judgments if j["parse_status"] != "unparseable")
    candidates = table_rows("candidates")
    assert all(c["text"].strip() and c["output_tokens"] <= 24 for c in candidates)
    # A chance-level judge may keep no pair on three prompts; then the gate must stop the export.
    exported = Home.from_env().exports / "preference_pairs.jsonl"
    kept = sum(1 for c in table_rows("comparisons") if c["status"] == "consistent")
    if kept:
        assert code == 0 and str(exported) in out
        assert len(exported.read_text().splitlines()) == kept
    else:
        assert code == 1 and not exported.exists()


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    port = free_port()
    # The server logs a lot; a pipe nobody reads would fill up and stall it, so log to a file.
    log = (tmp_path_factory.mktemp("llama_server") / "server.log").open("w+b")
    process = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(resolve_model_path("smollm2-135m")),
         "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--model_alias", "smollm2",
         "--verbose", "False"],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"llama_cpp.server exited: {log.read().decode(errors='replace')[-2000:]}")
        try:
            if httpx.get(f"{base}/v1/models", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.3)
    else:
        process.kill()
        raise RuntimeError("llama_cpp.server did not start within 60 s")
    yield f"{base}/v1"
    process.terminate()
    process.wait(timeout=20)
    log.close()


def test_openai_provider_against_llama_cpp_server(home, prompts_file, llama_server):
    config = parse_config({
        "prompts": [{"path": str(prompts_file), "limit": 2}],
        "generators": [
            {"model": "openai:smollm2", "base_url": llama_server, "temperature": 0.7, "max_tokens": 24},
            {"model": "openai:smollm2", "base_url": llama_server, "temperature": 1.2, "max_tokens": 24},
        ],
        # llama.cpp's server rejects json_schema response formats but honours a schema in json_object.
        "judges": [{"model": "openai:smollm2", "base_url": llama_server, "response_format": "json_object",
                    "temperature": 1.0, "max_tokens": 64}],
    })
    result = materialize(config)
    judgments = table_rows("judgments")
    assert len(judgments) == 4 and all(j["error"] is None for j in judgments)
    parsed = [j for j in judgments if j["parse_status"] != "unparseable"]
    assert parsed, "grammar-constrained JSON should parse"
    for j in parsed:
        assert j["parse_status"] == "truncated" or json.loads(j["raw_output"], strict=False)["preference"] == j["preference"]
    assert all(c["served_model"] == "smollm2" and c["text"] for c in table_rows("candidates"))
    kept = sum(1 for c in table_rows("comparisons") if c["status"] == "consistent")
    assert result.success == (kept > 0)


def test_the_default_judge_with_its_compact_template_and_capped_reasoning_gives_whole_verdicts():
    """The grammar closes the verdict at the cap: every output is complete JSON the strict parser reads as ok."""
    from pref_pipeline.judging.pairwise import JudgeItem, PairwiseJudge
    from pref_pipeline.providers import make_provider

    spec = parse_config({}).judges[0]
    judge = PairwiseJudge(spec, make_provider(spec))
    answer = "Take photos of the damage, then contact the seller with your order number and ask for a replacement."
    items = [JudgeItem("My order arrived damaged. What should I do?", answer, "Wait.", order, seed=1)
             for order in ("xy", "yx")]
    for outcome in asyncio.run(judge.judge_many(items)):
        verdict = outcome.value.verdict
        assert verdict.status == "ok" and verdict.preference in ("A", "B", "tie"), outcome.value.raw_output
        assert len(verdict.reasoning) <= spec.reasoning_max_chars
        assert json.loads(outcome.value.raw_output)["preference"] == verdict.preference
