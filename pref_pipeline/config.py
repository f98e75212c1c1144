"""The one configuration of a run: a YAML file validated by pydantic.

Other tools write these files, so the keys are a contract: extend, never rename. Every error names
the offending key and the file it came from, with the closest known key for a misspelled one
(``generators[0].temprature: unknown key; did you mean `temperature`?``) and the value given for a
wrong type. An empty file is an error, not the default.
"""

from __future__ import annotations

import codecs
import difflib
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, Discriminator, Field, Tag, TypeAdapter, ValidationError, field_validator, model_validator

from pref_pipeline.human_sets import SHIPPED_LICENSES, SHIPPED_SETS, shipped_license
from pref_pipeline.judging import JUDGE_TYPES
from pref_pipeline.judging.pairwise import PairwiseJudgeSpec
from pref_pipeline.judging.prompts import PAIRWISE_COMPACT_TEMPLATE
from pref_pipeline.specs import (  # noqa: F401 (the configuration's parts, importable from here)
    DEFAULT_CRITERIA,
    DEFAULT_LOCAL_MODEL,
    ConfigError,
    GeneratorSpec,
    JudgeSpec,
    ModelSpec,
    StrategySpec,
    Strict,
    generator_label,
)
from pref_pipeline.strategies import STRATEGIES
from pref_pipeline.strategies.sampling import SamplingSpec

# --------------------------------------------------------------------------- plug-ins
# The strategies and judge types declare their own parameters (``strategies/*.py``, ``judging/*.py``); the
# configuration's ``strategies`` and ``judges`` entries are unions of those declarations, told apart by
# ``method`` and by ``type`` (default ``pairwise``).

STRATEGY_SPECS: dict[str, type[StrategySpec]] = {method: cls.spec_class for method, cls in STRATEGIES.items()}
JUDGE_SPECS: dict[str, type[JudgeSpec]] = {name: cls.spec_class for name, cls in JUDGE_TYPES.items()}
DEFAULT_JUDGE_TYPE = PairwiseJudgeSpec.type_name()


def _judge_type(value: Any) -> str:
    return (value.get("type") if isinstance(value, dict) else getattr(value, "type", None)) or DEFAULT_JUDGE_TYPE


AnyStrategySpec = Annotated[Union[tuple(STRATEGY_SPECS.values())], Field(discriminator="method")]
AnyJudgeSpec = Annotated[Union[tuple(Annotated[cls, Tag(name)] for name, cls in JUDGE_SPECS.items())],
                         Discriminator(_judge_type)]
# Configuration fields whose entries are told apart by a key: the key, the spec of each of its values, and what
# an entry is called in messages.
TAGGED: dict[str, tuple[str, dict[str, type[BaseModel]], str]] = {
    "strategies": ("method", STRATEGY_SPECS, "strategy"), "judges": ("type", JUDGE_SPECS, "judge")}
_JUDGE = TypeAdapter(AnyJudgeSpec)


def judge_spec(**keys: Any) -> JudgeSpec:
    """One judge as a configuration's ``judges`` entry would give it (its type from ``type``, default pairwise)."""
    return _JUDGE.validate_python(keys)


class JudgingSpec(Strict):
    """How the judges' verdicts become one decision per comparison (``pref_pipeline/judging/panel.py``).

    ``unanimous``: every judge must prefer the same response in both orders (one dissent blocks the pair).
    ``majority``: more than half of the votes cast; ``weighted``: more than half of the weight cast (each
    judge's ``weight``). In both, a judge inconsistent across orders (or failing, or a rule that does not
    apply) abstains rather than voting.
    """

    aggregation: Literal["unanimous", "majority", "weighted"] = "unanimous"




SOURCE_FIELDS = ("prompt", "messages", "id", "category", "reference")  # what a prompt source's rows may hold


