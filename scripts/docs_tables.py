"""The configuration's key tables, read from the pydantic model (``pref_pipeline.config.PipelineConfig``).

    .venv/bin/python scripts/docs_tables.py           # every key table, as Markdown
    .venv/bin/python scripts/docs_tables.py --keys    # one dotted key a line

Each table starts with a marker naming where its keys live, ``<!-- keys: generators[] -->``: the key
``temperature`` of that table is ``generators[].temperature``. The same markers are what
``tests/test_docs.py`` reads in ``docs/configuration.md``, ``docs/strategies.md`` and ``docs/judges.md``,
so a table printed here can be pasted there (then give each key a better description by hand).

The walk is generic: it follows ``model_fields`` through ``list[X]``, ``dict[str, X]``, ``X | None``,
``Annotated[...]`` and discriminated unions (``Field(discriminator=...)``, a ``Discriminator``, with
``Tag``s or not), so it needs no list of the strategy or judge classes. Dotted paths:

- ``prompts[].path``: a list's items; ``prices.*.input_per_mtok``: a mapping's values;
- ``strategies[method=gold_corruption].edits``: one member of a discriminated union in a list (a union
  outside a list is ``field{method=...}``); ``strategies[].edits`` covers every member that has the key.

A model class met again deeper down (a strategy's ``model`` is a generator spec) is walked once, where it
is first met (breadth first): its keys are documented there.
"""

from __future__ import annotations

import argparse
import ast
import collections.abc
import inspect
import re
import sys
import textwrap
import tokenize
import types
import typing
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from typing import Any

import annotated_types
import yaml
from pydantic import BaseModel, Discriminator, Tag
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

if __package__ in (None, ""):  # run as a script: the repository root holds pref_pipeline
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TOP = "(top)"  # the marker of the top-level table: <!-- keys: (top) -->
_LISTS = (list, tuple, set, frozenset, collections.abc.Sequence, collections.abc.Set)
_MAPPINGS = (dict, collections.abc.Mapping)


@dataclass(frozen=True)
class Key:
    """One configuration key: its dotted ``path``, the ``prefix`` of the table it belongs to, and its field."""

    path: str
    prefix: str
    name: str
    owner: type[BaseModel]
    field: FieldInfo

    @property
    def required(self) -> bool:
        return self.field.is_required()

    def default(self) -> Any:
        """The default as it would be written in YAML (models dumped, paths as text); ``PydanticUndefined``
        for a required key."""
        if self.required:
            return PydanticUndefined
        return plain(self.field.get_default(call_default_factory=True))


def plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return value


def join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def untagged(path: str) -> str:
    """``strategies[method=sampling].max_prompts`` -> ``strategies[].max_prompts`` (a tag-free path covers
    every member of the union)."""
    return re.sub(r"\{[^{}]*\}", "", re.sub(r"\[[^\[\]=]+=[^\[\]]*\]", "[]", path))


def _split_annotated(annotation: Any) -> tuple[Any, list[Any]]:
    metadata: list[Any] = []
    while typing.get_origin(annotation) is typing.Annotated:
        annotation, *extra = typing.get_args(annotation)
        metadata = [*metadata, *extra]
    return annotation, metadata


def _discriminator(metadata: list[Any]) -> Any:
    """The discriminator among ``Annotated`` metadata: a field name (str), a ``Discriminator``, or None."""
    for item in metadata:
        if isinstance(item, Discriminator):
            return item.discriminator if isinstance(item.discriminator, str) else item
        if isinstance(item, FieldInfo) and item.discriminator is not None:
            found = item.discriminator
            return found.discriminator if isinstance(found, Discriminator) and isinstance(
                found.discriminator, str) else found
    return None


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def _literal_values(annotation: Any) -> list[Any]:
    annotation, _ = _split_annotated(annotation)
    if typing.get_origin(annotation) is typing.Literal:
        return list(typing.get_args(annotation))
    if _is_union(annotation):
        return [v for arg in typing.get_args(annotation) for v in _literal_values(arg)]
    return []


def _tag_of(member: type[BaseModel], tag: str | None, discriminator: Any) -> str | None:
    """How a union member is named in a path: ``method=gold_corruption``."""
    field_name = discriminator if isinstance(discriminator, str) else None
    if field_name is not None:
        model_field = member.model_fields.get(field_name) or next(
            (f for f in member.model_fields.values() if f.alias == field_name), None)
        values = _literal_values(model_field.annotation) if model_field is not None else []
        if tag is None and values:
            tag = "|".join(str(v) for v in values)
    elif tag is not None:  # a callable discriminator with Tags: the field whose Literal holds the tag, if any
        field_name = next((name for name, f in member.model_fields.items() if tag in _literal_values(f.annotation)),
                          "tag")
    if tag is None:
        return None
    return f"{field_name or 'type'}={tag}"


