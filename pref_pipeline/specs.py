"""The parts of the configuration a plug-in declares its own parameters with: models, judges, strategies.

A strategy module (``strategies/``) declares a ``StrategySpec`` subclass next to its class, a judge type
module (``judging/``) a ``JudgeSpec`` subclass; ``config.py`` assembles the configuration from them. Model
specs are checked against what their provider can do (``providers``: ``Capabilities``), so every provider's
rules live on its class, not here.
"""

from __future__ import annotations

import abc
import difflib
import hashlib
import json
import typing
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

from pref_pipeline.ids import short_hash
from pref_pipeline.providers import PROVIDERS, capabilities

DEFAULT_LOCAL_MODEL = "local:smollm2-135m"
DEFAULT_CRITERIA = "helpfulness_and_clarity"
RUBRICS_DIR = Path(__file__).parent / "rubrics"
BUILTIN_RUBRICS = tuple(sorted(p.stem for p in RUBRICS_DIR.glob("*.md")))
# Model-spec keys that say where and how a model is called, not what it answers: left out of a judge's
# fingerprint and a strategy's identity, so moving a model to another host keeps its verdicts and candidates.
WHERE_NOT_WHAT = frozenset({"base_url", "timeout_s", "max_retries", "max_concurrency", "rpm", "tpm", "batch",
                            "batch_poll_s"})


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names the file and the key."""


class Strict(BaseModel):
    """A configuration section: unknown keys are errors (with the closest known key), values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSpec(Strict):
    """One model endpoint and how to sample from it.

    ``model`` is ``provider:name``. ``base_url`` points ``openai:`` at any compatible server
    (vLLM, llama.cpp, Ollama) and ``anthropic:`` at a proxy; unset, the SDKs' own environment
    variables apply. Sampling keys left unset are not sent, so the server's defaults hold.
    """

    model: str
    _other_providers: ClassVar[tuple[str, ...]] = ()  # prefixes a subclass accepts besides the providers'
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
    # Client-side budget (requests / tokens per minute; unset = unlimited), shared by every generator and
    # judge with the same model and base_url; and the provider's batch API (half price).
    rpm: Annotated[int, Field(ge=1)] | None = None
    tpm: Annotated[int, Field(ge=1)] | None = None
    batch: bool = False
    batch_poll_s: Annotated[float, Field(gt=0)] = 30.0  # seconds between status polls of a pending batch

    @field_validator("model")
    @classmethod
    def _provider_prefix(cls, value: str) -> str:
        known = (*PROVIDERS, *cls._other_providers)
        provider, sep, name = value.partition(":")
        if not sep or not name:
            raise ValueError(f"model must be 'provider:name' (providers: {', '.join(PROVIDERS)}), got {value!r}")
        if provider not in known:
            close = difflib.get_close_matches(provider, list(PROVIDERS), n=1)
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
    def _what_the_provider_takes(self) -> ModelSpec:
        if self.provider not in PROVIDERS:
            return self  # a judge with no model (a rule)
        caps = capabilities(self.provider)
        # A seed is sent where the API takes one and dropped where it does not (it also derives the cache keys).
        refused = [k for k in ("temperature", "top_p") if getattr(self, k) is not None and k not in caps.sampling]
        if refused:
            why = caps.no_sampling or f"{self.provider}: models take no {', '.join(refused)}"
            raise ValueError(f"{', '.join(refused)}: {why}; remove them for {self.provider}: models")
        if self.batch and not caps.batch_api:
            with_batch = [name for name, cls in PROVIDERS.items() if cls.capabilities.batch_api]
            raise ValueError(f"batch: {self.provider}: models have no batch API (only "
                             f"{' and '.join(f'{n}:' for n in with_batch)} do)")
        return self

    @property
    def provider(self) -> str:
        return self.model.split(":", 1)[0]

    @property
    def model_name(self) -> str:
        return self.model.split(":", 1)[1]

    def takes(self, parameter: str) -> bool:
        """Whether its provider accepts a sampling parameter (``temperature``, ``top_p``, ``seed``)."""
        return self.provider in PROVIDERS and parameter in capabilities(self.provider).sampling

    def sampling(self) -> dict[str, Any]:
        """The sampling parameters that determine an answer (unset ones omitted; a range as ``{min, max}``)."""
        keys = ("temperature", "top_p", "max_tokens", "seed")
        values = {k: getattr(self, k) for k in keys if getattr(self, k) is not None}
        return {k: v.model_dump() if isinstance(v, SamplingRange) else v for k, v in values.items()}


