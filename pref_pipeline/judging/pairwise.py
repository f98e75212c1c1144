"""Swap-consistent pairwise judging: each pair is shown in both orders and counts only if both agree.

One ``PairwiseJudge`` wraps one judge model. A verdict that cannot be parsed is retried (with a
different seed, and with sampling if the judge is greedy, since a greedy retry would repeat itself);
every failed output is kept with the row.

The verdict comes as JSON (``verdict_format: json``, the default: the provider's structured output where it
has one) or as the seed's three lines (``verdict_format: lines``: ``PREFERENCE: A|B``, ``CONFIDENCE:
high|medium|low``, ``REASONING: ...``, asked by ``templates/pairwise_lines.jinja`` in free text); either
way the strict parser reads it, and a confidence given as a word is kept as the word beside its number.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from pref_pipeline.judging.base import Judge, JudgeTask, Order, judgment_row
from pref_pipeline.judging.confidence import TOP_LOGPROBS, label_margin, label_probability
from pref_pipeline.judging.parsing import ParsedVerdict, parse_verdict
from pref_pipeline.judging.prompts import (
    JUDGE_SYSTEM_PROMPT,
    PAIRWISE_LINES_TEMPLATE,
    PAIRWISE_TEMPLATE,
    render_judge_prompt,
    verdict_schema,
)
from pref_pipeline.judging.retries import ask_until_parsed
from pref_pipeline.providers import ChatRequest, ChatResponse, Provider, ProviderError
from pref_pipeline.runner import Outcome
from pref_pipeline.specs import JudgeSpec

if TYPE_CHECKING:
    from pref_pipeline.providers.client import ModelClient


class PairwiseJudgeSpec(JudgeSpec):
    """A judge model that compares two responses and names the better one (the default judge type)."""

    type: Literal["pairwise"] = "pairwise"
    # A custom judge prompt; must contain {question}, {response_a}, {response_b} and {criteria}.
    template: str | None = None
    # How the verdict is written: json ({"preference", "confidence", "reasoning"}, structured output where the
    # provider has it) or lines (PREFERENCE: A|B, CONFIDENCE: high|medium|low, REASONING: ..., in free text).
    verdict_format: Literal["json", "lines"] = "json"
    # The longest reasoning, in characters, written into the verdict's JSON schema (``maxLength``): a provider that
    # turns the schema into a grammar (``local:``) then stops a verdict there instead of at ``max_tokens``. Unset:
    # the schema has no limit (as always; the judge's fingerprint and requests are unchanged).
    reasoning_max_chars: Annotated[int, Field(ge=1, le=4000)] | None = None

    @model_validator(mode="before")
    @classmethod
    def _lines_are_text(cls, data: Any) -> Any:
        """A ``lines`` verdict is free text: no JSON schema is sent, so ``response_format`` is ``text`` (the
        default there); a JSON mode asked for with it is a contradiction."""
        if not isinstance(data, dict) or data.get("verdict_format") != "lines":
            return data
        if data.get("response_format", "text") != "text":
            raise ValueError(f"response_format: {data['response_format']} asks for JSON, but verdict_format: lines "
                             "asks for PREFERENCE/CONFIDENCE/REASONING lines in free text; leave response_format "
                             "out (it is text for a lines judge)")
        return {**data, "response_format": "text"}

    @field_validator("template")
    @classmethod
    def _template_fields(cls, value: str | None) -> str | None:
        if value is not None:
            missing = [f for f in ("{question}", "{response_a}", "{response_b}") if f not in value]
            if missing:
                raise ValueError(f"template lacks {', '.join(missing)}")
        return value

    def template_text(self) -> str:
        if self.template:
            return self.template
        return PAIRWISE_LINES_TEMPLATE if self.verdict_format == "lines" else PAIRWISE_TEMPLATE

    def verdict_schema(self) -> dict | None:
        """The JSON schema a verdict is asked in (None for ``lines``: free text)."""
        if self.lines:
            return None
        return verdict_schema(self.reasoning_max_chars)

    @property
    def lines(self) -> bool:
        """Whether verdicts are asked for as PREFERENCE / CONFIDENCE / REASONING lines (no JSON schema)."""
        return self.verdict_format == "lines"



@dataclass(frozen=True)
class OrderedVerdict:
    """The judge's answer for one order of one pair, with everything needed to audit it."""

    order: Order
    verdict: ParsedVerdict
    raw_output: str
    attempts: int
    failed_outputs: list[str] = field(default_factory=list)
    served_model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    latency_s: float = 0.0
    logprob_margin: float | None = None  # P(A) - P(B) at the label token, where the provider gave logprobs

    @property
    def preferred(self) -> Literal["x", "y", "tie"] | None:
        """The verdict in terms of the candidates rather than the positions."""
        label = self.verdict.preference
        if label is None or label == "tie":
            return label
        first_is_x = self.order == "xy"
        return "x" if (label == "A") == first_is_x else "y"


def combine_orders(first: str | None, second: str | None) -> tuple[str, Literal["x", "y"] | None]:
    """Status of a pair from what each order preferred (``x``, ``y``, ``tie``; None: never parsed).

    ``consistent``: both orders name the same candidate; ``tie``: both say tie; ``inconsistent``:
    anything else that parsed (including one tie); ``unparseable``: an order never parsed.
    """
    if first is None or second is None:
        return "unparseable", None
    if first == second == "tie":
        return "tie", None
    if first == second:
        return "consistent", first  # type: ignore[return-value]
    return "inconsistent", None


