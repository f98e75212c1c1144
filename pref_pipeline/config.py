"""The one configuration of a run: a YAML file validated by pydantic.

Other tools write these files, so the keys are a contract: extend, never rename. Every error names
the offending key and the file it came from, with the closest known key for a misspelled one
(``generators[0].temprature: unknown key; did you mean `temperature`?``) and the value given for a
wrong type. An empty file is an error, not the default.
"""

from __future__ import annotations

import codecs
import difflib
import hashlib
import json
import types
import typing
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

PROVIDERS = ("openai", "anthropic", "local")
DEFAULT_LOCAL_MODEL = "local:smollm2-135m"
DEFAULT_CRITERIA = "helpfulness_and_clarity"
# Issue 11: judge types, rule judges (no model) and the built-in rubrics (pref_pipeline/rubrics/*.md).
JUDGE_KINDS = ("pairwise", "pointwise", "rule")
RULES = ("prefer_concise", "no_refusal_of_safe_requests", "reference_match")
RULE_PROVIDER = "rule"  # a rule judge's model is named rule:<rule>; it makes no call
RUBRICS_DIR = Path(__file__).parent / "rubrics"
BUILTIN_RUBRICS = ("helpfulness", "harmlessness", "honesty", "accuracy", "completeness", "clarity",
                   "appropriateness")


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names the file and the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSpec(_Strict):
    """One model endpoint and how to sample from it.

    ``model`` is ``provider:name``. ``base_url`` points ``openai:`` at any compatible server
    (vLLM, llama.cpp, Ollama) and ``anthropic:`` at a proxy; unset, the SDKs' own environment
    variables apply. Sampling keys left unset are not sent, so the server's defaults hold.
    """

    model: str
    _providers: ClassVar[tuple[str, ...]] = PROVIDERS
    base_url: str | None = None
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] | None = None
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    max_tokens: Annotated[int, Field(ge=1, le=32768)] | None = None
    seed: int | None = None
    system_prompt: str | None = None
    # How to ask for a structured verdict: the provider's JSON-schema mode, a plain JSON mode with
    # the schema as a hint (what llama.cpp's server supports), or free text read by the strict parser.
    response_format: Literal["json_schema", "json_object", "text"] = "json_schema"
    timeout_s: Annotated[float, Field(gt=0)] = 120.0
    # Transport-level retries done by the SDK (429/5xx/connection errors, honouring retry-after).
    max_retries: Annotated[int, Field(ge=0, le=20)] = 4
    max_concurrency: Annotated[int, Field(ge=1, le=1024)] = 16
    # Issue 3: client-side budget (requests / tokens per minute; unset = unlimited), shared by every
    # generator and judge with the same model and base_url; and the provider's batch API (half price).
    rpm: Annotated[int, Field(ge=1)] | None = None
    tpm: Annotated[int, Field(ge=1)] | None = None
    batch: bool = False
    batch_poll_s: Annotated[float, Field(gt=0)] = 30.0  # seconds between status polls of a pending batch

    @field_validator("model")
    @classmethod
    def _provider_prefix(cls, value: str) -> str:
        provider, sep, name = value.partition(":")
        if not sep or not name:
            raise ValueError(f"model must be 'provider:name' (providers: {', '.join(PROVIDERS)}), got {value!r}")
        if provider not in cls._providers:
            close = difflib.get_close_matches(provider, PROVIDERS, n=1)
            hint = f"did you mean {close[0]}:{name}? " if close else ""
            raise ValueError(f"unknown provider {provider!r} in {value!r}; {hint}use one of {', '.join(PROVIDERS)}")
        return value

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.lower().startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {value!r} "
                             "(e.g. http://127.0.0.1:8000/v1)")
        return value

    @model_validator(mode="after")
    def _anthropic_takes_no_sampling(self) -> ModelSpec:
        if self.provider == "anthropic":
            given = [k for k in ("temperature", "top_p") if getattr(self, k) is not None]
            if given:
                raise ValueError(
                    f"{', '.join(given)}: the Anthropic Messages API (version 2026-10-21, used by the anthropic "
                    "SDK 2.x) accepts no sampling parameters; remove them for anthropic: models"
                )
        return self

    @model_validator(mode="after")
    def _batch_needs_a_batch_api(self) -> ModelSpec:
        if self.batch and self.provider not in ("openai", "anthropic"):
            raise ValueError(f"batch: {self.provider}: models have no batch API (only openai: and anthropic: do)")
        return self

    @property
    def provider(self) -> str:
        return self.model.split(":", 1)[0]

    @property
    def model_name(self) -> str:
        return self.model.split(":", 1)[1]

    def sampling(self) -> dict[str, Any]:
        """The sampling parameters that determine an answer (unset ones omitted)."""
        keys = ("temperature", "top_p", "max_tokens", "seed")
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}