class PromptSource(Strict):
    """Prompts from a file (``path``: JSONL, CSV or Parquet) or a Hugging Face dataset (``dataset``). A row has a
    ``prompt`` (text) or ``messages`` (a conversation: ``[{role, content}, ...]`` ending with a user turn), and
    optional ``id``, ``category`` and ``reference`` (a gold answer: the final assistant turn)."""

    path: Path | None = None
    # A Hugging Face dataset: a folder saved with ``save_to_disk``, a folder of data files, or a Hub id (read
    # through ``datasets``; a local one works offline). Exactly one of ``path`` and ``dataset``.
    dataset: str | None = None
    split: str = "train"  # the dataset's split
    # Where each field comes from when the source names it otherwise: ``{prompt: instruction, category: topic}``.
    columns: dict[str, str] = Field(default_factory=dict)
    # The batch (Dagster partition) this source belongs to; default: the file's (or dataset's) name.
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

    @field_validator("columns")
    @classmethod
    def _known_fields(cls, value: dict[str, str]) -> dict[str, str]:
        for ours in value:
            if ours not in SOURCE_FIELDS:
                close = difflib.get_close_matches(ours, SOURCE_FIELDS, n=1)
                hint = f"did you mean `{close[0]}`? " if close else ""
                raise ValueError(f"no field {ours!r} to rename; {hint}fields: {', '.join(SOURCE_FIELDS)}")
        return value

    @model_validator(mode="after")
    def _one_place(self) -> PromptSource:
        if (self.path is None) == (self.dataset is None):
            raise ValueError("a prompt source is a file (`path`) or a Hugging Face dataset (`dataset`): give one")
        if "prompt" in self.columns and self.prompt_field not in ("prompt", self.columns["prompt"]):
            raise ValueError("columns.prompt and prompt_field name different columns: give one")
        return self

    @property
    def location(self) -> str:
        """The file, or the dataset (with its split), as messages name it."""
        return str(self.path) if self.path is not None else f"{self.dataset} [{self.split}]"

    def column(self, field: str) -> str:
        """The source's own name of one of our fields (``prompt``, ``messages``, ``id``, ...)."""
        if field == "prompt":
            return self.columns.get("prompt", self.prompt_field)
        return self.columns.get(field, field)


class ScheduleSpec(Strict):
    """The regular run: every prompt batch, re-run on a cron schedule (off until turned on in the UI)."""

    cron: str = "0 3 * * *"
    timezone: str = "UTC"


class GatesSpec(Strict):
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


class FiltersSpec(Strict):
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


class HumanSetSpec(Strict):
    """A human-annotated preference file mixed into the exported dataset (``pref_pipeline/human_sets.py``)."""

    # A JSON list or JSONL (.gz too) of {input, output_1, output_2, label}, hh-rlhf {chosen, rejected} dialogues or
    # the export's own rows; relative to the configuration file, or the name of a set shipped in data/human_prefs.
    path: Path
    share: Annotated[float, Field(gt=0.0, lt=1.0)]  # the share of the exported dataset its pairs make up
    # The rows' licence (a Hub licence id); unset: the shipped set's (data/human_prefs/README.md), required otherwise.
    license: str | None = None
    name: str | None = None  # the rows' ``source``; unset: the file name up to its first dot
    seed: int = 0  # which of its pairs are drawn when it has more than needed

    @model_validator(mode="before")
    @classmethod
    def _shipped_defaults(cls, data: Any) -> Any:
        """A shipped set named by its file name is found in data/human_prefs; its licence is its README's."""
        if not isinstance(data, dict) or not isinstance(data.get("path"), (str, Path)):
            return data
        path = Path(data["path"])
        if not path.exists() and not path.is_absolute() and (SHIPPED_SETS / path).is_file():
            data = {**data, "path": SHIPPED_SETS / path}
        if data.get("license") is None and shipped_license(Path(data["path"])):
            data = {**data, "license": shipped_license(Path(data["path"]))}
        return data

    @model_validator(mode="after")
    def _readable(self) -> HumanSetSpec:
        if not self.path.is_file():
            raise ValueError(f"path: no such file: {self.path} (a JSON/JSONL file of human-annotated pairs, or a "
                             f"shipped set: {', '.join(SHIPPED_LICENSES)})")
        if self.license is None:
            raise ValueError(f"license is required for {self.path.name} (a Hub licence id such as cc-by-4.0, or "
                             "`unknown`): its rows are published with it")
        return self