class SamplingRange(Strict):
    """A range a generator's sampling parameter is drawn from: each sample draws its own value, uniformly in
    ``[min, max]``, from its seed, so a re-run draws (and asks) the same."""

    min: float
    max: float

    @model_validator(mode="after")
    def _ordered(self) -> SamplingRange:
        if self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self

    def draw(self, *parts: object) -> float:
        """The value for the sample named by ``parts`` (its seed and the parameter), to 3 decimals."""
        fraction = int(short_hash(*parts), 16) / 16 ** 16
        return min(self.max, max(self.min, round(self.min + fraction * (self.max - self.min), 3)))


class TemperatureRange(SamplingRange):
    """``temperature: {min: 0.3, max: 1.3}``: a temperature per sample, drawn from its seed."""

    min: Annotated[float, Field(ge=0.0, le=2.0)]  # the lowest temperature drawn
    max: Annotated[float, Field(ge=0.0, le=2.0)]  # the highest temperature drawn


class TopPRange(SamplingRange):
    """``top_p: {min: 0.8, max: 1.0}``: a top-p per sample, drawn from its seed."""

    min: Annotated[float, Field(gt=0.0, le=1.0)]  # the lowest top-p drawn
    max: Annotated[float, Field(gt=0.0, le=1.0)]  # the highest top-p drawn


# The sampling keys a generator may give as a range: the number each one takes, and its range.
RANGED: dict[str, tuple[TypeAdapter, type[SamplingRange]]] = {
    "temperature": (TypeAdapter(Annotated[float, Field(ge=0.0, le=2.0)]), TemperatureRange),
    "top_p": (TypeAdapter(Annotated[float, Field(gt=0.0, le=1.0)]), TopPRange),
}


def _given(value: object) -> str:
    """The offending value, when it is short enough to quote (a range's own mapping is not quoted)."""
    if isinstance(value, (str, int, float, bool)) and len(repr(value)) <= 60:
        return f" (got {value!r})"
    return " (got a list; a range is a mapping {min: ..., max: ...})" if isinstance(value, (list, tuple)) else ""


class GeneratorSpec(ModelSpec):
    """A model that writes candidate responses."""

    # A number, or a range {min, max}: each sample draws its own temperature from its seed (stored with it).
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] | TemperatureRange | None = None
    # A number, or a range {min, max}: each sample draws its own top-p from its seed (stored with it).
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] | TopPRange | None = None
    max_tokens: Annotated[int, Field(ge=1, le=32768)] | None = 256
    response_format: Literal["json_schema", "json_object", "text"] = "text"
    label: str | None = None  # shown in the data instead of the model name, e.g. "strong"

    @field_validator(*RANGED, mode="before")
    @classmethod
    def _number_or_range(cls, value: Any, info: Any) -> Any:
        """A number or a ``{min, max}`` mapping, read as the one or the other, so a mistake gets one error that
        names what is wrong, not one per form the key may take."""
        if value is None or isinstance(value, SamplingRange):
            return value
        number, range_type = RANGED[info.field_name]
        try:
            return range_type.model_validate(value) if isinstance(value, dict) else number.validate_python(value)
        except ValidationError as exc:
            problems = []
            for err in exc.errors():
                where = ".".join(str(part) for part in err["loc"])
                what = ("unknown key (a range has `min` and `max`)" if err["type"] == "extra_forbidden"
                        else err["msg"].removeprefix("Value error, ") + _given(err.get("input")))
                problems.append(f"{where}: {what}" if where else what)
            raise ValueError("; ".join(problems)) from None

    @property
    def ranges(self) -> dict[str, SamplingRange]:
        """The sampling parameters given as a range, by name."""
        return {k: getattr(self, k) for k in RANGED if isinstance(getattr(self, k), SamplingRange)}

    def drawn(self, seed: int) -> GeneratorSpec:
        """The spec one sample is asked with: each range replaced by the value drawn from ``seed`` (the parameter's
        name is part of the draw, so temperature and top-p are drawn independently); itself without a range."""
        ranges = self.ranges
        if not ranges:
            return self
        return self.model_copy(update={k: r.draw(seed, k) for k, r in ranges.items()})


