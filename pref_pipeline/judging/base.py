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
