"""Plug-ins are declared once: strategies, judge types, rules, gold-corruption edits, HHH principles and
providers. Each registry and each configuration union is found from the declarations, so these tests check
that what the configuration accepts is exactly what is declared, and that rows come from one builder."""

from __future__ import annotations

import pkgutil
import re
import subprocess
import sys
from datetime import datetime, timezone

import pytest

from pref_pipeline import schema, strategies
from pref_pipeline.config import JUDGE_SPECS, STRATEGY_SPECS, ConfigError, judge_spec, parse_config
from pref_pipeline.judging import JUDGE_TYPES
from pref_pipeline.judging.base import JudgeTask
from pref_pipeline.judging.pairwise import OrderedVerdict, PairwiseJudge
from pref_pipeline.judging.parsing import parse_verdict
from pref_pipeline.judging.pointwise import ParsedScore, PointwiseJudge
from pref_pipeline.judging.retries import Tries
from pref_pipeline.judging.rules import RULES, RuleJudge
from pref_pipeline.providers import PROVIDERS, capabilities
from pref_pipeline.runner import Outcome
from pref_pipeline.strategies import STRATEGIES, Strategy
from pref_pipeline.strategies.gold_corruption import EDITS
from pref_pipeline.strategies.hhh_contrast import PRINCIPLES
from pref_pipeline.strategies.templates import data

POINTWISE = {"model": "openai:scorer", "type": "pointwise"}


def test_every_strategy_module_declares_its_method_and_the_configuration_accepts_exactly_those():
    helpers = {"base", "calls", "templates"}
    modules = {m.name for m in pkgutil.iter_modules(strategies.__path__)} - helpers
    assert {cls.__module__.rsplit(".", 1)[1] for cls in STRATEGIES.values()} == modules
    assert set(STRATEGY_SPECS) == set(STRATEGIES)
    for method, cls in STRATEGIES.items():
        assert issubclass(cls, Strategy) and cls.method == method == cls.spec_class.method_name()
        config = parse_config({"strategies": [{"method": method}], "judges": [POINTWISE]})
        assert [s.method for s in config.strategies] == [method]
        assert isinstance(config.strategies[0], cls.spec_class)
    with pytest.raises(ConfigError) as err:
        parse_config({"strategies": [{"method": "samplin"}]})
    assert "strategies[0].method: unknown method 'samplin'; did you mean `sampling`?" in str(err.value)
    assert f"(methods: {', '.join(STRATEGY_SPECS)})" in str(err.value)


def test_a_strategy_says_what_it_needs_of_the_rest_of_the_configuration():
    with pytest.raises(ConfigError, match="strategies: score_extremes needs at least one judge with `type: pointwise`"):
        parse_config({"strategies": [{"method": "score_extremes"}]})
    with pytest.raises(ConfigError, match="sampling takes its candidates from generators: give it once"):
        parse_config({"strategies": [{"method": "sampling"}, {"method": "sampling", "max_prompts": 2}]})


def test_judge_types_are_told_apart_by_type_with_pairwise_the_default():
    assert set(JUDGE_TYPES) == set(JUDGE_SPECS) == {"pairwise", "pointwise", "rule"}
    for name, cls in JUDGE_TYPES.items():
        assert cls.type == name == cls.spec_class.type_name()
    assert judge_spec(model="openai:j").type == "pairwise"
    assert type(judge_spec(**POINTWISE)) is PointwiseJudge.spec_class
    for bad, message in [
        ({"model": "openai:j", "type": "pairwize"}, "judges[0].type: unknown type 'pairwize'; did you mean `pairwise`?"),
        ({**POINTWISE, "critera": "x"}, "judges[0].critera: unknown key; did you mean `criteria`?"),
        ({**POINTWISE, "template": "{question}"}, "judges[0].template: unknown key"),  # pairwise judges only
    ]:
        with pytest.raises(ConfigError) as err:
            parse_config({"judges": [bad]})
        assert message in str(err.value)


def test_rules_are_the_registered_functions():
    for name in RULES:
        [judge] = parse_config({"judges": [{"type": "rule", "rule": name}]}).judges
        assert judge.model == f"rule:{name}" and judge.criteria == name and not judge.calls_model
    with pytest.raises(ConfigError) as err:
        parse_config({"judges": [{"type": "rule", "rule": "be_nice"}]})
    assert all(name in str(err.value) for name in RULES)


