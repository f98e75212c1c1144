"""``pointwise``: the judge scores each candidate alone, 1-10 against its rubric.

Scores are what ``score_extremes`` (``strategies/score_extremes.py``) pairs by; in a panel, a pointwise
judge also votes on a comparison by the two candidates' scores (the higher wins, equal scores are a
tie). Each candidate is scored once however many comparisons it is in (identical requests are asked
once), and the verdict cannot depend on which candidate is shown first: a pointwise judge has no
position bias by construction, so its two orders always agree.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pref_pipeline.ids import derived_seed
from pref_pipeline.judging.base import Judge, JudgeTask, judgment_row, shown_as
from pref_pipeline.judging.prompts import JUDGE_SYSTEM_PROMPT, POINTWISE_TEMPLATE, SCORE_SCHEMA, render_score_prompt
from pref_pipeline.judging.retries import Tries, ask_until_parsed
from pref_pipeline.providers import ChatRequest, Provider
from pref_pipeline.runner import Outcome
from pref_pipeline.specs import JudgeSpec

if TYPE_CHECKING:
    from pref_pipeline.providers.client import ModelClient

SCORE_MIN, SCORE_MAX = 1, 10
_SCORE_LINE = re.compile(r"^\W*score\W*:\s*(\d+(?:\.0+)?)\s*(?:/\s*10)?\s*$", re.IGNORECASE | re.MULTILINE)
_BARE = re.compile(r"^\s*(\d+(?:\.0+)?)\s*(?:/\s*10)?\s*$")


class PointwiseJudgeSpec(JudgeSpec):
    """A judge model that scores each response alone, 1-10 against its rubric (``judging/templates/pointwise.jinja``;
    no custom template)."""

    type: Literal["pointwise"]

    def template_text(self) -> str:
        return POINTWISE_TEMPLATE


@dataclass(frozen=True)
class ParsedScore:
    score: int | None
    reasoning: str
    error: str | None = None

    @property
    def usable(self) -> bool:
        return self.score is not None


def parse_score(text: str) -> ParsedScore:
    """A 1-10 integer score from JSON ``{"score": n, ...}``, a ``SCORE: n`` line or a bare number;
    anything else (or out of range) is unparseable with its reason, never a default score."""
    raw = (text or "").strip()
    if not raw:
        return ParsedScore(None, "", "empty output")
    value: Any = None
    reasoning = ""
    start = raw.find("{")
    if start >= 0:
        try:
            obj, _ = json.JSONDecoder().raw_decode(raw[start:])
        except ValueError:
            obj = None
        if isinstance(obj, dict) and "score" in obj:
            value, reasoning = obj["score"], str(obj.get("reasoning") or "")
    if value is None:
        match = _SCORE_LINE.search(raw) or _BARE.match(raw)
        if match:
            value = match.group(1)
    if value is None:
        return ParsedScore(None, "", "no score found")
    try:
        number = float(value)
    except (TypeError, ValueError):
        return ParsedScore(None, reasoning, f"score {value!r} is not a number")
    if number != int(number) or not SCORE_MIN <= number <= SCORE_MAX:
        return ParsedScore(None, reasoning, f"score {value!r} is not an integer from {SCORE_MIN} to {SCORE_MAX}")
    return ParsedScore(int(number), reasoning)


@dataclass(frozen=True)
class ScoreItem:
    """One candidate to score."""

    question: str
    text: str
    seed: int


ScoreResult = Tries[ParsedScore]


class PointwiseJudge(Judge):
    """Scores candidates one at a time; compares two by their scores."""

    spec_class = PointwiseJudgeSpec

    def __init__(self, spec: PointwiseJudgeSpec, provider: Provider | ModelClient):
        super().__init__(spec)
        self.provider = provider
        self.rubric = spec.rubric_text()
        self._fingerprint = spec.fingerprint()

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def base_request(self, item: ScoreItem) -> ChatRequest:
        return self.provider.request(
            render_score_prompt(question=item.question, response=item.text, criteria=self.spec.criteria,
                                rubric=self.rubric),
            seed=self.spec.seed if self.spec.seed is not None else item.seed,
            system=self.spec.system_prompt or JUDGE_SYSTEM_PROMPT,
            json_schema=SCORE_SCHEMA,
            schema_name="score",
        )

    async def score_many(self, items: Sequence[ScoreItem]) -> list[Outcome[ScoreResult]]:
        """Score every item, retrying unparseable output ``parse_retries`` times (``retries.py``)."""
        return await ask_until_parsed(self.provider, [self.base_request(item) for item in items],
                                      lambda response: parse_score(response.text), retries=self.spec.parse_retries,
                                      label=f"score {self.spec.model}")

    async def score_candidates(self, question_of: dict[str, str], texts: dict[str, str]
                               ) -> dict[str, Outcome[ScoreResult]]:
        """Per candidate id (``texts``: id -> text; ``question_of``: id -> its prompt): its score outcome."""
        ids = list(texts)
        items = [ScoreItem(question_of[c], texts[c], derived_seed(c, "score")) for c in ids]
        return dict(zip(ids, await self.score_many(items)))

    async def judge(self, tasks: list[JudgeTask], now: datetime) -> list[dict[str, Any]]:
        texts: dict[str, str] = {}
        questions: dict[str, str] = {}
        for t in tasks:
            texts[t.x_id], texts[t.y_id] = t.x_text, t.y_text
            questions[t.x_id] = questions[t.y_id] = t.question
        scored = await self.score_candidates(questions, texts)
        return [self.row(task, scored[task.x_id], scored[task.y_id], now) for task in tasks]

    def row(self, task: JudgeTask, x: Outcome[ScoreResult], y: Outcome[ScoreResult], now: datetime) -> dict[str, Any]:
        """One judgments row: the comparison decided by the two scores, as shown in ``task.order``."""
        error = x.error or y.error
        sx = x.value.parsed.score if x.ok else None
        sy = y.value.parsed.score if y.ok else None
        preferred = None if sx is None or sy is None else "x" if sx > sy else "y" if sy > sx else "tie"
        problems = [f"{name}: {o.value.parsed.error}" for name, o in (("x", x), ("y", y))
                    if o.ok and not o.value.parsed.usable]
        results = [o.value for o in (x, y) if o.ok]
        return judgment_row(
            task, self, now, preference=shown_as(preferred, task.order), preferred=preferred,
            confidence=None if preferred is None else abs(sx - sy) / (SCORE_MAX - SCORE_MIN),
            score_x=sx, score_y=sy,
            reasoning=" | ".join(f"{n}: {r.parsed.reasoning}" for n, r in zip("xy", results) if r.parsed.reasoning),
            parse_status=None if error else ("unparseable" if problems else "ok"),
            parse_error="; ".join(problems) or None,
            attempts=sum(r.attempts for r in results),
            raw_output=json.dumps({"x": x.value.raw_output if x.ok else None,
                                   "y": y.value.raw_output if y.ok else None}, ensure_ascii=False),
            failed_outputs=json.dumps([f for r in results for f in r.failed_outputs], ensure_ascii=False),
            served_model=results[0].served_model if results else None,
            input_tokens=sum(r.input_tokens for r in results), output_tokens=sum(r.output_tokens for r in results),
            latency_s=sum(r.latency_s for r in results), error=error)


async def score_rows(rows: list[dict[str, Any]], questions: dict[str, str], judges: Sequence[PointwiseJudge]) -> None:
    """Score candidate rows by every judge in ``judges``, each candidate once: sets ``pointwise_scores`` (per judge
    fingerprint, null where the judge gave none) and ``pointwise_score`` (their mean) on each row. ``questions``:
    per prompt id, what the judges read as its question (``prompts.judge_questions``)."""
    question_of = {r["candidate_id"]: questions[r["prompt_id"]] for r in rows}
    texts = {r["candidate_id"]: r["text"] for r in rows}
    per_judge = await asyncio.gather(*(judge.score_candidates(question_of, texts) for judge in judges))
    for row in rows:
        scores = {}
        for judge, scored in zip(judges, per_judge):
            outcome = scored[row["candidate_id"]]
            scores[judge.fingerprint] = outcome.value.parsed.score if outcome.ok else None
        given = [s for s in scores.values() if s is not None]
        row["pointwise_scores"] = json.dumps(scores, sort_keys=True)
        row["pointwise_score"] = sum(given) / len(given) if given else None
