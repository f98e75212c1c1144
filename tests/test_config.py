"""The run configuration: defaults, error messages that name the key, paths, the judge fingerprint."""

from __future__ import annotations

from pathlib import Path

import pytest

from pref_pipeline.config import (
    DEFAULT_LOCAL_MODEL,
    ConfigError,
    PipelineConfig,
    judge_spec,
    load_config,
    parse_config,
)
from pref_pipeline.judging.prompts import PAIRWISE_TEMPLATE


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_default_config():
    config = load_config(None)
    assert isinstance(config, PipelineConfig)
    assert DEFAULT_LOCAL_MODEL == "local:smollm2-135m"
    assert [g.model for g in config.generators] == ["local:smollm2-135m", "local:smollm2-135m"]
    assert [j.model for j in config.judges] == ["local:smollm2-135m"]
    assert config.candidates_per_prompt == 2
    assert config.prompts == []  # the built-in set


@pytest.mark.parametrize("text", ["", "\n\n", "# just a comment\n"])
def test_empty_file_is_an_error(tmp_path, text):
    """An empty file used to become the built-in default silently (most likely the wrong file)."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match="the configuration file is empty; write `{}` in it to mean the defaults"):
        load_config(path)


def test_an_empty_mapping_is_the_default(tmp_path):
    assert load_config(write(tmp_path, "{}\n")) == PipelineConfig()


def test_valid_file(tmp_path):
    config = load_config(write(tmp_path, """
generators:
  - model: openai:gpt-4o-mini
    temperature: 0.2
  - model: anthropic:claude-x
    max_tokens: 300
candidates_per_prompt: 3
judges:
  - model: openai:gpt-4o
    base_url: http://localhost:8000/v1
    criteria: accuracy
