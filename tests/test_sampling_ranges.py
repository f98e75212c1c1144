"""Seed 004's sampling recipe: a generator's ``temperature`` (and ``top_p``) given as a range ``{min, max}``.

Each sample draws its own value from its seed, so a re-run asks the very same requests and the response cache
answers them all; the value sent is stored in the candidate's ``sampling`` (with the range it came from) and
exported with the pair. A plain number asks, labels and identifies exactly as before.
"""

from __future__ import annotations

import json

import pytest

from pref_pipeline.config import ConfigError, parse_config
from pref_pipeline.estimate import estimate_run
from pref_pipeline.paths import Home
from pref_pipeline.providers.base import RequestBuilder
from pref_pipeline.specs import GeneratorSpec, generator_label
from pref_pipeline.strategies.calls import Ask
from tests.fakes.in_process import FakeLLM
from tests.helpers import SAMPLE_PROMPTS, materialize, pipeline_config, read_jsonl, table_rows

RANGED = {"model": "openai:gen-a", "temperature": {"min": 0.3, "max": 1.3}, "top_p": {"min": 0.8, "max": 1.0}}
PLAIN = {"model": "openai:gen-b", "temperature": 0.7}
RANGED_LABEL = "openai:gen-a[temperature=0.3..1.3,top_p=0.8..1.0]"


def metadata(result, asset: str) -> dict:
    [mat] = result.asset_materializations_for_node(asset)
    return {k: getattr(v, "value", v) for k, v in mat.metadata.items()}


def test_a_temperature_range_is_drawn_per_sample_stored_exported_and_reproducible(home, prompts_file):
    fake = FakeLLM()
    config = pipeline_config(prompts_file, generators=[RANGED, PLAIN], judges=[{"model": "openai:judge-1"}],
                             candidates_per_prompt=4)
    first = materialize(config, fake=fake)
    assert first.success

    candidates = {c["candidate_id"]: c for c in table_rows("candidates")}
    assert len(candidates) == 4 * len(SAMPLE_PROMPTS)
    sent = {r["body"]["seed"]: r["body"] for r in fake.requests if r["body"]["model"] == "gen-a"}
    ranged = [c for c in candidates.values() if c["generator_model"] == "openai:gen-a"]
    assert len(ranged) == 2 * len(SAMPLE_PROMPTS) and len(sent) == len(ranged)
    temperatures = []
    for c in ranged:
        assert c["generator_label"] == RANGED_LABEL  # the generator as configured, not one sample's draw
        sampling = json.loads(c["sampling"])
        assert sampling["temperature_range"] == {"min": 0.3, "max": 1.3}
        assert sampling["top_p_range"] == {"min": 0.8, "max": 1.0}
        assert 0.3 <= sampling["temperature"] <= 1.3 and 0.8 <= sampling["top_p"] <= 1.0
        # What was stored is what was sent, and what the sample's seed draws.
        body = sent[sampling["seed"]]
        assert (body["temperature"], body["top_p"]) == (sampling["temperature"], sampling["top_p"])
        drawn = config.generators[0].drawn(sampling["seed"])
        assert (drawn.temperature, drawn.top_p) == (sampling["temperature"], sampling["top_p"])
        temperatures.append(sampling["temperature"])
    assert len(set(temperatures)) >= len(temperatures) - 1  # each sample its own temperature
    for c in candidates.values():
        if c["generator_model"] == "openai:gen-b":  # a plain number: as before
            assert c["generator_label"] == "openai:gen-b[temperature=0.7]"
            assert json.loads(c["sampling"]) == {"max_tokens": 256, "seed": json.loads(c["sampling"])["seed"],
                                                 "temperature": 0.7}

    rows = read_jsonl(Home.from_env().exports / "preference_pairs.jsonl")
    assert rows
    exported_ranged = 0
    for row in rows:
        for side in ("chosen", "rejected"):
            candidate = candidates[row[f"{side}_candidate_id"]]
            assert row[f"{side}_sampling"] == candidate["sampling"]  # the drawn value, exported
            assert row[f"{side}_generator"] == candidate["generator_label"]
            exported_ranged += candidate["generator_model"] == "openai:gen-a"
    assert exported_ranged

    # The dry-run estimate draws the same values: after the run, every call it counts is in the cache.
    estimate = estimate_run(config, Home.from_env())
    assert estimate["total"]["calls"] == estimate["total"]["cached"] > 0

    fake.reset()
    second = materialize(config, fake=fake)
    assert second.success
    assert fake.requests == []  # the same draws, the same requests: every one answered by the cache
    assert (metadata(second, "candidates")["llm_calls"], metadata(second, "candidates")["llm_cached_calls"]) == (0, 12)
    again = {c["candidate_id"]: c["sampling"] for c in table_rows("candidates")}
    assert again == {cid: c["sampling"] for cid, c in candidates.items()}