def test_gold_corruption_edits_and_hhh_principles_are_their_declarations():
    [spec] = parse_config({"strategies": [{"method": "gold_corruption", "model": "none"}]}).strategies
    assert spec.edits == list(EDITS) == ["delete", "substitute", "insert"]
    with pytest.raises(ConfigError, match=r"strategies\[0\]\.edits\[0\]"):
        parse_config({"strategies": [{"method": "gold_corruption", "edits": ["shuffle"]}]})
    assert PRINCIPLES == tuple(data("hhh_principles.json"))
    assert all(set(instructions) == {"follow", "violate"} for instructions in data("hhh_principles.json").values())
    [spec] = parse_config({"strategies": [{"method": "hhh_contrast"}]}).strategies
    assert spec.principles == list(PRINCIPLES)
    with pytest.raises(ConfigError, match=r"strategies\[0\]\.principles\[0\]"):
        parse_config({"strategies": [{"method": "hhh_contrast", "principles": ["kind"]}]})


@pytest.mark.parametrize(("entry", "message"), [
    ({"model": "local:smollm2-135m", "batch": True}, "batch: local: models have no batch API (only anthropic: and "
                                                     "openai: do)"),
    ({"model": "anthropic:c", "temperature": 0.2}, "temperature: the Anthropic Messages API"),
])
def test_model_specs_are_checked_against_their_providers_capabilities(entry, message):
    assert set(PROVIDERS) == {"openai", "anthropic", "local"}
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config({"generators": [entry]})


def test_logprobs_where_the_provider_has_them():
    assert [name for name in PROVIDERS if capabilities(name).logprobs] == ["openai"]
    assert judge_spec(model="openai:j").wants_logprobs
    for model in ("anthropic:c", "local:smollm2-135m"):
        assert not judge_spec(model=model).wants_logprobs
        with pytest.raises(ValueError, match="logprobs: .* no log-probabilities"):
            judge_spec(model=model, logprobs=True)


def test_reading_a_configuration_imports_no_provider_sdk():
    """The SDKs (openai, anthropic ~2.5 s; llama_cpp) are imported when a model of theirs is first called."""
    code = ("import sys; from pref_pipeline.config import parse_config; parse_config({'judges': [{'model': 'openai:j'}]})"
            "; print(sorted(m for m in ('openai', 'anthropic', 'llama_cpp') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --------------------------------------------------------------------------- one row builder per table

TASK = JudgeTask("cmp-1", "p-1", "Q?", "c-x", "A short answer.", "c-y", "A much longer answer with more words.", "yx")
NOW = datetime(2026, 12, 1, tzinfo=timezone.utc)


def test_every_judge_type_builds_its_rows_with_the_declared_columns():
    pairwise = PairwiseJudge(judge_spec(model="openai:j"), provider=None)
    verdict = OrderedVerdict("yx", parse_verdict('{"preference": "A", "confidence": 0.8, "reasoning": "r"}'), "{}", 1)
    pointwise = PointwiseJudge(judge_spec(**POINTWISE), provider=None)
    score = Outcome(Tries(ParsedScore(7, "fine"), "7", 1), None)
    low = Outcome(Tries(ParsedScore(3, "meh"), "3", 1), None)
    rule = RuleJudge(judge_spec(type="rule", rule="prefer_concise"))
    rows = [pairwise.row(TASK, Outcome(verdict, None), NOW), pairwise.row(TASK, Outcome(None, "HTTP 500"), NOW),
            pointwise.row(TASK, score, low, NOW), rule.row(TASK, *RULES["prefer_concise"](TASK), NOW)]
    for row in rows:
        assert list(row) == schema.names("judgments")
    assert rows[0]["preferred"] == "y" and rows[0]["judge_type"] == "pairwise"  # A in the order yx is y
    assert rows[1]["error"] == "HTTP 500" and rows[1]["preference"] is None
    assert rows[2]["preference"] == "B" and rows[2]["score_x"] == 7  # x scored higher: shown second in yx
    assert rows[3]["preferred"] == "x" and rows[3]["judge_model"] == "rule:prefer_concise"
    with pytest.raises(KeyError, match="judgments has no column"):
        schema.row("judgments", verdict="A")