"""))
    assert [g.provider for g in config.generators] == ["openai", "anthropic"]
    assert config.generators[0].model_name == "gpt-4o-mini"
    assert config.candidates_per_prompt == 3
    assert config.judges[0].criteria == "accuracy"
    assert config.judges[0].temperature == 0.0  # a judge is greedy unless told otherwise


def test_misspelled_key_is_named(tmp_path):
    path = write(tmp_path, "generators: [{model: openai:x, temprature: 0.5}]\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert "generators[0].temprature" in message
    assert "unknown key" in message
    assert str(path) in message


def test_misspelled_top_level_key(tmp_path):
    with pytest.raises(ConfigError, match=r"candidate_per_prompt: unknown key"):
        load_config(write(tmp_path, "candidate_per_prompt: 3\n"))


@pytest.mark.parametrize(("text", "expected"), [
    ("generators: [{model: openai:x, temprature: 0.5}]\n", "generators[0].temprature: unknown key; did you mean `temperature`?"),
    ("judges: [{model: openai:x, critera: accuracy}]\n", "judges[0].critera: unknown key; did you mean `criteria`?"),
    ("candidate_per_prompt: 3\n", "candidate_per_prompt: unknown key; did you mean `candidates_per_prompt`?"),
    ("gates: {min_pair: 5}\n", "gates.min_pair: unknown key; did you mean `min_pairs`?"),
    ("prompts: [{path: p.jsonl, on_bad_row: skip}]\n", "prompts[0].on_bad_row: unknown key; did you mean `on_bad_rows`?"),
    ("prices: {'openai:x': {input_per_mtoks: 1, output_per_mtok: 2}}\n",
     "prices.openai:x.input_per_mtoks: unknown key; did you mean `input_per_mtok`?"),
    ("colour: blue\n", "colour: unknown key\n"),  # nothing close: no guess
])
def test_unknown_keys_suggest_the_closest(tmp_path, text, expected):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    assert expected in str(err.value) + "\n"


@pytest.mark.parametrize(("text", "expected"), [
    ("candidates_per_prompt: many\n", "candidates_per_prompt: Input should be a valid integer, unable to parse string "
                                      "as an integer (got 'many')"),
    ("generators: [{model: openai:x, temperature: hot}]\n", "generators[0].temperature: Input should be a valid number"),
    ("generators: {model: openai:x}\n", "generators: Input should be a valid list (got a mapping)"),
    ("on_bad_rows: ignore\n", "on_bad_rows: Input should be 'fail' or 'skip' (got 'ignore')"),
    ("generators: [{model: opneai:gpt-4.1}]\n", "unknown provider 'opneai' in 'opneai:gpt-4.1'; did you mean openai:gpt-4.1?"),
    ("generators: [{model: openai:x, base_url: 'localhost:8000/v1'}]\n",
     "generators[0].base_url: base_url must start with http:// or https://, got 'localhost:8000/v1'"),
    ("prompts: [{path: p.jsonl, encoding: klingon}]\n", "prompts[0].encoding: unknown encoding 'klingon'"),
])
def test_wrong_types_say_what_was_given(tmp_path, text, expected):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    assert expected in str(err.value)
    assert "Value error," not in str(err.value)


def test_unknown_provider_names_the_model_key(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, "generators:\n  - model: foo:bar\n"))
    message = str(err.value)
    assert "generators[0].model" in message
    assert "foo" in message


def test_model_without_provider_prefix(tmp_path):
    with pytest.raises(ConfigError, match=r"judges\[0\]\.model"):
        load_config(write(tmp_path, "judges:\n  - model: gpt-4o\n"))


def test_one_candidate_per_prompt_is_rejected(tmp_path):
    with pytest.raises(ConfigError, match="candidates_per_prompt"):
        load_config(write(tmp_path, "candidates_per_prompt: 1\n"))


@pytest.mark.parametrize(
    ("yaml_text", "key"),
    [
        ("generators:\n  - model: openai:x\n    temperature: 3\n", "generators[0].temperature"),
        ("judges:\n  - model: openai:j\n    parse_retries: 11\n", "judges[0].parse_retries"),
        ("judges:\n  - model: openai:j\n    template: 'no fields here'\n", "judges[0].template"),
        ("max_failure_rate: 2\n", "max_failure_rate"),
        ("generators: []\n", "generators"),
        ("prompts:\n  - path: a.jsonl\n    format: xml\n", "prompts[0].format"),
    ],
)
def test_invalid_values_name_the_key(tmp_path, yaml_text, key):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, yaml_text))
    assert key in str(err.value)


def test_identical_generators_are_rejected(tmp_path):
    text = "generators:\n  - model: openai:x\n  - model: openai:x\n"
    with pytest.raises(ConfigError, match="label"):
        load_config(write(tmp_path, text))


def test_invalid_yaml_names_the_line(tmp_path):
    path = write(tmp_path, "candidates_per_prompt: 2\ngenerators:\n  - model: openai:x\n   bad: [unclosed\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert "not valid YAML" in message
    assert "line 4" in message
    assert str(path) in message


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "42\n"])
def test_top_level_must_be_a_mapping(tmp_path, text):
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(write(tmp_path, text))


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read configuration"):
        load_config(tmp_path / "nope.yaml")


def test_relative_prompt_paths_resolve_against_the_config_folder(tmp_path, monkeypatch):
    folder = tmp_path / "configs"
    folder.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    absolute = tmp_path / "abs.jsonl"
    path = write(folder, f"prompts:\n  - path: data/prompts.jsonl\n  - path: {absolute}\n")
    config = load_config(path)
    assert config.prompts[0].path == folder.resolve() / "data" / "prompts.jsonl"
    assert config.prompts[1].path == absolute


def test_parse_config_without_base_dir_keeps_relative_paths():
    config = parse_config({"prompts": [{"path": "p.jsonl"}]})
    assert config.prompts[0].path == Path("p.jsonl")


def test_parse_config_does_not_mutate_its_input(tmp_path):
    data = {"prompts": [{"path": "p.jsonl"}]}
    parse_config(data, base_dir=tmp_path)
    assert data == {"prompts": [{"path": "p.jsonl"}]}


# --------------------------------------------------------------------------- judge fingerprint

BASE = {"model": "openai:judge", "criteria": "accuracy", "temperature": 0.0}


def fp(template: str = PAIRWISE_TEMPLATE, **changes) -> str:
    return judge_spec(**{**BASE, **changes}).fingerprint(template)


def test_fingerprint_is_deterministic():
    assert fp() == fp()
    assert len(fp()) == 16


@pytest.mark.parametrize(
    "changes",
    [{"model": "openai:other"}, {"model": "local:judge"}, {"criteria": "harmlessness"}, {"temperature": 0.5},
     {"max_tokens": 100}, {"seed": 3}, {"system_prompt": "Be terse."}, {"response_format": "text"}],
)
def test_fingerprint_changes_with_what_decides_a_verdict(changes):
    assert fp(**changes) != fp()


def test_fingerprint_changes_with_template():
    assert fp(template=PAIRWISE_TEMPLATE + "\nBe strict.") != fp()


@pytest.mark.parametrize(
    "changes",
    [{"base_url": "http://other-host:8000/v1"}, {"timeout_s": 5.0}, {"max_retries": 0}, {"max_concurrency": 2},
     {"parse_retries": 5}],
)
def test_fingerprint_ignores_where_and_how_the_judge_is_called(changes):
    assert fp(**changes) == fp()


def test_logprobs_default_and_local_judges():
    """OpenAI judges ask for log-probabilities by default; the in-process local model has none to give."""
    config = parse_config({"judges": [{"model": "openai:j", "base_url": "http://127.0.0.1:9/v1"}]})
    assert config.judges[0].wants_logprobs
    assert not parse_config({}).judges[0].wants_logprobs  # the embedded default judge (local:)
    with pytest.raises(ConfigError, match="in-process local: model returns no log-probabilities"):
        parse_config({"judges": [{"model": "local:smollm2-135m", "logprobs": True}]})
