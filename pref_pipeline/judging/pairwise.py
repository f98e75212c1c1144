"""Swap-consistent pairwise judging: each pair is shown in both orders and counts only if both agree.

One ``PairwiseJudge`` wraps one judge model. A verdict that cannot be parsed is retried (with a
different seed, and with sampling if the judge is greedy, since a greedy retry would repeat itself);
every failed output is kept with the row.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from pref_pipeline.config import JudgeSpec, judge_fingerprint
from pref_pipeline.judging.parsing import ParsedVerdict, parse_verdict
from pref_pipeline.judging.prompts import JUDGE_SYSTEM_PROMPT, PAIRWISE_TEMPLATE, VERDICT_SCHEMA, render_judge_prompt
from pref_pipeline.providers import Provider

Order = Literal["xy", "yx"]  # "xy": candidate x shown as A; "yx": candidate y shown as A
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


def fingerprint_for(spec: JudgeSpec) -> str:
    """The judge's identity hash, as stored with each of its verdicts."""
    return judge_fingerprint(spec, spec.template or PAIRWISE_TEMPLATE)


class PairwiseJudge:
    """One judge model: renders the prompt, asks for a structured verdict, parses strictly, retries."""

    def __init__(self, spec: JudgeSpec, provider: Provider):
        self.spec = spec
        self.provider = provider
        self.template = spec.template or PAIRWISE_TEMPLATE
        self.fingerprint = fingerprint_for(spec)

    def prompt(self, question: str, response_a: str, response_b: str) -> str:
        return render_judge_prompt(
            self.template, question=question, response_a=response_a, response_b=response_b, criteria=self.spec.criteria
        )

    async def judge_order(self, question: str, x: str, y: str, order: Order, seed: int | None = None) -> OrderedVerdict:
        """Judge one order, retrying unparseable output; transport errors propagate as ``ProviderError``.

        ``seed`` (used when the judge config sets none) makes a sampling judge reproducible per pair.
        """
        a, b = (x, y) if order == "xy" else (y, x)
        base = self.provider.request(
            self.prompt(question, a, b),
            seed=self.spec.seed if self.spec.seed is not None else seed,
            system=self.spec.system_prompt or JUDGE_SYSTEM_PROMPT,
            json_schema=VERDICT_SCHEMA,
            schema_name="verdict",
        )
        failed: list[str] = []
        tokens_in = tokens_out = 0
        latency = 0.0
        for attempt in range(self.spec.parse_retries + 1):
            request = base
            if attempt:
                greedy = not base.temperature
                request = replace(base, seed=(base.seed or 0) + attempt,
                                  temperature=RETRY_TEMPERATURE if greedy else base.temperature)
            response = await self.provider.complete(request)
            tokens_in += response.input_tokens or 0
            tokens_out += response.output_tokens or 0
            latency += response.latency_s
            verdict = parse_verdict(response.text, truncated=response.finish_reason in ("length", "max_tokens"))
            if verdict.usable:
                return OrderedVerdict(order, verdict, response.text, attempt + 1, failed, response.model,
                                      tokens_in, tokens_out, latency)
            failed.append(response.text)
        return OrderedVerdict(order, verdict, response.text, len(failed), failed[:-1], response.model,
                              tokens_in, tokens_out, latency)