def generator_label(spec: GeneratorSpec) -> str:
    """A readable name for a generator, unique within a config. A range is written ``min..max``: the label names
    the generator as configured (what it draws from), not one sample's draw, which its candidates' ``sampling``
    holds."""
    if spec.label:
        return spec.label
    params = ",".join(f"{k}={v['min']}..{v['max']}" if isinstance(v, dict) else f"{k}={v}"
                      for k, v in spec.sampling().items() if k != "max_tokens")
    return f"{spec.model}[{params}]" if params else spec.model


# --------------------------------------------------------------------------- judges

class JudgeSpec(ModelSpec):
    """What every judge type has. A judge type (one module in ``judging/``) subclasses it with its own keys and
    ``type: Literal["<name>"]``; the configuration's ``judges`` entries are told apart by ``type`` (default
    ``pairwise``). Its fingerprint is stored with every verdict."""

    type: str
    weight: Annotated[float, Field(gt=0.0)] = 1.0  # its vote under judging.aggregation: weighted
    # A built-in rubric (pref_pipeline/rubrics/<name>.md) or a path to a rubric file: the criteria as text.
    rubric: str | None = None
    # Ask for the A/B token log-probabilities (confidence from their margin). Unset: where the provider has them
    # (openai:); never for anthropic: (its API has none) and local: (the in-process model is loaded without
    # logits for every token; serve it with llama_cpp.server and use openai: with base_url for logprobs). Set
    # false for a model that refuses logprobs.
    logprobs: bool | None = None
    max_tokens: Annotated[int, Field(ge=1, le=32768)] | None = 512
    criteria: str = DEFAULT_CRITERIA
    # Extra attempts when the output cannot be parsed (each recorded; never read as "A").
    parse_retries: Annotated[int, Field(ge=0, le=10)] = 2
    calls_model: ClassVar[bool] = True  # False: a judge that decides without a model (a rule)

    @classmethod
    def type_name(cls) -> str:
        """The ``type`` value that names this judge type in a configuration."""
        return typing.get_args(cls.model_fields["type"].annotation)[0]

    @model_validator(mode="before")
    @classmethod
    def _greedy_by_default(cls, data: Any) -> Any:
        """Model judges decode greedily unless told otherwise, where the provider takes a temperature; criteria
        default to the rubric's name."""
        if not isinstance(data, dict) or not cls.calls_model:
            return data
        data = dict(data)
        if str(data.get("model", "")).startswith("rule:"):
            raise ValueError("rule: is not a model provider; write `type: rule` and `rule: <name>`")
        if data.get("rubric") and "criteria" not in data:
            data["criteria"] = Path(str(data["rubric"])).stem
        provider = str(data.get("model", "")).partition(":")[0]
        if "temperature" not in data and provider in PROVIDERS and "temperature" in capabilities(provider).sampling:
            data["temperature"] = 0.0
        return data

    @field_validator("rubric")
    @classmethod
    def _known_rubric(cls, value: str | None) -> str | None:
        if value is not None and value not in BUILTIN_RUBRICS and not Path(value).is_file():
            raise ValueError(f"rubric {value!r} is neither a built-in rubric ({', '.join(BUILTIN_RUBRICS)}) "
                             "nor an existing file")
        return value

    @model_validator(mode="after")
    def _logprobs_where_the_provider_has_them(self) -> JudgeSpec:
        if self.logprobs and self.provider in PROVIDERS and not capabilities(self.provider).logprobs:
            why = capabilities(self.provider).no_logprobs or f"{self.provider}: models return no log-probabilities"
            raise ValueError(f"logprobs: {why}")
        return self

    @property
    def is_rule(self) -> bool:
        return not self.calls_model

    @property
    def wants_logprobs(self) -> bool:
        """Whether verdicts ask for the label tokens' log-probabilities (their margin is the confidence): as set, or
        where the provider has them. Part of the fingerprint of every judge type."""
        if self.logprobs is not None:
            return self.logprobs
        return self.provider in PROVIDERS and capabilities(self.provider).logprobs

    def rubric_text(self) -> str | None:
        """The rubric's text (a built-in one from the package), or None."""
        if self.rubric is None:
            return None
        path = RUBRICS_DIR / f"{self.rubric}.md" if self.rubric in BUILTIN_RUBRICS else Path(self.rubric)
        return path.read_text(encoding="utf-8")

    @abc.abstractmethod
    def template_text(self) -> str:
        """What makes the verdict besides the model: its prompt template, or a rule's source."""

    def fingerprint(self, template: str | None = None) -> str:
        """A short hash of everything that decides a verdict: model, type, prompt template, rubric, criteria,
        sampling, and whether log-probabilities are asked for (they decide the confidence).

        Where the model is served (``base_url``), timeouts and retries do not change the verdict and are left
        out, so moving a judge to another host keeps its identity; so is ``weight`` (it decides the panel's vote,
        not this judge's verdict). A pairwise judge without a rubric or logprobs hashes as it always has; a
        verdict format other than the default JSON (``verdict_format: lines``) is part of the hash.
        """
        rubric = self.rubric_text()
        identity: dict[str, Any] = {
            "model": self.model,
            "template": template or self.template_text(),
            "criteria": self.criteria,
            "system_prompt": self.system_prompt,
            "sampling": self.sampling(),
            "response_format": self.response_format,
        }
        if self.type != "pairwise" or rubric is not None or self.wants_logprobs:
            identity |= {"type": self.type, "rubric": rubric, "rule": getattr(self, "rule", None),
                         "logprobs": self.wants_logprobs}
        verdict_format = getattr(self, "verdict_format", "json")
        if verdict_format != "json":  # only when asked, so every judge of the default format keeps its hash
            identity["verdict_format"] = verdict_format
        reasoning_max_chars = getattr(self, "reasoning_max_chars", None)
        if reasoning_max_chars is not None:  # a capped reasoning is another schema, another grammar: another verdict
            identity["reasoning_max_chars"] = reasoning_max_chars
        blob = json.dumps(identity, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- strategies

class StrategySpec(Strict):
    """Keys every strategy has. A strategy (one module in ``strategies/``) subclasses it with its own keys and
    ``method: Literal["<name>"]``; the configuration's ``strategies`` entries are told apart by ``method``."""

    # Prompts of a batch this strategy runs on (the first N, in batch order); unset: all of them.
    max_prompts: Annotated[int, Field(ge=1)] | None = None

    @classmethod
    def method_name(cls) -> str:
        """The ``method`` value that names this strategy in a configuration (and the export's
        ``generation_method``)."""
        return typing.get_args(cls.model_fields["method"].annotation)[0]


def no_none_model(value: Any) -> Any:
    """``model: none`` (edits by rules) is for ``gold_corruption`` only; any other strategy needs a model."""
    if isinstance(value, str) and value.strip().lower() == "none":
        raise ValueError("`model: none` (edits made by rules, no LLM) is only for gold_corruption; give a model "
                         "spec, or leave model out to use the first of generators")
    return value


class ModelStrategySpec(StrategySpec):
    """A strategy that asks one model: its own ``model``, or the first of ``generators`` when left out."""

    model: GeneratorSpec | None = None

    _model_not_none = field_validator("model", mode="before")(classmethod(lambda cls, v: no_none_model(v)))
