"""What a judge type is: given comparisons in both orders, verdict rows with the judge's identity.

One module per judge type, each a ``Judge`` subclass with its parameters declared beside it (a
``specs.JudgeSpec`` subclass, ``spec_class``; its ``type`` literal names the judge type), as TRL keeps one
class per judge. ``JUDGE_TYPES`` and the configuration's ``judges`` union are found from this package's
modules (``judging/__init__.py``). A judge gets the step's model client (cache, budgets, batch API) and
returns one judgments row per task, built by ``judgment_row``; the judge's fingerprint (model, prompt
template, criteria, sampling) is stored with every row.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Literal

from pref_pipeline import schema
from pref_pipeline.ids import short_hash
from pref_pipeline.specs import JudgeSpec

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


def fingerprint_for(spec: JudgeSpec, template: str | None = None) -> str:
    """The judge's identity hash, as stored with each of its verdicts: model, type, template (or rule), rubric
    text, criteria, sampling (``JudgeSpec.fingerprint``)."""
    return spec.fingerprint(template)


def shown_as(preferred: str | None, order: Order) -> str | None:
    """A verdict in candidates (``x``, ``y``, ``tie``) as the label of the position it was shown in (A, B, tie)."""
    if preferred is None or preferred == "tie":
        return preferred
    return "A" if (preferred == "x") == (order == "xy") else "B"


class Judge(ABC):
    """One configured judge. Subclasses set ``spec_class``; their ``type`` is its ``type`` literal."""

    spec_class: ClassVar[type[JudgeSpec]]
    type: ClassVar[str]  # from ``spec_class``

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "spec_class" in cls.__dict__:
            cls.type = cls.spec_class.type_name()

    def __init__(self, spec: JudgeSpec):
        self.spec = spec

    @property
    @abstractmethod
    def fingerprint(self) -> str:
        """A short hash of everything that decides a verdict; stored with each verdict (drift, re-runs)."""

    @abstractmethod
    async def judge(self, tasks: list[JudgeTask], now: datetime) -> list[dict[str, Any]]:
        """One judgments row per task, in order (``judgment_row``); a failed call is a row with ``error`` set."""


def judgment_row(task: JudgeTask, judge: Judge, now: datetime, **verdict: Any) -> dict[str, Any]:
    """One judgments row, the one builder every judge type uses: the comparison, the order and the judge's
    identity here; the verdict's own columns (preference, confidence, parse status, raw output, usage, ...) from
    the judge type."""
    return schema.row(
        "judgments",
        judgment_id="j-" + short_hash(task.comparison_id, judge.fingerprint, task.order),
        comparison_id=task.comparison_id, prompt_id=task.prompt_id,
        candidate_x_id=task.x_id, candidate_y_id=task.y_id, order=task.order,
        judge_model=judge.spec.model, judge_fingerprint=judge.fingerprint, judge_type=judge.type,
        criteria=judge.spec.criteria, judged_at=now, **verdict)
