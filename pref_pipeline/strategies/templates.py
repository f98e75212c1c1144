"""The strategies' prompt templates: Jinja2 files under ``pref_pipeline/templates/strategies/``.

A template's text is hashed into its strategy's identity (``Strategy.strategy_params``, hence the
candidate ids and the requests, hence the response-cache keys), so editing a template re-asks.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from functools import cache
from importlib import resources
from typing import Any

import jinja2

FOLDER = "templates/strategies"


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.PackageLoader("pref_pipeline", FOLDER), undefined=jinja2.StrictUndefined,
                              autoescape=False, keep_trailing_newline=False, trim_blocks=True, lstrip_blocks=True)


@cache
def template_text(name: str) -> str:
    return resources.files("pref_pipeline").joinpath(f"{FOLDER}/{name}").read_text(encoding="utf-8")


def render(name: str, **values: Any) -> str:
    """The template ``name`` filled in (a missing value is an error, not an empty string)."""
    return _environment().get_template(name).render(**values).strip()


def templates_hash(names: Iterable[str]) -> str:
    """A short hash of the templates' texts."""
    blob = "\0".join(f"{n}\0{template_text(n)}" for n in sorted(names))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:12]


@cache
def data(name: str) -> Any:
    """A JSON data file beside the templates (demonstrations, a constitution, unrelated sentences)."""
    return json.loads(template_text(name))
