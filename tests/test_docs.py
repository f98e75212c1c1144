"""The docs against the code: every configuration key documented, with its real default; examples that parse.

The configuration model (``pref_pipeline.config.PipelineConfig``) is walked generically
(``scripts/docs_tables.py``: ``model_fields`` through lists, mappings, optionals, ``Annotated`` and
discriminated unions), so a strategy or judge class added, moved or split needs no change here, only its
keys in the docs. A key table in the docs starts with a marker naming where its keys live:

    <!-- keys: strategies[method=gold_corruption] -->
    | key | type | default | what |

``strategies[]`` (no tag) covers every member of the union, ``generators[] judges[]`` both lists. A default
written as one literal (`` `0.9` ``, `` `[delete, insert]` ``, ``16``, ``true``), ``unset`` (null) or
``required`` is checked against the model; any other wording is prose and is not checked.
"""

from __future__ import annotations

import re
import typing
from pathlib import Path
from typing import Annotated, Literal

import pytest
import yaml
from pydantic import BaseModel, Discriminator, Field, Tag, create_model
from pydantic_core import PydanticUndefined

from pref_pipeline.config import PipelineConfig, parse_config
from scripts import docs_tables
from scripts.docs_tables import TOP, join, untagged, walk

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
# Where the key tables are: every key in configuration.md, or a strategy's or judge's on its own page.
KEY_PAGES = [DOCS / "configuration.md", DOCS / "strategies.md", DOCS / "judges.md"]
MARKER = re.compile(r"<!--\s*keys:\s*(.*?)\s*-->")
NOT_A_LITERAL = object()


def cells(line: str) -> list[str]:
    """A Markdown table row's cells (``\\|`` inside a cell is not a separator)."""
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]


def key_tables(text: str, origin: str) -> list[dict]:
    """Every row of every marked key table: its dotted paths, default cell and where it is."""
    rows = []
    lines = text.splitlines()
    for index, line in enumerate(lines):
        marker = MARKER.search(line)
        if not marker:
            continue
        prefixes = ["" if p == TOP else p for p in marker.group(1).split()]
        at = index + 1
        while at < len(lines) and not lines[at].strip():
            at += 1
        header = [c.lower() for c in cells(lines[at])] if at < len(lines) else []
        assert "key" in header and "default" in header, f"{origin}:{at + 1}: a key table needs 'key' and 'default'"
        for row_at in range(at + 2, len(lines)):
            if not lines[row_at].lstrip().startswith("|"):
                break
            row = cells(lines[row_at])
            name = row[header.index("key")].strip("`")
            for prefix in prefixes:
                rows.append({"path": join(prefix, name), "default": row[header.index("default")],
                             "where": f"{origin}:{row_at + 1}"})
    return rows


def documented() -> list[dict]:
    rows = []
    for page in KEY_PAGES:
        rows += key_tables(page.read_text(encoding="utf-8"), page.relative_to(ROOT).as_posix())
    return rows


def covers(doc_path: str, key_path: str) -> bool:
    return doc_path in (key_path, untagged(key_path))


def written_default(cell: str):
    """The default a table cell states, or NOT_A_LITERAL for prose."""
    text = cell.strip()
    if text == "required":
        return PydanticUndefined
    if text == "unset":
        return None
    spans = re.fullmatch(r"`([^`]*)`", text)
    if spans:
        return yaml.safe_load(spans.group(1))
    if re.fullmatch(r"-?\d+(\.\d+)?|true|false|null", text):
        return yaml.safe_load(text)
    return NOT_A_LITERAL


def same(written, actual) -> bool:
    """Equal defaults; ``true`` is not ``1``, ``required`` only ``required``."""
    if written is PydanticUndefined or actual is PydanticUndefined or isinstance(written, bool) \
            or isinstance(actual, bool):
        return written is actual
    return written == actual


# --------------------------------------------------------------------------- the configuration's keys

def test_every_configuration_key_is_documented():
    rows = documented()
    missing = [key.path for key in walk(PipelineConfig) if not any(covers(r["path"], key.path) for r in rows)]
    assert not missing, (
        "configuration keys with no row in a key table of docs/configuration.md (strategies: docs/strategies.md, "
        "judges: docs/judges.md; `.venv/bin/python scripts/docs_tables.py` prints the tables):\n  "
        + "\n  ".join(missing))


def test_every_documented_key_exists():
    keys = [key.path for key in walk(PipelineConfig)]
    stale = [f"{r['where']}: {r['path']}" for r in documented() if not any(covers(r["path"], k) for k in keys)]
    assert not stale, "documented keys the configuration does not have:\n  " + "\n  ".join(stale)


def test_documented_defaults_are_the_models():
    keys = walk(PipelineConfig)
    wrong, checked = [], 0
    for row in documented():
        written = written_default(row["default"])
        if written is NOT_A_LITERAL:
            continue
        for key in (k for k in keys if covers(row["path"], k.path)):
            if row["path"] != key.path and key.required and written is not PydanticUndefined \
                    and typing.get_origin(key.field.annotation) is Literal:
                continue  # a union member's tag (`type: rule`) is required of it; the row's default is the union's
            checked += 1
            actual = key.default()
            if not same(written, actual):
                shown = "required" if actual is PydanticUndefined else repr(actual)
                wrong.append(f"{row['where']}: {key.path} documented as {row['default']}, the model says {shown}")
    assert not wrong, "documented defaults that are not the model's:\n  " + "\n  ".join(wrong)
    assert checked > 50  # the tables do state their defaults