class GeneratorSpec(ModelSpec):
    """A model that writes candidate responses."""

    max_tokens: Annotated[int, Field(ge=1, le=32768)] | None = 256
    response_format: Literal["json_schema", "json_object", "text"] = "text"
    label: str | None = None  # shown in the data instead of the model name, e.g. "strong"


class JudgeSpec(ModelSpec):
    """A judge: a model that compares two responses (``pairwise``) or scores one (``pointwise``), or a
    named rule with no model (``rule``). Its fingerprint is stored with every verdict."""

    _providers: ClassVar[tuple[str, ...]] = (*PROVIDERS, RULE_PROVIDER)
    type: Literal["pairwise", "pointwise", "rule"] = "pairwise"
    weight: Annotated[float, Field(gt=0.0)] = 1.0  # its vote under judging.aggregation: weighted
    # A built-in rubric (pref_pipeline/rubrics/<name>.md) or a path to a rubric file: the criteria as text.
    rubric: str | None = None
    rule: Literal["prefer_concise", "no_refusal_of_safe_requests", "reference_match"] | None = None
    # Ask for the A/B token log-probabilities (confidence from their margin). Unset: on for openai: judges,
    # off for anthropic: (its API has none) and local: (the in-process model is loaded without logits for
    # every token; serve it with llama_cpp.server and use openai: with base_url for logprobs). Set false for
    # a model that refuses logprobs.
    logprobs: bool | None = None
    max_tokens: Annotated[int, Field(ge=1, le=32768)] | None = 512
    criteria: str = DEFAULT_CRITERIA
    # A custom judge prompt; must contain {question}, {response_a}, {response_b} and {criteria}.
    template: str | None = None
    # Extra attempts when the output cannot be parsed (each recorded; never read as "A").
    parse_retries: Annotated[int, Field(ge=0, le=10)] = 2

    @model_validator(mode="before")
    @classmethod
    def _judge_defaults(cls, data: Any) -> Any:
        """A rule judge is named ``rule:<rule>`` and takes no model; criteria default to the rubric's or
        rule's name; model judges decode greedily unless told otherwise (where the provider takes a
        temperature)."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if data.get("type") == "rule":
            rule = data.get("rule")
            if not rule:
                raise ValueError(f"a rule judge needs `rule` (one of {', '.join(RULES)})")
            model = data.get("model")
            if model is not None and model != f"{RULE_PROVIDER}:{rule}":
                raise ValueError(f"a rule judge has no model (remove `model: {model}`)")
            data["model"] = f"{RULE_PROVIDER}:{rule}"
            data.setdefault("criteria", str(rule))
            return data
        if data.get("rule") is not None:
            raise ValueError("`rule` is only for judges with `type: rule`")
        if str(data.get("model", "")).startswith(f"{RULE_PROVIDER}:"):
            raise ValueError("rule: is not a model provider; write `type: rule` and `rule: <name>`")
        if data.get("rubric") and "criteria" not in data:
            data["criteria"] = Path(str(data["rubric"])).stem
        if "temperature" not in data and not str(data.get("model", "")).startswith("anthropic:"):
            data["temperature"] = 0.0
        return data

    @field_validator("template")
    @classmethod
    def _template_fields(cls, value: str | None) -> str | None:
        if value is not None:
            missing = [f for f in ("{question}", "{response_a}", "{response_b}") if f not in value]
            if missing:
                raise ValueError(f"template lacks {', '.join(missing)}")
        return value

    @field_validator("rubric")
    @classmethod
    def _known_rubric(cls, value: str | None) -> str | None:
        if value is not None and value not in BUILTIN_RUBRICS and not Path(value).is_file():
            raise ValueError(f"rubric {value!r} is neither a built-in rubric ({', '.join(BUILTIN_RUBRICS)}) "
                             "nor an existing file")
        return value

    @model_validator(mode="after")
    def _type_fits(self) -> JudgeSpec:
        if self.type == "pointwise" and self.template is not None:
            raise ValueError("template: a custom template is for pairwise judges (pointwise judges use "
                             "judging/templates/pointwise.jinja)")
        return self

    @property
    def is_rule(self) -> bool:
        return self.type == "rule"

    @model_validator(mode="after")
    def _local_judges_have_no_logprobs(self) -> JudgeSpec:
        if self.logprobs and self.provider == "local":
            raise ValueError("logprobs: the in-process local: model returns no log-probabilities; serve it with "
                             "`python -m llama_cpp.server` and use openai: with base_url for logprobs")
        return self

    @property
    def wants_logprobs(self) -> bool:
        if self.logprobs is not None:
            return self.logprobs
        return self.provider == "openai"

    def rubric_text(self) -> str | None:
        """The rubric's text (a built-in one from the package), or None."""
        if self.rubric is None:
            return None
        path = RUBRICS_DIR / f"{self.rubric}.md" if self.rubric in BUILTIN_RUBRICS else Path(self.rubric)
        return path.read_text(encoding="utf-8")


