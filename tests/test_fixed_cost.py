"""What a run pays besides its work: libraries imported only when a call, a model fit or a plot needs them, plots
redrawn only when what they show changed (``bench/bench_fixed_cost.py`` measures the seconds)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

from pref_pipeline.audit.plots import DRAWN, make_plots
from tests.cli_runs import cli_env, prompt_rows, write_config
from tests.fakes import FakeLLMServer
from tests.helpers import BIN, ROOT, write_prompts

HEAVY = ("openai", "anthropic", "statsmodels", "matplotlib", "llama_cpp")


def imported(stderr: str) -> set[str]:
    """Top-level packages a ``python -X importtime`` process imported."""
    return {m.group(1).split(".")[0] for m in re.finditer(r"^import time:\s+\d+ \|\s+\d+ \|\s+(\S+)$", stderr,
                                                          flags=re.MULTILINE)}


def test_loading_the_code_location_imports_no_sdk_nor_statistics_nor_plotting():
    code = "import pref_pipeline.definitions as d; d.build_definitions(d.config_from_env(), d.Home.from_env())"
    run = subprocess.run([sys.executable, "-X", "importtime", "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True)
    assert not imported(run.stderr) & set(HEAVY), sorted(imported(run.stderr) & set(HEAVY))


def test_a_run_whose_answers_are_all_cached_imports_no_sdk_and_an_unchanged_rerun_draws_no_plot(tmp_path):
    home = tmp_path / "home"
    first = write_prompts(tmp_path / "first.jsonl", prompt_rows(4))
    with FakeLLMServer() as server:
        config = write_config(tmp_path / "first.yaml", server.openai_base_url, [first.name])

        def run(config_file):
            result = subprocess.run([sys.executable, "-X", "importtime", str(BIN / "pref-pipeline"), "run", "--config",
                                     str(config_file), "--no-progress"], cwd=ROOT, env=cli_env(home),
                                    capture_output=True, text=True, timeout=300)
            assert result.returncode == 0, result.stderr[-3000:]
            return imported(result.stderr)

        cold = run(config)
        calls = len(server.requests)
        assert {"openai", "statsmodels", "matplotlib"} <= cold  # the calls, the length model, the plots
        # A new batch of the same prompts: every answer is in the cache, so no SDK is loaded.
        shutil.copy(first, tmp_path / "second.jsonl")
        second = write_config(tmp_path / "second.yaml", server.openai_base_url, ["second.jsonl"])
        warm = run(second)
        assert len(server.requests) == calls
        assert not warm & {"openai", "anthropic", "llama_cpp"}, sorted(warm)
        drawn = json.loads((home / "reports" / DRAWN).read_text())
        pngs = {p.name: p.stat().st_mtime_ns for p in (home / "reports").glob("*.png")}
        assert set(drawn) == {p.removesuffix(".png") for p in pngs}
        # The same batch again: the figures the plots show did not change, so none is redrawn.
        again = run(second)
        assert "matplotlib" not in again
        assert {p.name: p.stat().st_mtime_ns for p in (home / "reports").glob("*.png")} == pngs


def test_a_plot_is_redrawn_when_what_it_shows_changes_and_kept_otherwise(tmp_path):
    audit = {"length_bias": {"histogram": [[-3, 2], [4, 5]], "pct_longer_chosen": 0.7, "by_category": []},
             "position_bias": {"by_judge": []}, "drift": {}}
    made = make_plots(audit, tmp_path)
    assert set(made) == {"length_difference"}
    before = made["length_difference"].stat().st_mtime_ns
    assert make_plots(audit, tmp_path) == made and made["length_difference"].stat().st_mtime_ns == before
    changed = {**audit, "length_bias": {**audit["length_bias"], "histogram": [[-3, 2], [4, 6]]}}
    make_plots(changed, tmp_path)
    assert made["length_difference"].stat().st_mtime_ns != before
    made["length_difference"].unlink()  # a plot deleted by hand is drawn again
    assert make_plots(changed, tmp_path)["length_difference"].exists()


def test_the_forkserver_preloads_the_sdks_of_the_providers_the_configuration_calls_and_every_module_it_names():
    from pref_pipeline.preload import STEP_PRELOAD, step_preload
    from tests.helpers import pipeline_config

    openai_only = pipeline_config(None, "http://127.0.0.1:9/v1", generators=[{"model": "openai:gen"}],
                                  judges=[{"model": "openai:judge"}])
    assert "openai" in step_preload(openai_only) and "anthropic" not in step_preload(openai_only)
    # Last, after any extra module: the module that freezes what the preload left on the heap.
    assert step_preload(openai_only, "pref_pipeline.runs")[-2:] == ["pref_pipeline.runs", "pref_pipeline.preloaded"]
    # A strategy's own model counts (here the only anthropic one); a rule judge calls nothing.
    mixed = pipeline_config(None, "http://127.0.0.1:9/v1", generators=[{"model": "openai:gen"}],
                            judges=[{"model": "openai:judge"}, {"type": "rule", "rule": "prefer_concise"}],
                            strategies=[{"method": "strong_vs_weak",
                                         "strong": {"model": "anthropic:claude", "base_url": "http://127.0.0.1:9"}}])
    assert [spec.model for spec in mixed.model_specs()] == ["openai:gen", "openai:judge", "anthropic:claude"]
    assert {"openai", "anthropic"} <= set(step_preload(mixed)) and {"openai", "anthropic"} <= set(step_preload())
    # The forkserver skips a module it cannot import: a renamed one would cost its import in every process again.
    code = "import importlib, sys; [importlib.import_module(m) for m in sys.argv[1:]]"
    subprocess.run([sys.executable, "-c", code, *STEP_PRELOAD], cwd=ROOT, check=True)
