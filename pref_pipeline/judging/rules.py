"""``rule`` judges: named, deterministic preferences that need no model.

- ``prefer_concise``: within a quality band (not empty, not a refusal, not degenerate repetition, at
  least ``MIN_WORDS`` words), the shorter response wins when it has at most ``CONCISE_RATIO`` of the
  longer one's words; a response outside the band loses to one inside it.
- ``no_refusal_of_safe_requests``: on a prompt whose category is not a harm category, a response that
  answers beats one that refuses.
- ``reference_match``: where the prompt has a gold answer (``reference``), the response closer to it
  (word-overlap F1) wins when the difference is at least ``MIN_F1_GAP``.

A rule with no preference on a comparison (lengths alike, no refusal or both, no reference) abstains:
its rows have ``parse_status = not_applicable`` and the panel does not count them as votes. A rule's
source text is part of its fingerprint, so changing a rule re-judges. A rule is a function registered
with ``@rule`` here; ``rule:`` in a judge's configuration accepts exactly the registered names.
"""

from __future__ import annotations

import inspect
import re
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import model_validator

from pref_pipeline.judging.base import Judge, JudgeTask, judgment_row, shown_as
from pref_pipeline.specs import JudgeSpec

MIN_WORDS = 3
CONCISE_RATIO = 0.8
MIN_DISTINCT_RATIO = 0.3
MIN_F1_GAP = 0.05
HARM_CATEGORIES = frozenset({"harmful", "unsafe", "harmlessness", "red_team", "redteam", "jailbreak", "dangerous"})
_REFUSAL = re.compile(
    r"\b(?:i\s*(?:'m|am)\s+(?:sorry|unable|not\s+able)|i\s+(?:can\s*not|can't|cannot|won't|will\s+not|must\s+decline)"
    r"|as\s+an\s+ai\b|i\s+apologi[sz]e|i'm\s+not\s+comfortable)",
    re.IGNORECASE,
)
_WORD = re.compile(r"\w+")

Verdict = tuple[str | None, float | None, str]  # (preferred: x, y or None to abstain; confidence; reasoning)
Rule = Callable[[JudgeTask], Verdict]
RULES: dict[str, Rule] = {}
RULE_PROVIDER = "rule"  # a rule judge's model is named rule:<rule>; it makes no call


def rule(fn: Rule) -> Rule:
    """Registers a rule under its function's name."""
    RULES[fn.__name__] = fn
    return fn


def refuses(text: str) -> bool:
    """A refusal: the response opens (first 200 characters) by declining."""
    return bool(_REFUSAL.search(text[:200]))


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def in_quality_band(text: str) -> bool:
    words = _words(text)
    if len(words) < MIN_WORDS or refuses(text):
        return False
    return len(words) < 8 or len(set(words)) / len(words) >= MIN_DISTINCT_RATIO


@rule
def prefer_concise(task: JudgeTask) -> Verdict:
    x_ok, y_ok = in_quality_band(task.x_text), in_quality_band(task.y_text)
    if x_ok != y_ok:
        return ("x" if x_ok else "y"), 1.0, "only one response is within the quality band"
    if not x_ok:
        return None, None, "neither response is within the quality band"
    nx, ny = len(_words(task.x_text)), len(_words(task.y_text))
    shorter, longer = min(nx, ny), max(nx, ny)
    if shorter > CONCISE_RATIO * longer:
        return None, None, f"lengths alike ({nx} vs {ny} words)"
    return ("x" if nx < ny else "y"), 1 - shorter / longer, f"the shorter response ({shorter} vs {longer} words)"


@rule
def no_refusal_of_safe_requests(task: JudgeTask) -> Verdict:
    if (task.category or "").strip().lower() in HARM_CATEGORIES:
        return None, None, f"category {task.category!r} is a harm category: refusing may be right"
    x_refuses, y_refuses = refuses(task.x_text), refuses(task.y_text)
    if x_refuses == y_refuses:
        return None, None, "both refuse" if x_refuses else "neither refuses"
    return ("y" if x_refuses else "x"), 1.0, "the other response refuses a safe request"


