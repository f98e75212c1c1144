"""What a judge type is: given comparisons in both orders, verdict rows with the judge's identity.

One module per judge type (``pairwise.py`` today), each a ``Judge`` subclass registered in
``JUDGE_TYPES`` (``judging/__init__.py``), as TRL keeps one class per judge. A judge gets the step's
model client (cache, budgets, batch API) and returns one judgments row per task; the judge's
fingerprint (model, prompt template, criteria, sampling) is stored with every row.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal

if TYPE_CHECKING:
    from pref_pipeline.config import JudgeSpec

Order = Literal["xy", "yx"]  # "xy": candidate x shown as A; "yx": candidate y shown as A


@dataclass(frozen=True)
class JudgeTask:
    """One order of one planned comparison, with the texts the judge reads."""

    comparison_id: str
    prompt_id: str
    question: str
    x_id: str
    x_text: str
    y_id: str
    y_text: str
    order: Order
    seed: int | None = None  # used when the judge configuration sets none
    category: str | None = None  # the prompt's category (rule judges read it)
    reference: str | None = None  # the prompt's gold answer, if any (the reference_match rule reads it)


def default_template(spec: JudgeSpec) -> str:
    """What the judge's verdict is made by besides the model: its prompt template, or a rule's source."""
    if spec.type == "rule":
        from pref_pipeline.judging.rules import rule_identity

        return rule_identity(spec.rule)
    from pref_pipeline.judging.prompts import PAIRWISE_TEMPLATE, POINTWISE_TEMPLATE

    if spec.type == "pointwise":
        return POINTWISE_TEMPLATE
    return spec.template or PAIRWISE_TEMPLATE


def fingerprint_for(spec: JudgeSpec, template: str | None = None) -> str:
    """The judge's identity hash, as stored with each of its verdicts: model, type, template (or rule),
    rubric text, criteria, sampling (``config.judge_fingerprint``)."""
    from pref_pipeline.config import judge_fingerprint

    return judge_fingerprint(spec, template or default_template(spec), spec.rubric_text())


class Judge(ABC):
    """One configured judge. Subclasses set ``type`` (the config's judge ``type``)."""

    type: ClassVar[str]

    def __init__(self, spec: JudgeSpec):
        self.spec = spec

    @property
    @abstractmethod
    def fingerprint(self) -> str:
        """A short hash of everything that decides a verdict; stored with each verdict (drift, re-runs)."""

    @abstractmethod
    async def judge(self, tasks: list[JudgeTask], now: datetime) -> list[dict[str, Any]]:
        """One judgments row per task, in order; a failed call is a row with ``error`` set."""
