"""Swap-consistent pairwise judging: each pair is shown in both orders and counts only if both agree.

One ``PairwiseJudge`` wraps one judge model. A verdict that cannot be parsed is retried (with a
different seed, and with sampling if the judge is greedy, since a greedy retry would repeat itself);
every failed output is kept with the row.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from pref_pipeline.config import JudgeSpec
from pref_pipeline.ids import short_hash
from pref_pipeline.judging.base import Judge, JudgeTask, Order, fingerprint_for
from pref_pipeline.judging.confidence import TOP_LOGPROBS, label_margin, label_probability
from pref_pipeline.judging.parsing import ParsedVerdict, parse_verdict
from pref_pipeline.judging.prompts import JUDGE_SYSTEM_PROMPT, PAIRWISE_TEMPLATE, VERDICT_SCHEMA, render_judge_prompt
from pref_pipeline.providers import ChatRequest, ChatResponse, Provider, ProviderError
from pref_pipeline.runner import Outcome

if TYPE_CHECKING:
    from pref_pipeline.providers.client import ModelClient

RETRY_TEMPERATURE = 0.7


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


@dataclass
class _Attempts:
    failed: list[str] = field(default_factory=list)
    tokens_in: int = 0
    tokens_out: int = 0
    latency: float = 0.0
    last: tuple[ParsedVerdict, ChatResponse] | None = None


class PairwiseJudge(Judge):
    """One judge model: renders the prompt, asks for a structured verdict, parses strictly, retries.

    ``provider`` is anything with ``request(...)`` and ``complete_many(requests)``: a ``Provider``
    (plain bounded calls) or the pipeline's ``ModelClient`` (cache, rate limits, batch API).
    """

    type = "pairwise"

    def __init__(self, spec: JudgeSpec, provider: Provider | ModelClient, template: str | None = None):
        super().__init__(spec)
        self.provider = provider
        # ``template`` overrides the configured one (the injection bench compares templates this way).
        self.template = template or spec.template or PAIRWISE_TEMPLATE
        self.rubric = spec.rubric_text()
        self._fingerprint = fingerprint_for(spec, self.template)

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
            json_schema=VERDICT_SCHEMA,
            schema_name="verdict",
            logprobs=TOP_LOGPROBS if self.spec.wants_logprobs else None,
        )

    @staticmethod
    def retry_request(base: ChatRequest, attempt: int) -> ChatRequest:
        """Attempt ``attempt`` (0 = first): a new seed, and sampling if the judge is greedy."""
        if not attempt:
            return base
        greedy = not base.temperature
        return replace(base, seed=(base.seed or 0) + attempt, temperature=RETRY_TEMPERATURE if greedy else base.temperature)

    async def judge_many(self, items: Sequence[JudgeItem]) -> list[Outcome[OrderedVerdict]]:
        """Judge every item in rounds: round 1 asks all, each later round only the still unparseable.

        A round is one ``complete_many`` call (one batch in batch mode). A transport failure is an
        outcome with ``error`` set; output that cannot be parsed is retried ``parse_retries`` times
        and kept (``failed_outputs``, ``raw_output``) either way.
        """
        bases = [self.base_request(item) for item in items]
        state = [_Attempts() for _ in items]
        results: list[Outcome[OrderedVerdict] | None] = [None] * len(items)
        pending = list(range(len(items)))
        for attempt in range(self.spec.parse_retries + 1):
            if not pending:
                break
            label = f"judge {self.spec.model}" + (f" (parse retry {attempt})" if attempt else "")
            outcomes = await self.provider.complete_many([self.retry_request(bases[i], attempt) for i in pending],
                                                         label=label)
            still = []
            for i, outcome in zip(pending, outcomes):
                if not outcome.ok:
                    results[i] = Outcome(None, outcome.error)
                    continue
                response: ChatResponse = outcome.value
                st = state[i]
                st.tokens_in += response.input_tokens or 0
                st.tokens_out += response.output_tokens or 0
                st.latency += response.latency_s
                verdict = parse_verdict(response.text, truncated=response.finish_reason in ("length", "max_tokens"))
                if verdict.usable:
                    margin = label_margin(response.extra.get("token_logprobs"), response.text)
                    results[i] = Outcome(OrderedVerdict(items[i].order, verdict, response.text, attempt + 1, st.failed,
                                                        response.model, st.tokens_in, st.tokens_out, st.latency,
                                                        margin), None)
                else:
                    st.failed.append(response.text)
                    st.last = (verdict, response)
                    still.append(i)
            pending = still
        for i in pending:  # never parsed: the last output is the raw output, the earlier ones failed_outputs
            st = state[i]
            verdict, response = st.last  # type: ignore[misc]
            results[i] = Outcome(OrderedVerdict(items[i].order, verdict, response.text, len(st.failed), st.failed[:-1],
                                                response.model, st.tokens_in, st.tokens_out, st.latency), None)
        return results  # type: ignore[return-value]

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
        return [judgment_row(task, self, outcome, now) for task, outcome in zip(tasks, await self.judge_many(items))]


def judgment_row(task: JudgeTask, judge: PairwiseJudge, outcome: Outcome[OrderedVerdict], now: datetime) -> dict:
    """One judgments row: the verdict of one order of one comparison, with everything needed to audit it."""
    result = outcome.value
    verdict = result.verdict if result else None
    return {
        "judgment_id": "j-" + short_hash(task.comparison_id, judge.fingerprint, task.order),
        "comparison_id": task.comparison_id,
        "prompt_id": task.prompt_id,
        "candidate_x_id": task.x_id,
        "candidate_y_id": task.y_id,
        "order": task.order,
        "judge_model": judge.spec.model,
        "judge_fingerprint": judge.fingerprint,
        "judge_type": judge.type,
        "criteria": judge.spec.criteria,
        "preference": verdict.preference if verdict else None,
        "preferred": result.preferred if result else None,
        "confidence": verdict.confidence if verdict else None,
        "logprob_margin": result.logprob_margin if result else None,
        "label_probability": label_probability(verdict.preference, result.logprob_margin) if result else None,
        "reasoning": verdict.reasoning if verdict else None,
        "parse_status": verdict.status if verdict else None,
        "parse_error": verdict.error if verdict else None,
        "attempts": result.attempts if result else 0,
        "raw_output": result.raw_output if result else None,
        "failed_outputs": json.dumps(result.failed_outputs, ensure_ascii=False) if result else "[]",
        "served_model": result.served_model if result else None,
        "input_tokens": result.input_tokens if result else None,
        "output_tokens": result.output_tokens if result else None,
        "latency_s": result.latency_s if result else None,
        "error": outcome.error,
        "judged_at": now,
    }