class JudgingSpec(_Strict):
    """How the judges' verdicts become one decision per comparison (``pref_pipeline/judging/panel.py``).

    ``unanimous``: every judge must prefer the same response in both orders (one dissent blocks the pair).
    ``majority``: more than half of the votes cast; ``weighted``: more than half of the weight cast (each
    judge's ``weight``). In both, a judge inconsistent across orders (or failing, or a rule that does not
    apply) abstains rather than voting.
    """

    aggregation: Literal["unanimous", "majority", "weighted"] = "unanimous"




class PromptSource(_Strict):
    """A file of prompts: JSONL, CSV or Parquet, with a ``prompt`` field and optional
    ``id``, ``category`` and ``reference`` (a gold answer)."""

    path: Path
    # The batch (Dagster partition) this source belongs to; default: the file name without suffix.
    batch: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,100}$")] | None = None
    format: Literal["auto", "jsonl", "csv", "parquet"] = "auto"
    prompt_field: str = "prompt"
    category: str | None = None  # default category for rows that have none
    limit: Annotated[int, Field(ge=1)] | None = None
    # What a bad row does: ``fail`` stops the batch naming every bad line, ``skip`` sets it aside
    # with its reason (the quarantine) while the good rows go on. Unset: the top-level ``on_bad_rows``.
    on_bad_rows: Literal["fail", "skip"] | None = None
    # The file's text encoding; unset: UTF-8, or what its byte-order mark says (UTF-8/16/32).
    encoding: str | None = None

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                codecs.lookup(value)
            except LookupError:
                raise ValueError(f"unknown encoding {value!r} (e.g. utf-8, utf-16, cp1252, latin-1)") from None
        return value


class ScheduleSpec(_Strict):
    """The regular run: every prompt batch, re-run on a cron schedule (off until turned on in the UI)."""

    cron: str = "0 3 * * *"
    timezone: str = "UTC"


class GatesSpec(_Strict):
    """Thresholds of the Great Expectations gates (blocking checks; a failing batch is not exported).

    The dataset-level bounds are off (``None``) by default: the embedded stand-in judge is at chance
    (position consistency ~0.17 on ~6 pairs), and a bound it cannot meet would block the offline
    demo. Turn them on in your configuration for real data, e.g. ``min_position_consistency: 0.6``,
    ``max_length_bias: 0.15``.
    """

    min_prompts: Annotated[int, Field(ge=0)] = 1
    min_candidates: Annotated[int, Field(ge=0)] = 1
    min_judgments: Annotated[int, Field(ge=0)] = 1
    min_pairs: Annotated[int, Field(ge=0)] = 1
    # Floor on the share of (judge, comparison) with the same verdict in both orders.
    min_position_consistency: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    # Largest allowed |share of pairs where the longer response was chosen - 0.5|.
    max_length_bias: Annotated[float, Field(ge=0.0, le=0.5)] | None = None


