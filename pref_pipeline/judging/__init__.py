"""Judging: one module per judge type (``pairwise``, ``pointwise``, ``rules``), the prompts (Jinja2
files in ``templates/``), the strict verdict parser, the confidence from log-probabilities, and the panel
that turns several judges' verdicts into one decision (``panel``).

``JUDGE_TYPES`` is found from this package's modules: a new judge type is a new module with a ``Judge``
subclass and its ``JudgeSpec`` subclass (``base.py``); the configuration's ``judges`` entries follow from it.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING

from pref_pipeline.judging.base import Judge, JudgeTask, fingerprint_for

if TYPE_CHECKING:
    from pref_pipeline.config import PipelineConfig
    from pref_pipeline.providers.client import CallSession
    from pref_pipeline.specs import JudgeSpec


def _discover() -> dict[str, type[Judge]]:
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    return {cls.type: cls for cls in Judge.__subclasses__() if "spec_class" in cls.__dict__}


JUDGE_TYPES: dict[str, type[Judge]] = _discover()


def make_judge(spec: JudgeSpec, session: CallSession) -> Judge:
    """The judge a configuration entry describes, calling its model (if it has one) through the step's session."""
    return JUDGE_TYPES[spec.type](spec, session.client(spec) if spec.calls_model else None)


def judge_code_version(config: PipelineConfig) -> str:
    """The identity of the whole judge panel: changes whenever any judge's model, template, criteria or
    sampling changes. The ``judgments`` asset's code version and what the judge-change sensor watches."""
    return "+".join(fingerprint_for(spec) for spec in config.judges)


__all__ = ["JUDGE_TYPES", "Judge", "JudgeTask", "fingerprint_for", "judge_code_version", "make_judge"]