def _f1(text: str, reference: str) -> float:
    a, b = Counter(_words(text)), Counter(_words(reference))
    common = sum((a & b).values())
    if not common:
        return 0.0
    precision, recall = common / sum(a.values()), common / sum(b.values())
    return 2 * precision * recall / (precision + recall)


@rule
def reference_match(task: JudgeTask) -> Verdict:
    if not task.reference or not str(task.reference).strip():
        return None, None, "the prompt has no reference answer"
    fx, fy = _f1(task.x_text, task.reference), _f1(task.y_text, task.reference)
    if abs(fx - fy) < MIN_F1_GAP:
        return None, None, f"equally close to the reference (F1 {fx:.2f} vs {fy:.2f})"
    return ("x" if fx > fy else "y"), min(1.0, abs(fx - fy)), f"closer to the reference (F1 {max(fx, fy):.2f} " \
        f"vs {min(fx, fy):.2f})"


def rule_identity(rule: str | None) -> str:
    """What decides a rule's verdicts: its source and the module's thresholds (hashed into its fingerprint)."""
    fn = RULES[rule or ""]
    constants = dict(MIN_WORDS=MIN_WORDS, CONCISE_RATIO=CONCISE_RATIO, MIN_DISTINCT_RATIO=MIN_DISTINCT_RATIO,
                     MIN_F1_GAP=MIN_F1_GAP, HARM=sorted(HARM_CATEGORIES), REFUSAL=_REFUSAL.pattern)
    source = inspect.getsource(fn)
    source = source[source.index("def "):]  # without the @rule line: identities made before it was added hold
    return f"rule:{rule}\n{source}\n{constants}"


class RuleJudgeSpec(JudgeSpec):
    """A named rule from ``RULES``, no model: written ``{type: rule, rule: <name>}``; its model is ``rule:<name>``
    and its criteria default to the rule's name."""

    type: Literal["rule"]
    rule: Literal[tuple(RULES)]  # type: ignore[valid-type]
    calls_model: ClassVar[bool] = False
    _other_providers: ClassVar[tuple[str, ...]] = (RULE_PROVIDER,)

    @model_validator(mode="before")
    @classmethod
    def _named_by_its_rule(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        name = data.get("rule")
        if not name:
            raise ValueError(f"a rule judge needs `rule` (one of {', '.join(RULES)})")
        model = data.get("model")
        if model is not None and model != f"{RULE_PROVIDER}:{name}":
            raise ValueError(f"a rule judge has no model (remove `model: {model}`)")
        data["model"] = f"{RULE_PROVIDER}:{name}"
        data.setdefault("criteria", str(name))
        return data

    def template_text(self) -> str:
        return rule_identity(self.rule)


class RuleJudge(Judge):
    """A rule from ``RULES``; makes no call (``provider`` is ignored)."""

    spec_class = RuleJudgeSpec
    spec: RuleJudgeSpec

    def __init__(self, spec: RuleJudgeSpec, provider: Any = None):
        super().__init__(spec)
        self.rule = RULES[spec.rule]
        self._fingerprint = spec.fingerprint()

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    async def judge(self, tasks: list[JudgeTask], now: datetime) -> list[dict[str, Any]]:
        return [self.row(task, *self.rule(task), now) for task in tasks]

    def row(self, task: JudgeTask, preferred: str | None, confidence: float | None, reasoning: str,
            now: datetime) -> dict[str, Any]:
        return judgment_row(task, self, now, preference=shown_as(preferred, task.order), preferred=preferred,
                            confidence=confidence, reasoning=reasoning,
                            parse_status="ok" if preferred else "not_applicable", attempts=0, failed_outputs="[]",
                            input_tokens=0, output_tokens=0, latency_s=0.0)
