"""Tokens and dollars: what each model's calls used and cost, per asset.

Prices are US dollars per million tokens, per ``provider:model``. The built-in table holds list
prices of a few well-known models (as published by OpenAI and Anthropic; check them, they change);
the config's top-level ``prices`` overrides and extends it. Calls through a provider's batch API
cost half (both providers' batch discount); answers served from the response cache cost nothing
and are counted separately. ``local:`` models are free. A model with no known price is reported
with ``cost_usd: null`` and listed under ``unpriced_models`` rather than counted as free.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

BATCH_DISCOUNT = 0.5
Source = Literal["api", "batch", "cache"]


@dataclass(frozen=True)
class Price:
    input_per_mtok: float
    output_per_mtok: float

    def cost(self, input_tokens: int, output_tokens: int, source: Source) -> float:
        if source == "cache":
            return 0.0
        dollars = (input_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok) / 1e6
        return dollars * (BATCH_DISCOUNT if source == "batch" else 1.0)


DEFAULT_PRICES: dict[str, Price] = {
    "openai:gpt-4.1": Price(2.00, 8.00),
    "openai:gpt-4.1-mini": Price(0.40, 1.60),
    "openai:gpt-4.1-nano": Price(0.10, 0.40),
    "openai:gpt-4o": Price(2.50, 10.00),
    "openai:gpt-4o-mini": Price(0.15, 0.60),
    "openai:gpt-5": Price(1.25, 10.00),
    "openai:gpt-5-mini": Price(0.25, 2.00),
    "openai:gpt-5-nano": Price(0.05, 0.40),
    "anthropic:claude-opus-4-5": Price(5.00, 25.00),
    "anthropic:claude-sonnet-4-5": Price(3.00, 15.00),
    "anthropic:claude-haiku-4-5": Price(1.00, 5.00),
}


def price_table(overrides: Mapping[str, Any] | None = None) -> dict[str, Price]:
    """The built-in prices with the config's ``prices`` on top (PriceSpec objects or plain mappings)."""
    table = dict(DEFAULT_PRICES)
    for model, spec in (overrides or {}).items():
        get = spec.get if isinstance(spec, Mapping) else lambda k, s=spec: getattr(s, k)
        table[model] = Price(float(get("input_per_mtok")), float(get("output_per_mtok")))
    return table


def price_for(model: str, table: Mapping[str, Price]) -> Price | None:
    """The price of ``provider:model``; ``local:`` models are free; None when unknown."""
    if model in table:
        return table[model]
    if model.startswith("local:"):
        return Price(0.0, 0.0)
    return None


@dataclass
class _Tally:
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0


class UsageLedger:
    """Per model and per source (api, batch, cache): calls, tokens and dollars. Thread-safe."""

    def __init__(self, prices: Mapping[str, Price] | None = None):
        self.prices = dict(prices) if prices is not None else dict(DEFAULT_PRICES)
        self._tallies: dict[tuple[str, Source], _Tally] = {}
        self._failed: dict[str, int] = {}
        self._rate_limited: dict[str, int] = {}
        self._lock = threading.Lock()

    def record(self, model: str, source: Source, input_tokens: int | None, output_tokens: int | None) -> None:
        price = price_for(model, self.prices)
        tokens_in, tokens_out = int(input_tokens or 0), int(output_tokens or 0)
        with self._lock:
            tally = self._tallies.setdefault((model, source), _Tally())
            tally.calls += 1
            tally.input_tokens += tokens_in
            tally.output_tokens += tokens_out
            if price is not None:
                tally.cost_usd += price.cost(tokens_in, tokens_out, source)

    def record_failure(self, model: str) -> None:
        with self._lock:
            self._failed[model] = self._failed.get(model, 0) + 1

    def record_rate_limited(self, model: str) -> None:
        """A 429 from ``model``'s server (the request itself was retried, or failed in the end)."""
        with self._lock:
            self._rate_limited[model] = self._rate_limited.get(model, 0) + 1

    def summary(self) -> dict[str, Any]:
        """Totals and a per-model breakdown, JSON-ready.

        ``calls`` are paid calls (``api_calls`` + ``batch_calls``); ``cached_calls`` were answered
        from the cache at no cost; tokens of cached answers are in ``cached_*_tokens`` only.
        """
        with self._lock:
            models = sorted({m for m, _ in self._tallies} | set(self._failed) | set(self._rate_limited))
            per_model: dict[str, dict[str, Any]] = {}
            for model in models:
                t = {s: self._tallies.get((model, s), _Tally()) for s in ("api", "batch", "cache")}
                priced = price_for(model, self.prices) is not None
                per_model[model] = {
                    "calls": t["api"].calls + t["batch"].calls,
                    "api_calls": t["api"].calls,
                    "batch_calls": t["batch"].calls,
                    "cached_calls": t["cache"].calls,
                    "failed_calls": self._failed.get(model, 0),
                    "rate_limited": self._rate_limited.get(model, 0),
                    "input_tokens": t["api"].input_tokens + t["batch"].input_tokens,
                    "output_tokens": t["api"].output_tokens + t["batch"].output_tokens,
                    "cached_input_tokens": t["cache"].input_tokens,
                    "cached_output_tokens": t["cache"].output_tokens,
                    "cost_usd": round(t["api"].cost_usd + t["batch"].cost_usd, 6) if priced else None,
                }
        keys = ("calls", "api_calls", "batch_calls", "cached_calls", "failed_calls", "rate_limited", "input_tokens",
                "output_tokens", "cached_input_tokens", "cached_output_tokens")
        totals: dict[str, Any] = {k: sum(m[k] for m in per_model.values()) for k in keys}
        totals["cost_usd"] = round(sum(m["cost_usd"] or 0.0 for m in per_model.values()), 6)
        totals["unpriced_models"] = [m for m, v in per_model.items() if v["cost_usd"] is None and v["calls"]]
        totals["by_model"] = per_model
        return totals

    def describe(self) -> str:
        """One line for the logs."""
        s = self.summary()
        cost = f"${s['cost_usd']:.4f}" + (f" (+ unpriced: {', '.join(s['unpriced_models'])})" if s["unpriced_models"] else "")
        return (f"{s['calls']} paid LLM calls ({s['batch_calls']} batch), {s['cached_calls']} from cache, "
                f"{s['failed_calls']} failed, {s['rate_limited']} x HTTP 429; {s['input_tokens']} input + {s['output_tokens']} output tokens; {cost}")


def usage_metadata(summary: dict[str, Any] | None) -> dict[str, Any]:
    """Asset metadata entries from a step's usage summary (``UsageLedger.summary()``; empty if none)."""
    if not summary:
        return {}
    return {
        "llm_calls": summary["calls"],
        "llm_batch_calls": summary["batch_calls"],
        "llm_cached_calls": summary["cached_calls"],
        "llm_rate_limited": summary["rate_limited"],
        "llm_input_tokens": summary["input_tokens"],
        "llm_output_tokens": summary["output_tokens"],
        # A model without a price is not free: the figure says so instead of counting it as $0.
        "llm_cost_usd": (summary["cost_usd"] if not summary["unpriced_models"] else
                         f"{summary['cost_usd']} + unpriced ({', '.join(summary['unpriced_models'])})"),
        "llm_unpriced_models": summary["unpriced_models"],
        "llm_usage_by_model": summary["by_model"],
    }
