"""Judging: one module per judge type (``pairwise``), the prompts, the strict verdict parser, and
``comparisons`` (every planned comparison by every judge).

A new judge type is a new module with a ``Judge`` subclass (``base.py``) and one line in
``JUDGE_TYPES``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pref_pipeline.judging.base import Judge, JudgeTask
from pref_pipeline.judging.pairwise import PairwiseJudge, fingerprint_for

if TYPE_CHECKING:
    from pref_pipeline.config import JudgeSpec, PipelineConfig
    from pref_pipeline.providers.client import CallSession

JUDGE_TYPES: dict[str, type[Judge]] = {
    PairwiseJudge.type: PairwiseJudge,
}


def make_judge(spec: JudgeSpec, session: CallSession) -> Judge:
    """The judge a configuration entry describes, calling its model through the step's session."""
    return JUDGE_TYPES["pairwise"](spec, session.client(spec))


def judge_code_version(config: PipelineConfig) -> str:
    """The identity of the whole judge panel: changes whenever any judge's model, template, criteria or
    sampling changes. The ``judgments`` asset's code version and what the judge-change sensor watches."""
    return "+".join(fingerprint_for(spec) for spec in config.judges)


__all__ = ["JUDGE_TYPES", "Judge", "JudgeTask", "judge_code_version", "make_judge"]