def models_in(annotation: Any, discriminator: Any = None, suffix: str = "") -> list[tuple[type[BaseModel], str]]:
    """Every model class reachable through ``annotation``, each with the path suffix leading to it
    (``[]`` for a list's items, ``.*`` for a mapping's values, ``[method=...]`` for a union member)."""
    annotation, metadata = _split_annotated(annotation)
    discriminator = _discriminator(metadata) or discriminator
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [(annotation, suffix)]
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if _is_union(annotation):
        members = []
        for arg in args:
            inner, member_metadata = _split_annotated(arg)
            tag = next((m.tag for m in member_metadata if isinstance(m, Tag)), None)
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                members.append((inner, tag))
            else:  # None, a Literal, a list of models, ...: follow it as is
                members.append((arg, None))
        n_models = sum(isinstance(m, type) and issubclass(m, BaseModel) for m, _ in members)
        found: list[tuple[type[BaseModel], str]] = []
        for member, tag in members:
            if not (isinstance(member, type) and issubclass(member, BaseModel)):
                found += models_in(member, None, suffix)
                continue
            label = _tag_of(member, tag, discriminator)
            if label is None and n_models > 1:
                label = f"type={member.__name__}"  # a plain union of several models
            if label is None:
                found.append((member, suffix))
            elif suffix.endswith("[]"):
                found.append((member, f"{suffix[:-2]}[{label}]"))
            else:
                found.append((member, f"{suffix}{{{label}}}"))
        return found
    if origin in _MAPPINGS or (isinstance(origin, type) and issubclass(origin, collections.abc.Mapping)):
        return models_in(args[-1], discriminator, suffix + ".*") if args else []
    if origin in _LISTS or (isinstance(origin, type) and issubclass(origin, collections.abc.Iterable)
                            and origin not in (str, bytes)):
        items = [a for a in args if a is not Ellipsis]
        return [m for a in items for m in models_in(a, discriminator, suffix + "[]")]
    return []


def walk(model: type[BaseModel], prefix: str = "") -> list[Key]:
    """Every key of ``model`` and of the models inside it, breadth first."""
    keys: list[Key] = []
    queue: collections.deque[tuple[type[BaseModel], str]] = collections.deque([(model, prefix)])
    seen: set[type[BaseModel]] = {model}
    while queue:
        current, at = queue.popleft()
        for name, field in current.model_fields.items():
            path = join(at, field.alias or name)
            keys.append(Key(path=path, prefix=at, name=field.alias or name, owner=current, field=field))
            discriminator = field.discriminator
            if isinstance(discriminator, Discriminator) and isinstance(discriminator.discriminator, str):
                discriminator = discriminator.discriminator
            for sub, suffix in models_in(field.annotation, discriminator):
                if sub not in seen:
                    seen.add(sub)
                    queue.append((sub, path + suffix))
    return keys


# --------------------------------------------------------------------------- the tables

def type_name(annotation: Any, metadata: list[Any] | None = None) -> str:
    annotation, extra = _split_annotated(annotation)
    metadata = [*(metadata or []), *extra]
    if annotation is type(None):
        return "null"
    if typing.get_origin(annotation) is typing.Literal:
        text = " \\| ".join(f'"{v}"' if isinstance(v, str) else str(v) for v in typing.get_args(annotation))
    elif _is_union(annotation):
        args = typing.get_args(annotation)
        text = " \\| ".join(dict.fromkeys(type_name(a) for a in args))  # a union of models: one "mapping"
        metadata = [m for m in metadata if not isinstance(m, (FieldInfo, Discriminator))]
    elif typing.get_origin(annotation) is not None:
        origin = typing.get_origin(annotation)
        args = ", ".join(type_name(a) for a in typing.get_args(annotation) if a is not Ellipsis)
        text = f"{getattr(origin, '__name__', str(origin))}[{args}]"
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        text = "mapping"
    elif isinstance(annotation, type):
        text = {"str": "text", "Path": "path", "PurePath": "path"}.get(annotation.__name__, annotation.__name__)
    else:
        text = str(annotation)
    bounds = []
    expanded = []
    for item in metadata:  # Field(ge=1) inside Annotated keeps its bounds in its own metadata
        expanded += [item, *item.metadata] if isinstance(item, FieldInfo) else [item]
    for item in expanded:
        for attr, sign in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            value = getattr(item, attr, None)
            if isinstance(item, (annotated_types.Ge, annotated_types.Gt, annotated_types.Le, annotated_types.Lt,
                                 annotated_types.Interval)) and value is not None:
                bounds.append(f"{sign} {value}")
        if isinstance(item, annotated_types.MinLen):
            bounds.append(f"at least {item.min_length}")
        if isinstance(item, annotated_types.MaxLen):
            bounds.append(f"at most {item.max_length}")
        pattern = getattr(item, "pattern", None)
        if isinstance(pattern, str):
            bounds.append(f"matching `{pattern}`")
    return f"{text} ({', '.join(bounds)})" if bounds else text


