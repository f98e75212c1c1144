"""Judging: one module per judge type (``pairwise``, ``pointwise``, ``rules``), the prompts (Jinja2
files in ``templates/``), the strict verdict parser, the confidence from log-probabilities, the panel
that turns several judges' verdicts into one decision (``panel``), and ``comparisons`` (every planned
comparison by every judge).

A new judge type is a new module with a ``Judge`` subclass (``base.py``) and one line in
``JUDGE_TYPES``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pref_pipeline.judging.base import Judge, JudgeTask, fingerprint_for
from pref_pipeline.judging.pairwise import PairwiseJudge
from pref_pipeline.judging.pointwise import PointwiseJudge
from pref_pipeline.judging.rules import RuleJudge

if TYPE_CHECKING:
    from pref_pipeline.config import JudgeSpec, PipelineConfig
    from pref_pipeline.providers.client import CallSession

JUDGE_TYPES: dict[str, type[Judge]] = {
    PairwiseJudge.type: PairwiseJudge,
    PointwiseJudge.type: PointwiseJudge,
    RuleJudge.type: RuleJudge,
}


def make_judge(spec: JudgeSpec, session: CallSession) -> Judge:
    """The judge a configuration entry describes, calling its model through the step's session."""
    return JUDGE_TYPES[spec.type](spec, None if spec.is_rule else session.client(spec))


def judge_code_version(config: PipelineConfig) -> str:
    """The identity of the whole judge panel: changes whenever any judge's model, template, criteria or
    sampling changes. The ``judgments`` asset's code version and what the judge-change sensor watches."""
    return "+".join(fingerprint_for(spec) for spec in config.judges)


__all__ = ["JUDGE_TYPES", "Judge", "JudgeTask", "fingerprint_for", "judge_code_version", "make_judge"]