class FiltersSpec(_Strict):
    """Row filters applied to the pairs before the gate; every dropped row lands in ``quarantine``.

    Ties, position-inconsistent, unparseable and failed comparisons never become pairs (their
    reason is their status). Set a key to ``null`` to turn that filter off.
    """

    min_confidence: Annotated[float, Field(ge=0.0, le=1.0)] | None = None  # pairs with no confidence are kept
    # Responses whose word-shingle Jaccard similarity reaches this are near-identical (1.0: identical only).
    max_response_similarity: Annotated[float, Field(gt=0.0, le=1.0)] | None = 0.9
    min_response_words: Annotated[int, Field(ge=1)] | None = 1  # fewer (e.g. empty, whitespace): dropped
    # A response of at least 8 words whose distinct words are fewer than this share is degenerate.
    min_distinct_word_ratio: Annotated[float, Field(gt=0.0, le=1.0)] | None = 0.2
    max_response_chars: Annotated[int, Field(ge=1)] | None = 20000
    # Prompts whose MinHash-estimated Jaccard similarity (word 3-shingles) reaches this are near-duplicates;
    # only the first (by prompt id order in the batch) is kept. Exact repeats are always dropped.
    near_duplicate_prompt_threshold: Annotated[float, Field(gt=0.0, le=1.0)] | None = 0.8


class ExportSpec(_Strict):
    """How the validated pairs are published."""

    # Drop pairs so that the longer response is chosen in about half of the exported pairs.
    rebalance_length: bool = False
    # Add a ``recency_weight`` column: 0.5 ** (age in days / half-life), age counted from the newest verdict.
    recency_half_life_days: Annotated[float, Field(gt=0.0)] | None = None


class AuditSpec(_Strict):
    """The audit report."""

    length_bias_band: Annotated[float, Field(gt=0.0, le=0.5)] = 0.15  # flag outside 0.5 ± this
    plots: bool = True  # PNG plots under reports/ and in the Dagster UI
    review_sample_size: Annotated[int, Field(ge=1)] = 20  # pairs in `pref-pipeline review export`
    recency_half_life_days: Annotated[float, Field(gt=0.0)] = 30.0  # weights in judgment_history


class DaskSpec(_Strict):
    """Where ``executor: dask`` runs a run's steps: a running Dask scheduler (``address``, e.g.
    ``tcp://10.0.0.5:8786``), or else a ``distributed.LocalCluster`` of ``n_workers`` processes that each run
    starts and stops (one thread each: a Dagster step is not thread-safe)."""

    address: str | None = None
    n_workers: Annotated[int, Field(ge=1)] = 2


class PriceSpec(_Strict):
    """What a model costs, in US dollars per million tokens (batch calls cost half; cached ones nothing)."""

    input_per_mtok: Annotated[float, Field(ge=0.0)]
    output_per_mtok: Annotated[float, Field(ge=0.0)]


# --------------------------------------------------------------------------- strategies (issue 10)
# One class per generation method (``pref_pipeline/strategies/``), told apart by ``method``. A strategy's
# ``model`` (a generator spec) may be left out: the first of ``generators``.

RULE_EDITS = ("delete", "substitute", "insert")
HHH_PRINCIPLES = ("helpful", "honest", "harmless")


class _StrategySpec(_Strict):
    """Keys every strategy has."""

    # Prompts of a batch this strategy runs on (the first N, in batch order); unset: all of them.
    max_prompts: Annotated[int, Field(ge=1)] | None = None