def test_a_plain_number_asks_and_records_as_before():
    spec = GeneratorSpec(model="openai:g", temperature=0.7, top_p=0.9)
    ask = Ask("p1", "sample", spec, "Why is the sky blue?", seed=42)
    assert ask.sent_spec is spec and spec.ranges == {}
    assert ask.request() == RequestBuilder(spec).request("Why is the sky blue?", seed=42)
    assert ask.sampling() == {**spec.sampling(), "seed": 42}
    assert generator_label(spec) == "openai:g[temperature=0.7,top_p=0.9]"


def test_the_draw_is_the_seeds_and_within_the_range():
    spec = GeneratorSpec(model="openai:g", temperature={"min": 0.3, "max": 1.3})
    values = [spec.drawn(seed).temperature for seed in range(400)]
    assert values == [spec.drawn(seed).temperature for seed in range(400)]  # reproducible
    assert all(0.3 <= v <= 1.3 for v in values)
    assert min(values) < 0.4 and max(values) > 1.2  # spread over the range
    assert spec.drawn(1).top_p is None  # a key left unset stays unset
    ask = Ask("p1", "sample", spec, "Hi", seed=7)
    assert ask.request().temperature == spec.drawn(7).temperature
    assert ask.sampling() == {"max_tokens": 256, "seed": 7, "temperature": spec.drawn(7).temperature,
                              "temperature_range": {"min": 0.3, "max": 1.3}}
    # Temperature and top-p are drawn independently from one seed.
    both = GeneratorSpec(model="openai:g", temperature={"min": 0.0, "max": 1.0}, top_p={"min": 0.0001, "max": 1.0})
    assert sum(both.drawn(s).temperature == both.drawn(s).top_p for s in range(100)) < 5
    assert GeneratorSpec(model="openai:g", temperature={"min": 0.5, "max": 0.5}).drawn(3).temperature == 0.5


@pytest.mark.parametrize(("generator", "expected"), [
    ({"model": "anthropic:claude-x", "temperature": {"min": 0.3, "max": 1.3}}, "generators[0]: temperature: "),
    ({"model": "openai:g", "temperature": {"min": 1.3, "max": 0.3}},
     "generators[0].temperature: min 1.3 is above max 0.3"),
    ({"model": "openai:g", "temperature": {"min": 0.3, "max": 2.5}},
     "generators[0].temperature: max: Input should be less than or equal to 2 (got 2.5)"),
    ({"model": "openai:g", "top_p": {"min": 0, "max": 1}},
     "generators[0].top_p: min: Input should be greater than 0 (got 0)"),
    ({"model": "openai:g", "temperature": {"min": 0.3, "mx": 1.3}},
     "generators[0].temperature: max: Field required; mx: unknown key (a range has `min` and `max`)"),
    ({"model": "openai:g", "temperature": [0.3, 1.3]}, "generators[0].temperature: Input should be a valid number "
                                                       "(got a list; a range is a mapping {min: ..., max: ...})"),
    ({"model": "openai:g", "temperature": 3}, "generators[0].temperature: Input should be less than or equal to 2 "
                                              "(got 3)"),
])
def test_a_bad_range_is_one_error_naming_the_key(generator, expected):
    with pytest.raises(ConfigError) as err:
        parse_config({"generators": [generator], "judges": [{"model": "openai:j"}]})
    assert expected in str(err.value)
    assert str(err.value).count("\n  ") == 1  # one error, not one per form the key may take


def test_a_judge_takes_no_range():
    with pytest.raises(ConfigError, match=r"judges\[0\]\.temperature"):
        parse_config({"judges": [{"model": "openai:j", "temperature": {"min": 0.0, "max": 1.0}}]})


def test_a_range_is_part_of_the_strategy_identity_and_label():
    config = parse_config({"generators": [RANGED, PLAIN], "judges": [{"model": "openai:j"}],
                           "strategies": [{"method": "critique_revise", "model": RANGED}]})
    assert [generator_label(g) for g in config.generators] == [RANGED_LABEL, "openai:gen-b[temperature=0.7]"]
    from pref_pipeline.generation import configured_strategies

    [strategy] = configured_strategies(config)
    params = json.loads(strategy.strategy_params)
    assert params["model"]["temperature"] == {"min": 0.3, "max": 1.3}