def test_the_generated_tables_cover_every_key_with_its_default():
    """``scripts/docs_tables.py`` prints tables the same checks accept, so the docs can be regenerated."""
    rows = key_tables(docs_tables.tables(PipelineConfig), "docs_tables.py")
    keys = walk(PipelineConfig)
    assert all(any(covers(r["path"], k.path) for r in rows) for k in keys)
    for row in rows:
        written = written_default(row["default"])
        for key in (k for k in keys if covers(row["path"], k.path)):
            assert written is NOT_A_LITERAL or same(written, key.default()), row


def test_todays_strategies_and_judge_keys_are_walked():
    """The walk reaches every strategy's parameters (through the union told apart by ``method``) and the
    judge keys; nothing here names a strategy or judge class."""
    paths = {key.path for key in walk(PipelineConfig)}
    methods = {m.group(1) for p in paths for m in [re.match(r"strategies\[method=(\w+)\]", p)] if m}
    assert methods >= {"sampling", "strong_vs_weak", "few_shot_contrast", "critique_revise", "gold_corruption",
                       "hhh_contrast", "human_vs_model", "score_extremes"}
    assert "strategies[method=gold_corruption].edits" in paths
    assert "strategies[method=score_extremes].min_margin" in paths
    judge_keys = {untagged(p).removeprefix("judges[].") for p in paths if p.startswith("judges[")}
    assert judge_keys >= {"model", "type", "rule", "rubric", "weight", "logprobs", "template", "parse_retries",
                          "criteria"}
    assert "prices.*.input_per_mtok" in paths and "prompts[].encoding" in paths
    # A generator spec met again (a strategy's model) is documented once, under generators[].
    assert not any(p.startswith("strategies[method=few_shot_contrast].model.") for p in paths)


# --------------------------------------------------------------------------- the walk, on shapes to come

def _judge_specs() -> tuple[type[BaseModel], type[BaseModel]]:
    """A pairwise and a rule judge spec told apart by ``type``; new classes each call (the walk documents a
    class once, where it first meets it)."""
    pairwise = create_model("Pairwise", type=(Literal["pairwise"], "pairwise"), weight=(float, 1.0))
    rule = create_model("Rule", type=(Literal["rule"], ...), rule=(Literal["prefer_concise", "reference_match"], ...))
    return pairwise, rule


_P1, _R1 = _judge_specs()
_P2, _R2 = _judge_specs()
_P3, _R3 = _judge_specs()
_P4, _R4 = _judge_specs()


class _Source(BaseModel):
    path: str


class _Price(BaseModel):
    input_per_mtok: float


class _Judged(BaseModel):
    """Judge specs told apart by ``type`` (a field discriminator, in a list, optional or alone), a callable
    ``Discriminator`` with ``Tag``s, annotated nesting, mappings: what the configuration may become."""

    judges: list[Annotated[_P1 | _R1, Field(discriminator="type")]]
    fallback: Annotated[_P2 | _R2, Field(discriminator="type")] | None = None
    single: Annotated[_P3 | _R3, Field(discriminator="type")] = Field(default_factory=_P3)
    tagged: list[Annotated[Annotated[_P4, Tag("pairwise")] | Annotated[_R4, Tag("rule")],
                           Discriminator(lambda v: v.get("type", "pairwise") if isinstance(v, dict) else v.type)]] = []
    sources: Annotated[list[Annotated[_Source, Field(title="a source")]], Field(min_length=0)] = []
    again: list[_Source] = []
    prices: dict[str, _Price] = {}


def test_the_walk_follows_discriminated_unions_of_any_kind():
    paths = [key.path for key in walk(_Judged)]
    assert {"judges[type=pairwise].weight", "judges[type=rule].rule", "judges[type=rule].type",
            "fallback{type=pairwise}.weight", "fallback{type=rule}.rule", "single{type=rule}.rule",
            "tagged[type=pairwise].weight", "tagged[type=rule].rule",
            "sources[].path", "again", "prices.*.input_per_mtok"} <= set(paths)
    assert "again[].path" not in paths  # a model met again is documented where it was first met
    # A table without the tag covers the members that have the key.
    assert covers("judges[].rule", "judges[type=rule].rule")
    assert covers("fallback.weight", "fallback{type=pairwise}.weight")
    rows = key_tables(docs_tables.tables(_Judged), "docs_tables.py")
    assert all(any(covers(r["path"], p) for r in rows) for p in paths)


# --------------------------------------------------------------------------- pages, links, examples

def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def test_every_docs_page_is_listed_in_the_index_and_every_link_resolves():
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    unlisted = [p.name for p in DOCS.glob("*.md") if p.name != "index.md" and f"({p.name})" not in index]
    assert not unlisted, f"docs pages not in docs/index.md: {unlisted}"
    broken = []
    for page in pages():
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            linked = page.parent / path if path else page
            if not linked.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, "links to files or headings that do not exist:\n  " + "\n  ".join(broken)


def anchors(page: Path) -> set[str]:
    """The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
            for h in re.findall(r"^#{1,6} (.+)$", text, flags=re.M)}


def test_readme_keeps_the_contracts():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for text in ("bash scripts/run.sh", "bash scripts/test.sh", "PREF_PIPELINE_HOME", "exports/preference_pairs.jsonl",
                 "exports/preference_pairs.parquet", "reports/audit.json", "reports/audit.md",
                 "tables/<table>/batch=<key>/"):
        assert text in readme, text
    assert len(readme.splitlines()) <= 220  # a newcomer's first hour; the reference is in docs/


@pytest.mark.parametrize("page", pages(), ids=lambda p: p.name)
def test_yaml_examples_are_valid_configurations(page, tmp_path):
    blocks = re.findall(r"```yaml\n(.*?)```", page.read_text(encoding="utf-8"), flags=re.S)
    for block in blocks:
        data = yaml.safe_load(block)
        assert isinstance(data, dict), block
        parse_config(data, origin=page.name, base_dir=tmp_path)  # ConfigError names the key