def default_cell(key: Key) -> str:
    if key.required:
        return "required"
    value = key.default()
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, dict) and value and not isinstance(key.field.get_default(call_default_factory=True), dict):
        return "see below"  # a nested section: its own table
    if isinstance(value, list) and any(isinstance(v, dict) for v in value):
        return "see text"
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    text = text.removesuffix("...").strip()
    return f"`{text}`"


def _defining_class(owner: type[BaseModel], name: str) -> type | None:
    for cls in owner.__mro__:
        if name in cls.__dict__.get("__annotations__", {}):
            return cls
    return None


def _comments(cls: type) -> dict[str, str]:
    """The comment of each field in ``cls``'s own body: on its line, or the lines just above it."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    lines = source.splitlines()
    by_line: dict[int, str] = {}
    for tok in tokenize.generate_tokens(StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            by_line[tok.start[0]] = tok.string.lstrip("#").strip()
    out: dict[str, str] = {}
    body = ast.parse(source).body[0]
    for node in getattr(body, "body", []):
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        trailing = [by_line[n] for n in range(node.lineno, (node.end_lineno or node.lineno) + 1) if n in by_line
                    and not lines[n - 1].lstrip().startswith("#")]
        above: list[str] = []
        n = node.lineno - 1
        while n in by_line and lines[n - 1].lstrip().startswith("#"):
            above.insert(0, by_line[n])
            n -= 1
        out[node.target.id] = " ".join([*above, *trailing])
    return out


def prose(text: str) -> str:
    """Source text made Markdown: one line, single backticks, no tracker references, pipes escaped."""
    text = " ".join(text.split()).replace("``", "`")
    text = re.sub(r"^[Ii]ssue \d+: *", "", text)
    text = re.sub(r" *\([Ii]ssue \d+\)", "", text)
    return text.replace("|", "\\|")


def description(key: Key) -> str:
    if key.field.description:
        return prose(key.field.description)
    cls = _defining_class(key.owner, key.name)
    return prose(_comments(cls).get(key.name, "") if cls is not None else "")


def _row(key: Key) -> str:
    kind = type_name(key.field.annotation, list(key.field.metadata))
    return f"| `{key.name}` | {kind} | {default_cell(key)} | {description(key)} |"


def tables(model: type[BaseModel]) -> str:
    """Every key table of ``model``, one per prefix, as Markdown with its marker. Keys that every member of a
    union has, with the same row, come once in a table of their own (``strategies[]``)."""
    groups: dict[str, list[Key]] = {}
    owners: dict[str, type[BaseModel]] = {}
    for key in walk(model):
        groups.setdefault(key.prefix, []).append(key)
        owners[key.prefix] = key.owner
    members: dict[str, list[str]] = {}
    for prefix in groups:
        if untagged(prefix) != prefix:
            members.setdefault(untagged(prefix), []).append(prefix)
    shared: dict[str, list[Key]] = {}
    for prefixes in members.values():
        rows = [{_row(k): k for k in groups[p]} for p in prefixes]
        same = [row for row in rows[0] if all(row in other for other in rows[1:])] if len(rows) > 1 else []
        shared[prefixes[0]] = [rows[0][row] for row in same]
        for p in prefixes:
            groups[p] = [k for k in groups[p] if _row(k) not in same]
    out = []

    def table(title: str, doc: str, marker: str, keys: list[Key]) -> None:
        out.append(f"### {title}\n")
        if doc:
            out.append(prose(doc.split("\n\n")[0]) + "\n")
        out.extend([f"<!-- keys: {marker} -->", "| key | type | default | what |", "|---|---|---|---|"])
        out.extend(_row(key) for key in keys)
        out.append("")

    for prefix, keys in groups.items():
        if prefix in shared and shared[prefix]:
            common = untagged(prefix)
            table(f"`{common}`: every member", "", common, shared[prefix])
        if keys:
            table(f"`{prefix}`" if prefix else "Top level", inspect.getdoc(owners[prefix]) or "", prefix or TOP, keys)
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", action="store_true", help="print one dotted key a line instead of the tables")
    args = parser.parse_args(argv)
    from pref_pipeline.config import PipelineConfig

    if args.keys:
        print("\n".join(key.path for key in walk(PipelineConfig)))
    else:
        print(tables(PipelineConfig))
    return 0


if __name__ == "__main__":
    sys.exit(main())