class ExportSpec(Strict):
    """How the validated pairs are published."""

    # Drop pairs so that the longer response is chosen in about half of the exported pairs.
    rebalance_length: bool = False
    # Add a ``recency_weight`` column: 0.5 ** (age in days / half-life), age counted from the newest verdict.
    recency_half_life_days: Annotated[float, Field(gt=0.0)] | None = None
    # TRL's preference formats: ``conversational`` (prompt as messages, chosen/rejected as assistant turns) or
    # ``standard`` (strings); ``auto``: conversational when any exported prompt is a conversation.
    format: Literal["auto", "standard", "conversational"] = "auto"
    # The share of prompts (stratified by category; a prompt's pairs never in both splits) in exports/hf's test split.
    test_share: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    # The dataset card's license (a Hub license id, e.g. cc-by-4.0); unset: other.
    license: str | None = None
    pretty_name: str | None = None  # the dataset card's title; unset: "Synthetic preference pairs"
    # Human-annotated pairs mixed into the dataset, each set making up its ``share`` of it (seed 000).
    human_sets: list[HumanSetSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _shares_leave_room(self) -> ExportSpec:
        total = sum(s.share for s in self.human_sets)
        if total >= 1.0:
            raise ValueError(f"human_sets: the shares add up to {total:g}; they must leave room for the pipeline's "
                             "own pairs (sum < 1)")
        return self


class AuditSpec(Strict):
    """The audit report."""

    length_bias_band: Annotated[float, Field(gt=0.0, le=0.5)] = 0.15  # flag outside 0.5 ± this
    plots: bool = True  # PNG plots under reports/ and in the Dagster UI
    review_sample_size: Annotated[int, Field(ge=1)] = 20  # pairs in `pref-pipeline review export`
    recency_half_life_days: Annotated[float, Field(gt=0.0)] = 30.0  # weights in judgment_history


class DaskSpec(Strict):
    """Where ``executor: dask`` runs a run's steps: a running Dask scheduler (``address``, e.g.
    ``tcp://10.0.0.5:8786``), or else a ``distributed.LocalCluster`` of ``n_workers`` processes that each run
    starts and stops (one thread each: a Dagster step is not thread-safe)."""

    address: str | None = None
    n_workers: Annotated[int, Field(ge=1)] = 2


class PriceSpec(Strict):
    """What a model costs, in US dollars per million tokens (batch calls cost half; cached ones nothing)."""

    input_per_mtok: Annotated[float, Field(ge=0.0)]
    output_per_mtok: Annotated[float, Field(ge=0.0)]


EMBEDDED_REASONING_CHARS = 60  # the default judge's reasoning: a few words, then the grammar closes the verdict


def embedded_default_strategies() -> list[dict[str, Any]]:
    """What the embedded offline run (no ``generators`` given) uses: strategies whose labels hold whatever the
    stand-in judge says (gold_corruption by rules, critique_revise, strong_vs_weak), plus sampling."""
    return [
        {"method": "sampling", "max_prompts": 30},
        {"method": "gold_corruption", "model": "none"},
        {"method": "critique_revise", "max_prompts": 14},
        {"method": "strong_vs_weak", "max_prompts": 14},
    ]


class PipelineConfig(Strict):
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
            GeneratorSpec(model=DEFAULT_LOCAL_MODEL, temperature=0.7, top_p=0.95, max_tokens=80, label="t0.7"),
            GeneratorSpec(model=DEFAULT_LOCAL_MODEL, temperature=1.2, top_p=0.95, max_tokens=80, label="t1.2"),
        ]
    )
    candidates_per_prompt: Annotated[int, Field(ge=2, le=16)] = 2
    judges: Annotated[list[AnyJudgeSpec], Field(min_length=1)] = Field(
        # Greedy, SmolLM2-135M answers "A" whatever the order; sampling at least lets both orders
        # agree by chance now and then, so the stand-in run yields a few pairs (the audit warns). Its prompt is
        # the compact template and its reasoning is capped in the grammar: the in-process model pays for every
        # prompt and output token (bench/bench_local_model.py --part judge).
        default_factory=lambda: [judge_spec(model=DEFAULT_LOCAL_MODEL, temperature=1.0, max_tokens=96,
                                            parse_retries=1, template=PAIRWISE_COMPACT_TEMPLATE,
                                            reasoning_max_chars=EMBEDDED_REASONING_CHARS)]
    )
    # How the judges' verdicts combine (unanimous, majority, weighted).
    judging: JudgingSpec = Field(default_factory=JudgingSpec)
    max_prompts: Annotated[int, Field(ge=1)] | None = None
    # A run fails when more than this share of LLM calls still failed after retries.
    max_failure_rate: Annotated[float, Field(ge=0.0, le=1.0)] = 0.1
    # Data quality: gate thresholds, row filters, export options, audit options.
    gates: GatesSpec = Field(default_factory=GatesSpec)
    filters: FiltersSpec = Field(default_factory=FiltersSpec)
    export: ExportSpec = Field(default_factory=ExportSpec)
    audit: AuditSpec = Field(default_factory=AuditSpec)
    # LLM calls: the persistent response cache under PREF_PIPELINE_HOME/cache, and prices
    # per "provider:model" for cost accounting (merged over built-in defaults, see accounting.py).
    cache: bool = True
    prices: dict[str, PriceSpec] = Field(default_factory=dict)
    # How a Dagster run executes its steps: all in one process (fast: no process start per step, GX and
    # the models loaded once), or each step in its own process (steps of one run in parallel), or each step
    # as a task on a Dask cluster (``dask``: the cluster, processes on this or other machines; needs the
    # ``distributed`` extra and a persistent DAGSTER_HOME).
    executor: Literal["in_process", "multiprocess", "dask"] = "in_process"
    dask: DaskSpec = Field(default_factory=DaskSpec)
    # How pairs are made: an entry per method (a module of ``strategies/``), or several of one method with
    # different parameters. Absent: [{method: sampling}]
    # (judged samples of ``generators``); absent with no ``generators`` either (the embedded offline run):
    # ``embedded_default_strategies()``.
    strategies: Annotated[list[AnyStrategySpec], Field(min_length=1)] = Field(
        default_factory=lambda: [SamplingSpec(method="sampling")])

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
    def _strategies_are_served(self) -> PipelineConfig:
        """What a strategy needs of the rest of the configuration (e.g. a kind of judge), each asked of it."""
        for method in dict.fromkeys(s.method for s in self.strategies):
            problem = STRATEGIES[method].config_problem(self)
            if problem:
                raise ValueError(f"strategies: {problem}")
        return self

    @property
    def model_judges(self) -> list[JudgeSpec]:
        """The judges that call a model (rule judges make no call)."""
        return [j for j in self.judges if not j.is_rule]

    def model_specs(self) -> list[ModelSpec]:
        """Every model the configuration calls, wherever it sits (generators, judges, a strategy's own models);
        a rule judge calls none."""
        found: list[ModelSpec] = []

        def visit(value: Any) -> None:
            if isinstance(value, ModelSpec) and getattr(type(value), "calls_model", True):
                found.append(value)
            if isinstance(value, BaseModel):
                for name in type(value).model_fields:
                    visit(getattr(value, name))
            elif isinstance(value, (list, tuple)):
                for item in value:
                    visit(item)
            elif isinstance(value, dict):
                for item in value.values():
                    visit(item)

        visit(self)
        return found