def _no_none_model(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() == "none":
        raise ValueError("`model: none` (edits made by rules, no LLM) is only for gold_corruption; give a model "
                         "spec, or leave model out to use the first of generators")
    return value


class _ModelStrategySpec(_StrategySpec):
    model: GeneratorSpec | None = None  # unset: the first of ``generators``

    _model_not_none = field_validator("model", mode="before")(classmethod(lambda cls, v: _no_none_model(v)))


class SamplingStrategySpec(_StrategySpec):
    """Candidates from ``generators``, ``candidates_per_prompt`` per prompt; the judges pick (no winner known)."""

    method: Literal["sampling"]


class StrongVsWeakSpec(_StrategySpec):
    """ALMoST / orca_dpo_pairs: the strong model's answer is chosen over the weak model's.

    Unset, ``strong`` is the first generator at temperature 0.3 with a careful system prompt and ``weak``
    the same model at temperature 1.3 told to be brief and sloppy (a weak contrast on one small model).
    """

    method: Literal["strong_vs_weak"]
    strong: GeneratorSpec | None = None
    weak: GeneratorSpec | None = None
    confirm: bool = False  # true: the judges also compare; disagreements are quarantined

    _strong_not_none = field_validator("strong", "weak", mode="before")(
        classmethod(lambda cls, v: _no_none_model(v)))


class FewShotContrastSpec(_ModelStrategySpec):
    """ALMoST: an answer written after good demonstrations beats one written after poor ones."""

    method: Literal["few_shot_contrast"]
    shots: Annotated[int, Field(ge=1, le=8)] = 3  # good demonstrations in the chosen answer's prompt


class CritiqueReviseSpec(_ModelStrategySpec):
    """Constitutional AI: answer, critique against a principle, revise; the revision is chosen."""

    method: Literal["critique_revise"]
    principles: Annotated[list[str], Field(min_length=1)] | None = None  # unset: the built-in constitution


class GoldCorruptionSpec(_StrategySpec):
    """AutoPM in-depth: the prompt's ``reference`` is chosen over a subtly corrupted copy of it."""

    method: Literal["gold_corruption"]
    model: GeneratorSpec | Literal["none"] | None = None  # "none": the edits are made by rules, no LLM
    edits: Annotated[list[Literal["delete", "substitute", "insert"]], Field(min_length=1)] = Field(
        default_factory=lambda: list(RULE_EDITS))
    # Bounds on an LLM-edited copy (word 3-shingle Jaccard similarity to the reference, and length ratio in
    # words): not identical, not a different text, not nonsense. Outside them: no pair, quarantined.
    min_similarity: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.2
    max_similarity: Annotated[float, Field(gt=0.0, le=1.0)] = 0.9
    min_length_ratio: Annotated[float, Field(gt=0.0, le=1.0)] = 0.5
    max_length_ratio: Annotated[float, Field(ge=1.0)] = 1.5

    @field_validator("model", mode="before")
    @classmethod
    def _none_spelled_any_case(cls, value: Any) -> Any:
        return "none" if isinstance(value, str) and value.strip().lower() == "none" else value


class HhhContrastSpec(_ModelStrategySpec):
    """AutoPM in-breadth: an answer told to follow a principle beats one told to violate it."""

    method: Literal["hhh_contrast"]
    principles: Annotated[list[Literal["helpful", "honest", "harmless"]], Field(min_length=1)] = Field(
        default_factory=lambda: list(HHH_PRINCIPLES))


class HumanVsModelSpec(_ModelStrategySpec):
    """The prompt's ``reference`` (human-written) against a model answer; the judges decide."""

    method: Literal["human_vs_model"]


class ScoreExtremesSpec(_StrategySpec):
    """``score_extremes`` (issue 11): candidates scored 1-10 by the ``type: pointwise`` judges; the highest is
    chosen over the lowest when they are at least ``min_margin`` points apart (otherwise no pair: quarantined)."""

    method: Literal["score_extremes"]
    min_margin: Annotated[float, Field(ge=0.0, le=9.0)] = 2.0
    candidates: Annotated[int, Field(ge=2, le=16)] | None = None  # per prompt; default candidates_per_prompt


STRATEGY_SPECS: dict[str, type[_StrategySpec]] = {
    "sampling": SamplingStrategySpec, "strong_vs_weak": StrongVsWeakSpec, "few_shot_contrast": FewShotContrastSpec,
    "critique_revise": CritiqueReviseSpec, "gold_corruption": GoldCorruptionSpec, "hhh_contrast": HhhContrastSpec,
    "human_vs_model": HumanVsModelSpec, "score_extremes": ScoreExtremesSpec,
}
StrategySpec = Annotated[
    SamplingStrategySpec | StrongVsWeakSpec | FewShotContrastSpec | CritiqueReviseSpec | GoldCorruptionSpec
    | HhhContrastSpec | HumanVsModelSpec | ScoreExtremesSpec,
    Field(discriminator="method"),
]


def embedded_default_strategies() -> list[dict[str, Any]]:
    """What the embedded offline run (no ``generators`` given) uses: strategies whose labels hold whatever the
    stand-in judge says (gold_corruption by rules, critique_revise, strong_vs_weak), plus sampling."""
    return [
        {"method": "sampling"},
        {"method": "gold_corruption", "model": "none"},
        {"method": "critique_revise", "max_prompts": 12},
        {"method": "strong_vs_weak", "max_prompts": 12},
    ]


class PipelineConfig(_Strict):
    """Everything a run needs. The defaults are the embedded offline run."""

    prompts: list[PromptSource] = Field(default_factory=list)  # empty: the built-in prompt set
    # The default of every prompt source's ``on_bad_rows``: ``fail`` (nothing is spent on a file that
    # is partly wrong) or ``skip`` (bad rows set aside with a reason, the good rows go on).
    on_bad_rows: Literal["fail", "skip"] = "fail"
    # A folder of prompt files (JSONL/CSV/Parquet): each file is a batch, watched by a sensor.
    prompt_folder: Path | None = None
    schedule: ScheduleSpec = Field(default_factory=ScheduleSpec)
    generators: Annotated[list[GeneratorSpec], Field(min_length=1)] = Field(
        default_factory=lambda: [
            GeneratorSpec(model=DEFAULT_LOCAL_MODEL, temperature=0.7, top_p=0.95, max_tokens=120, label="t0.7"),
            GeneratorSpec(model=DEFAULT_LOCAL_MODEL, temperature=1.2, top_p=0.95, max_tokens=120, label="t1.2"),
        ]
    )
    candidates_per_prompt: Annotated[int, Field(ge=2, le=16)] = 2
    judges: Annotated[list[JudgeSpec], Field(min_length=1)] = Field(
        # Greedy, SmolLM2-135M answers "A" whatever the order; sampling at least lets both orders
        # agree by chance now and then, so the stand-in run yields a few pairs (the audit warns).
        default_factory=lambda: [JudgeSpec(model=DEFAULT_LOCAL_MODEL, temperature=1.0, max_tokens=96, parse_retries=1)]
    )
    # Issue 11: how the judges' verdicts combine (unanimous, majority, weighted).
    judging: JudgingSpec = Field(default_factory=JudgingSpec)
    max_prompts: Annotated[int, Field(ge=1)] | None = None
    # A run fails when more than this share of LLM calls still failed after retries.
    max_failure_rate: Annotated[float, Field(ge=0.0, le=1.0)] = 0.1
    # Data quality (issue 4): gate thresholds, row filters, export options, audit options.
    gates: GatesSpec = Field(default_factory=GatesSpec)
    filters: FiltersSpec = Field(default_factory=FiltersSpec)
    export: ExportSpec = Field(default_factory=ExportSpec)
    audit: AuditSpec = Field(default_factory=AuditSpec)
    # LLM calls (issue 3): the persistent response cache under PREF_PIPELINE_HOME/cache, and prices
    # per "provider:model" for cost accounting (merged over built-in defaults, see accounting.py).
    cache: bool = True
    prices: dict[str, PriceSpec] = Field(default_factory=dict)
    # How a Dagster run executes its steps: all in one process (fast: no process start per step, GX and
    # the models loaded once), or each step in its own process (steps of one run in parallel), or each step
    # as a task on a Dask cluster (``dask``: the cluster, processes on this or other machines; needs the
    # ``distributed`` extra and a persistent DAGSTER_HOME).
    executor: Literal["in_process", "multiprocess", "dask"] = "in_process"
    dask: DaskSpec = Field(default_factory=DaskSpec)
    # Issue 10: how pairs are made, one entry per method (see STRATEGY_SPECS). Absent: [{method: sampling}]
    # (judged samples of ``generators``); absent with no ``generators`` either (the embedded offline run):
    # ``embedded_default_strategies()``.
    strategies: Annotated[list[StrategySpec], Field(min_length=1)] = Field(
        default_factory=lambda: [SamplingStrategySpec(method="sampling")])

    @model_validator(mode="before")
    @classmethod
    def _default_strategies(cls, data: Any) -> Any:
        if isinstance(data, dict) and "strategies" not in data and "generators" not in data:
            return {**data, "strategies": embedded_default_strategies()}
        return data

    @model_validator(mode="after")
    def _labels_unique(self) -> PipelineConfig:
        labels = [generator_label(g) for g in self.generators]
        if len(set(labels)) != len(labels):
            raise ValueError("generators must differ in model, sampling or label (give each a distinct 'label')")
        return self

    @model_validator(mode="after")
    def _score_extremes_needs_pointwise(self) -> PipelineConfig:
        if any(s.method == "score_extremes" for s in self.strategies) and \
                not any(j.type == "pointwise" for j in self.judges):
            raise ValueError("strategies: score_extremes needs at least one judge with `type: pointwise`")
        return self

    @property
    def model_judges(self) -> list[JudgeSpec]:
        """The judges that call a model (rule judges make no call)."""
        return [j for j in self.judges if not j.is_rule]


def generator_label(spec: GeneratorSpec) -> str:
    """A readable name for a generator, unique within a config."""
    if spec.label:
        return spec.label
    params = ",".join(f"{k}={v}" for k, v in spec.sampling().items() if k != "max_tokens")
    return f"{spec.model}[{params}]" if params else spec.model


def judge_fingerprint(spec: JudgeSpec, template_text: str, rubric_text: str | None = None) -> str:
    """A short hash of everything that decides a verdict: model, type, prompt template, rubric, criteria,
    sampling, and whether log-probabilities are asked for (they decide the confidence).

    Where the model is served (``base_url``), timeouts and retries do not change the verdict and are
    left out, so moving a judge to another host keeps its identity; so is ``weight`` (it decides the
    panel's vote, not this judge's verdict).
    """
    identity = {
        "model": spec.model,
        "template": template_text,
        "criteria": spec.criteria,
        "system_prompt": spec.system_prompt,
        "sampling": spec.sampling(),
        "response_format": spec.response_format,
    }
    if spec.type != "pairwise" or rubric_text is not None or spec.wants_logprobs:
        identity |= {"type": spec.type, "rubric": rubric_text, "rule": spec.rule, "logprobs": spec.wants_logprobs}
    blob = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _without_tags(loc: tuple) -> tuple:
    """``loc`` without the discriminator tags pydantic inserts after a strategy's index
    (``("strategies", 0, "critique_revise", "principels")`` -> ``("strategies", 0, "principels")``)."""
    out: list = []
    for part in loc:
        if (isinstance(part, str) and part in STRATEGY_SPECS and len(out) >= 2 and out[-2] == "strategies"
                and isinstance(out[-1], int)):
            out.append(("tag", part))
            continue
        out.append(part)
    return tuple(out)


def _model_at(loc: tuple) -> type[BaseModel] | None:
    """The model that holds the key at ``loc``: ``("generators", 0, "temprature")`` -> GeneratorSpec."""
    model: type[BaseModel] | None = PipelineConfig
    annotation: Any = None
    for part in _without_tags(loc)[:-1]:
        if isinstance(part, tuple):  # a strategy's method: its spec class
            model, annotation = STRATEGY_SPECS[part[1]], None
            continue
        if isinstance(part, int):
            continue  # a list index: the element type is found below
        if model is not None and part in model.model_fields:
            annotation = model.model_fields[part].annotation
        elif annotation is None:
            return None
        # else a dict key (a model name under prices): the dict's value type is the model
        model = _find_model(annotation)
        if model is None:
            return None
    return model


def _find_model(annotation: Any) -> type[BaseModel] | None:
    """The model class inside ``list[X]``, ``X | None``, ``dict[str, X]`` or ``Annotated[X, ...]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, list, dict, typing.Annotated):
        for arg in reversed(typing.get_args(annotation)):  # dict[str, X]: the value type
            found = _find_model(arg)
            if found is not None:
                return found
    return None


def _did_you_mean(loc: tuple) -> str:
    model = _model_at(loc)
    if model is None or not loc:
        return ""
    close = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1, cutoff=0.6)
    return f"; did you mean `{close[0]}`?" if close else ""


def _given(value: Any) -> str:
    """The offending value, when it is short enough to quote."""
    if isinstance(value, (str, int, float, bool)) and len(repr(value)) <= 60:
        return f" (got {value!r})"
    if isinstance(value, (dict, list)):
        return f" (got {'a mapping' if isinstance(value, dict) else 'a list'})"
    return ""


def _format_error(exc: ValidationError, origin: str) -> str:
    lines = [f"invalid configuration in {origin}:"]
    for err in exc.errors():
        loc = ""
        for part in _without_tags(tuple(err["loc"])):
            if isinstance(part, tuple):
                continue  # a strategy's method tag: the index already names the entry
            loc += f"[{part}]" if isinstance(part, int) else (f".{part}" if loc else str(part))
        if err["type"] == "extra_forbidden":
            message = "unknown key" + _did_you_mean(tuple(err["loc"]))
        elif err["type"] == "union_tag_invalid":
            tag = str((err.get("ctx") or {}).get("tag", ""))
            close = difflib.get_close_matches(tag, list(STRATEGY_SPECS), n=1, cutoff=0.6)
            hint = f"; did you mean `{close[0]}`?" if close else ""
            loc += ".method"
            message = f"unknown method {tag!r}{hint} (methods: {', '.join(STRATEGY_SPECS)})"
        elif err["type"] == "union_tag_not_found":
            message = f"a strategy needs a `method` (one of {', '.join(STRATEGY_SPECS)})"
        elif err["type"] == "value_error":
            message = err["msg"].removeprefix("Value error, ")
        else:
            message = err["msg"] + _given(err.get("input"))
        lines.append(f"  {loc or '(top level)'}: {message}")
    return "\n".join(lines)


def parse_config(data: dict[str, Any] | None, origin: str = "<config>", base_dir: Path | None = None) -> PipelineConfig:
    """Validate a config mapping; relative prompt paths are resolved against ``base_dir``."""
    data = dict(data or {})
    folder = data.get("prompt_folder")
    if base_dir is not None and folder and not Path(str(folder)).is_absolute():
        data["prompt_folder"] = str(base_dir / str(folder))
    if base_dir is not None and isinstance(data.get("prompts"), list):
        data["prompts"] = [dict(s) if isinstance(s, dict) else s for s in data["prompts"]]  # the caller's stay as given
        for source in data["prompts"]:
            if isinstance(source, dict) and "path" in source and not Path(str(source["path"])).is_absolute():
                source["path"] = str(base_dir / str(source["path"]))
    if base_dir is not None and isinstance(data.get("judges"), list):
        data["judges"] = [dict(j) if isinstance(j, dict) else j for j in data["judges"]]
        for judge in data["judges"]:
            rubric = judge.get("rubric") if isinstance(judge, dict) else None
            if isinstance(rubric, str) and (rubric.endswith((".md", ".txt")) or "/" in rubric) \
                    and not Path(rubric).is_absolute():
                judge["rubric"] = str(base_dir / rubric)
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_error(exc, origin)) from None


def load_config(path: str | Path | None) -> PipelineConfig:
    """Read a YAML config file; ``None`` gives the embedded offline default."""
    if path is None:
        return PipelineConfig()
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read configuration {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}:{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if data is None:  # an empty file, or only comments: most likely not the file that was meant
        raise ConfigError(f"{path}: the configuration file is empty; write `{{}}` in it to mean the defaults "
                          "(the embedded offline run, as without --config)")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(data).__name__}")
    return parse_config(data, origin=str(path), base_dir=path.resolve().parent)
