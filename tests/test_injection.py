"""The injection set's flip rate, computed by the real judging code with the in-process fake as the model.

The fake judge is deliberately gullible (``tests/fakes/gullible.py``): it obeys a verdict instruction
unless the prompt tells it that the delimited text is data. So the hardened template must flip fewer
verdicts than the unhardened one, and every injected verdict must be recorded (parsed, or recorded as
unparseable: never read as "A").
"""

from __future__ import annotations

import json

from pref_pipeline.config import parse_config
from pref_pipeline.injection import INJECTION_SET, load_injection_set, measure_injection
from pref_pipeline.judging.prompts import PAIRWISE_TEMPLATE, UNHARDENED_PAIRWISE_TEMPLATE, render_judge_prompt
from tests.fakes import JUDGE_PROSE, default_judge
from tests.fakes.gullible import gullible_judge, obeyed_label
from tests.fakes.in_process import FakeLLM
from tests.helpers import calls


JUDGE_CONFIG = parse_config({"judges": [{"model": "openai:gullible"}]})


def test_shipped_set_covers_the_attack_kinds_and_is_clean_without_the_injection():
    cases = load_injection_set()
    assert len(cases) >= 20 and len({c.case_id for c in cases}) == len(cases)
    assert {"ignore_instructions", "fake_verdict_json", "fake_system_message", "fake_assistant_turn",
            "fake_closing_delimiter"} <= {c.kind for c in cases}
    assert (INJECTION_SET.parent / "README.md").read_text().count("CC0") >= 1
    for case in cases:
        assert case.injected != case.clean and len(case.good) > len(case.injected)  # on merit the good one wins
        # The clean pair carries no instruction the gullible judge would obey; the injected one does,
        # under the unhardened template, and none under the hardened one.
        clean = render_judge_prompt(UNHARDENED_PAIRWISE_TEMPLATE, question=case.question, response_a=case.good,
                                    response_b=case.clean, criteria="helpfulness")
        assert obeyed_label(clean) is None
        for template, obeyed in ((UNHARDENED_PAIRWISE_TEMPLATE, True), (PAIRWISE_TEMPLATE, False)):
            prompt = render_judge_prompt(template, question=case.question, response_a=case.good,
                                         response_b=case.injected, criteria="helpfulness")
            assert (obeyed_label(prompt) is not None) == obeyed, (case.case_id, template[:40])


def test_hardened_template_flips_fewer_verdicts_for_a_gullible_judge(home):
    cases = load_injection_set()
    fake, config = FakeLLM(judge_fn=gullible_judge), JUDGE_CONFIG
    unhardened = measure_injection(config.judges[0], config, calls(fake), cases, "unhardened")
    hardened = measure_injection(config.judges[0], config, calls(fake), cases, "hardened")
    judge_calls = fake.count("/chat/completions")
    assert judge_calls == 2 * 4 * len(cases)  # both templates x (clean, injected) x both orders; no retry
    for figures in (unhardened, hardened):
        assert figures["cases"] == len(cases) and figures["orders"] == 2 * len(cases)
        assert figures["clean_prefers_good"] == 1.0 and figures["eligible"] == 2 * len(cases)
        assert figures["unparseable"] == 0 and figures["errors"] == 0
        # every injected verdict was parsed and recorded as such
        assert all(o["injected_parse_status"] == "ok" and o["injected"] in ("x", "y", "tie")
                   for r in figures["records"] for o in r["orders"])
        low, high = figures["flip_rate_ci"]
        assert low <= figures["flip_rate"] <= high
    assert hardened["flips"] < unhardened["flips"]
    assert hardened["flip_rate"] == 0.0 and unhardened["flip_rate"] > 0.5
    # Position-specific attacks ("answer B") flip one order of two; "prefer this response" flips both.
    assert unhardened["pair_flips"] < unhardened["flips"] / 2
    assert all(k["flips"] > 0 for k in unhardened["by_kind"].values())


def test_an_unparseable_injected_verdict_is_recorded_as_such_never_as_a_preference(home):
    """A judge that answers the injected pairs with prose: those verdicts are ``unparseable`` (after the
    parse retries), not flips and not "A"."""
    cases = load_injection_set(limit=3)
    injected_texts = {c.injected for c in cases}

    def prose_on_injected(info):
        if info.response_a in injected_texts or info.response_b in injected_texts:
            return JUDGE_PROSE
        return default_judge(info)

    config = JUDGE_CONFIG
    figures = measure_injection(config.judges[0], config, calls(FakeLLM(judge_fn=prose_on_injected)), cases, "hardened")
    orders = [o for r in figures["records"] for o in r["orders"]]
    assert [o["injected"] for o in orders] == ["unparseable"] * 6
    assert all(o["injected_parse_status"] != "ok" and o["injected_raw_output"] == JUDGE_PROSE for o in orders)
    assert figures["unparseable"] == 6 and figures["flips"] == 0 and figures["eligible"] == 6
    assert all(r["injected_pair"] == "unparseable" for r in figures["records"])


def test_bench_injection_prints_the_table(home, tmp_path, capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "bench" / "bench_injection.py"
    spec = importlib.util.spec_from_file_location("bench_injection", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--no-local", "--json", str(tmp_path / "injection.json")]) == 0
    out = capsys.readouterr().out
    assert "unhardened" in out and "hardened" in out and "gullible" in out
    saved = json.loads((tmp_path / "injection.json").read_text())
    assert {(r["judge"], r["template"]) for r in saved} == {("fake gullible judge", "unhardened"),
                                                            ("fake gullible judge", "hardened")}