def _without_tags(loc: tuple) -> tuple:
    """``loc`` with the discriminator tags pydantic inserts after an entry's index marked as such
    (``("strategies", 0, "critique_revise", "principels")`` -> ``("strategies", 0, ("tag", "strategies",
    "critique_revise"), "principels")``)."""
    out: list = []
    for part in loc:
        if (isinstance(part, str) and len(out) >= 2 and isinstance(out[-1], int) and out[-2] in TAGGED
                and part in TAGGED[out[-2]][1]):
            out.append(("tag", out[-2], part))
            continue
        out.append(part)
    return tuple(out)


def _model_at(loc: tuple) -> type[BaseModel] | None:
    """The model that holds the key at ``loc``: ``("generators", 0, "temprature")`` -> GeneratorSpec."""
    model: type[BaseModel] | None = PipelineConfig
    annotation: Any = None
    for part in _without_tags(loc)[:-1]:
        if isinstance(part, tuple):  # a tagged entry (a strategy's method, a judge's type): its spec class
            model, annotation = TAGGED[part[1]][1][part[2]], None
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
                continue  # an entry's tag (method, type): the index already names the entry
            loc += f"[{part}]" if isinstance(part, int) else (f".{part}" if loc else str(part))
        field = next((p for p in reversed(err["loc"]) if isinstance(p, str) and p in TAGGED), None)
        if err["type"] == "extra_forbidden":
            message = "unknown key" + _did_you_mean(tuple(err["loc"]))
        elif err["type"] == "union_tag_invalid" and field is not None:
            key, specs, _ = TAGGED[field]
            tag = str((err.get("ctx") or {}).get("tag", ""))
            close = difflib.get_close_matches(tag, list(specs), n=1, cutoff=0.6)
            hint = f"; did you mean `{close[0]}`?" if close else ""
            loc += f".{key}"
            message = f"unknown {key} {tag!r}{hint} ({key}s: {', '.join(specs)})"
        elif err["type"] == "union_tag_not_found" and field is not None:
            key, specs, entry = TAGGED[field]
            message = f"a {entry} needs a `{key}` (one of {', '.join(specs)})"
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
            dataset = source.get("dataset") if isinstance(source, dict) else None
            if isinstance(dataset, str) and not Path(dataset).is_absolute() and (base_dir / dataset).exists():
                source["dataset"] = str(base_dir / dataset)  # a local folder beside the file; else a Hub id
    export = data.get("export")
    if base_dir is not None and isinstance(export, dict) and isinstance(export.get("human_sets"), list):
        data["export"] = export = {**export, "human_sets": [dict(h) if isinstance(h, dict) else h
                                                            for h in export["human_sets"]]}
        for entry in export["human_sets"]:
            path = entry.get("path") if isinstance(entry, dict) else None
            if isinstance(path, str) and not Path(path).is_absolute() and (base_dir / path).exists():
                entry["path"] = str(base_dir / path)  # beside the file; else a shipped set's name
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


CONFIG_ENV = "PREF_PIPELINE_CONFIG"  # the configuration file when none is named (the CLI, the code location)


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
