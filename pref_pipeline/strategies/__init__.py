"""Generation strategies: one module per method, each a ``Strategy`` (see ``base.py``) with its parameters
(a ``specs.StrategySpec`` subclass) declared beside it.

``STRATEGIES`` is found from this package's modules, so a new method is a new module here (with its
templates under ``pref_pipeline/templates/strategies/``); the configuration's ``strategies`` entries, their
validation and the export's ``generation_method`` follow from it.
"""

from __future__ import annotations

import importlib
import pkgutil

from pref_pipeline.strategies.base import PlannedComparison, Strategy


def _subclasses(cls: type) -> list[type]:
    return [c for sub in cls.__subclasses__() for c in (sub, *_subclasses(sub))]


def _discover() -> dict[str, type[Strategy]]:
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    return {cls.method: cls for cls in _subclasses(Strategy) if "spec_class" in cls.__dict__}


STRATEGIES: dict[str, type[Strategy]] = _discover()

__all__ = ["STRATEGIES", "PlannedComparison", "Strategy"]