@dataclass(frozen=True)
class JudgeItem:
    """One order of one pair to judge; ``seed`` is used when the judge config sets none."""

    question: str
    x: str
    y: str
    order: Order
    seed: int | None = None


class PairwiseJudge(Judge):
    """One judge model: renders the prompt, asks for a structured verdict, parses strictly, retries.

    ``provider`` is anything with ``request(...)`` and ``complete_many(requests)``: a ``Provider``
    (plain bounded calls) or the pipeline's ``ModelClient`` (cache, rate limits, batch API).
    """

    spec_class = PairwiseJudgeSpec
    spec: PairwiseJudgeSpec

    def __init__(self, spec: PairwiseJudgeSpec, provider: Provider | ModelClient, template: str | None = None):
        super().__init__(spec)
        self.provider = provider
        # ``template`` overrides the configured one (the injection bench compares templates this way).
        self.template = template or spec.template_text()
        self.rubric = spec.rubric_text()
        self._fingerprint = spec.fingerprint(self.template)

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def prompt(self, question: str, response_a: str, response_b: str) -> str:
        return render_judge_prompt(self.template, question=question, response_a=response_a, response_b=response_b,
                                   criteria=self.spec.criteria, rubric=self.rubric)

    def base_request(self, item: JudgeItem) -> ChatRequest:
        """The first attempt's request for one order of one pair."""
        a, b = (item.x, item.y) if item.order == "xy" else (item.y, item.x)
        return self.provider.request(
            self.prompt(item.question, a, b),
            seed=self.spec.seed if self.spec.seed is not None else item.seed,
            system=self.spec.system_prompt or JUDGE_SYSTEM_PROMPT,
            json_schema=self.spec.verdict_schema(),
            schema_name="verdict",
            logprobs=TOP_LOGPROBS if self.spec.wants_logprobs else None,
        )

    async def judge_many(self, items: Sequence[JudgeItem]) -> list[Outcome[OrderedVerdict]]:
        """Judge every item, retrying unparseable output ``parse_retries`` times (``retries.py``). A transport
        failure is an outcome with ``error`` set; output that never parses is kept (``failed_outputs``,
        ``raw_output``) with its parse error."""
        def parse(response: ChatResponse) -> ParsedVerdict:
            return parse_verdict(response.text, truncated=response.finish_reason in ("length", "max_tokens"))

        tries = await ask_until_parsed(self.provider, [self.base_request(item) for item in items], parse,
                                       retries=self.spec.parse_retries, label=f"judge {self.spec.model}")
        results: list[Outcome[OrderedVerdict]] = []
        for item, outcome in zip(items, tries):
            if not outcome.ok:
                results.append(Outcome(None, outcome.error))
                continue
            t = outcome.value
            margin = label_margin(t.extra.get("token_logprobs"), t.raw_output) if t.parsed.usable else None
            results.append(Outcome(OrderedVerdict(item.order, t.parsed, t.raw_output, t.attempts, t.failed_outputs,
                                                  t.served_model, t.input_tokens, t.output_tokens, t.latency_s,
                                                  margin), None))
        return results

    async def judge_order(self, question: str, x: str, y: str, order: Order, seed: int | None = None) -> OrderedVerdict:
        """Judge one order, retrying unparseable output; a transport error raises ``ProviderError``.

        ``seed`` (used when the judge config sets none) makes a sampling judge reproducible per pair.
        """
        [outcome] = await self.judge_many([JudgeItem(question, x, y, order, seed)])
        if not outcome.ok:
            raise ProviderError(outcome.error)
        return outcome.value

    async def judge(self, tasks: list[JudgeTask], now: datetime) -> list[dict]:
        items = [JudgeItem(t.question, t.x_text, t.y_text, t.order, seed=t.seed) for t in tasks]
        return [self.row(task, outcome, now) for task, outcome in zip(tasks, await self.judge_many(items))]

    def row(self, task: JudgeTask, outcome: Outcome[OrderedVerdict], now: datetime) -> dict:
        """The verdict of one order of one comparison, with everything needed to audit it."""
        result = outcome.value
        verdict = result.verdict if result else None
        return judgment_row(
            task, self, now,
            preference=verdict.preference if verdict else None,
            preferred=result.preferred if result else None,
            confidence=verdict.confidence if verdict else None,
            confidence_word=verdict.confidence_word if verdict else None,
            logprob_margin=result.logprob_margin if result else None,
            label_probability=label_probability(verdict.preference, result.logprob_margin) if result else None,
            reasoning=verdict.reasoning if verdict else None,
            parse_status=verdict.status if verdict else None,
            parse_error=verdict.error if verdict else None,
            attempts=result.attempts if result else 0,
            raw_output=result.raw_output if result else None,
            failed_outputs=json.dumps(result.failed_outputs, ensure_ascii=False) if result else "[]",
            served_model=result.served_model if result else None,
            input_tokens=result.input_tokens if result else None,
            output_tokens=result.output_tokens if result else None,
            latency_s=result.latency_s if result else None,
            error=outcome.error)
