"""The import-linter layers (``[tool.importlinter]`` in pyproject.toml) place every module of the core.

``lint-imports`` checks the layers it is given; a new module of ``pref_pipeline`` that no layer names would be
checked by nothing. This fails until it is put in its layer.
"""

from __future__ import annotations

import pkgutil
import tomllib
from pathlib import Path

import pref_pipeline

ROOT = Path(__file__).resolve().parents[1]


def layered_modules() -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    [layers] = [contract["layers"] for contract in config["contracts"] if contract["id"] == "layers"]
    return {name.strip() for layer in layers for name in layer.replace("|", ":").split(":")}


def test_every_module_of_the_core_is_in_a_layer():
    modules = {f"pref_pipeline.{m.name}" for m in pkgutil.iter_modules(pref_pipeline.__path__)}
    assert modules - layered_modules() == set(), "add them to a layer of [tool.importlinter] in pyproject.toml"
    assert layered_modules() - modules - {"assets", "sensors"} == set()  # no layer names a module that is gone
