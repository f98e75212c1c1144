"""A dry run: how many LLM calls, tokens and dollars a run would spend, before it spends anything.

Nothing is called. Requests are built exactly as the run builds them, and looked up in the
response cache, so answers a previous run paid for count as free.

How the figures are made:

* **Tokens from text length**: about 4 characters per token (OpenAI's rule of thumb for English;
  code and other languages use more tokens per character). Input = system prompt + message.
* **Output tokens are an upper bound**: each call is counted at its ``max_tokens`` (when unset, what its
  provider lets a call write: 1024 for ``anthropic:``, 256 otherwise; ``Capabilities.default_max_tokens``). Real answers are usually shorter,
  verdicts much shorter (a JSON verdict with a reason is ~50-150 tokens), so the cost is a ceiling.
* **Strategies** (``strategies``): each counts the calls it would make; a call whose input depends on
  an earlier answer (a critique, a revision) is counted with a ``max_tokens``-long stand-in answer, and
  ``critique_revise``'s alternative answer (made only when the second critique still finds the flaw)
  is counted for every prompt (an upper bound). ``gold_corruption`` counts its model's answers with
  ``source: model`` and, with a model, every step of its chain for every prompt (an upper bound: a chain that
  leaves its bounds ends early); with ``model: none`` its edits make no call. A judge a strategy asks while it
  makes its candidates (``best_of_n``'s pointwise scores) is counted under ``judgments``, with its model.
* **Judge calls** assume every candidate call succeeds: for ``sampling`` C(n, 2) pairs per prompt, both
  orders, per judge; for ``strong_vs_weak`` with ``confirm`` and ``human_vs_model`` one comparison per
  prompt (with a reference), both orders, per judge. When a prompt's candidates are all cached, its judge prompts are built from the real
  texts and looked up in the cache too; otherwise each candidate is assumed ``max_tokens`` long.
  Parse retries are not counted (at most ``parse_retries`` more calls per unparseable verdict).
* **Cost** uses the price table (built-in defaults + the config's ``prices``); batch models at half
  price; models without a price show ``?`` and are left out of the total.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from pref_pipeline.accounting import price_for, price_table
from pref_pipeline.batches import discover_batches
from pref_pipeline.providers.cache import ResponseCache, request_key
from pref_pipeline.config import GeneratorSpec, ModelSpec, PipelineConfig, generator_label
from pref_pipeline.generation import configured_strategies
from pref_pipeline.judging.pairwise import JudgeItem, PairwiseJudge
from pref_pipeline.judging.prompts import judge_questions
from pref_pipeline.judgments import judge_tasks
from pref_pipeline.paths import Home
from pref_pipeline.providers import capabilities
from pref_pipeline.providers.base import ChatRequest, RequestBuilder
from pref_pipeline.providers.client import CHARS_PER_TOKEN, estimate_tokens
from pref_pipeline.sources import load_prompts
from pref_pipeline.strategies.sampling import SamplingStrategy

FILLER_TOKENS = 256  # the length assumed for a candidate the judges would read, when it is not cached


@dataclass
class EstimateRow:
    step: str
    model: str
    mode: str  # "live" or "batch"
    priced_as: str  # the provider:model looked up in the price table
    calls: int = 0
    cached: int = 0
    input_tokens: int = 0  # of the calls still to pay
    max_output_tokens: int = 0  # of the calls still to pay, at max_tokens each
    cost_usd: float | None = 0.0  # upper bound; None: no price known

    @property
    def to_pay(self) -> int:
        return self.calls - self.cached


def _max_tokens(spec: ModelSpec) -> int:
    return spec.max_tokens or capabilities(spec.provider).default_max_tokens


def _key(spec: ModelSpec, request: ChatRequest) -> str:
    return request_key(spec.provider, spec.model_name, spec.response_format, request)


def estimate_run(config: PipelineConfig, home: Home) -> dict[str, Any]:
    """Per step and model: calls, how many are cached (in ``home``'s response cache), tokens and an
    upper-bound cost."""
    cache = ResponseCache(home.cache) if config.cache and home.cache.exists() else None
    prices = price_table(config.prices)
    rows: dict[tuple[str, str, str], EstimateRow] = {}
    prompt_count = 0

    def row(step: str, spec: ModelSpec, label: str) -> EstimateRow:
        key = (step, label, "batch" if spec.batch else "live")
        return rows.setdefault(key, EstimateRow(step, label, key[2], spec.model))

    def count(step: str, spec: ModelSpec, label: str, request: ChatRequest, cached_text: str | None) -> None:
        r = row(step, spec, label)
        r.calls += 1
        if cached_text is not None:
            r.cached += 1
            return
        tokens_in = estimate_tokens(request.system) + sum(estimate_tokens(m["content"]) for m in request.messages())
        tokens_out = _max_tokens(spec)
        r.input_tokens += tokens_in
        r.max_output_tokens += tokens_out
        price = price_for(spec.model, prices)
        if price is None:
            r.cost_usd = None
        elif r.cost_usd is not None:
            r.cost_usd += price.cost(tokens_in, tokens_out, "batch" if spec.batch else "api")

    def estimate_sampling(strategy: SamplingStrategy, prompts: pd.DataFrame) -> None:
        """Sampling as before: its candidates, then C(n, 2) judged comparisons per prompt in both orders."""
        candidates = []
        for task in strategy.plan(prompts):
            spec = task.generator
            request = task.ask().request()
            hit = cache.get(_key(spec, request)) if cache is not None else None
            count("candidates", spec, generator_label(spec), request, hit.text if hit else None)
            candidates.append({
                "candidate_id": task.candidate_id, "prompt_id": task.prompt_id, "candidate_index": task.index,
                "text": hit.text if hit else "x" * (CHARS_PER_TOKEN * _max_tokens(spec)),
                "known": hit is not None, "error": None, "strategy": SamplingStrategy.method,
            })
        frame = pd.DataFrame(candidates, columns=["candidate_id", "prompt_id", "candidate_index", "text", "known",
                                                  "error", "strategy"])
        known = dict(zip(frame["candidate_id"], frame["known"]))
        tasks = judge_tasks(prompts, frame, config, strategy.comparisons(frame)) if len(frame) else []
        for spec in config.model_judges:  # rule judges make no call; pointwise ones counted as pairwise
            judge = PairwiseJudge(spec, RequestBuilder(spec))  # type: ignore[arg-type]
            for t in tasks:
                item = JudgeItem(t.question, t.x_text, t.y_text, t.order, seed=t.seed)
                request = judge.base_request(item)
                exact = known[t.x_id] and known[t.y_id]
                hit = cache.get(_key(spec, request)) if cache is not None and exact else None
                count("judgments", spec, spec.model, request, hit.text if hit else None)

    try:
        for sources in discover_batches(config).values():
            prompts = load_prompts(sources, config.max_prompts).prompts
            prompt_count += len(prompts)
            for strategy in configured_strategies(config):
                if isinstance(strategy, SamplingStrategy):
                    estimate_sampling(strategy, prompts)
                    continue
                # The other strategies: every call they would make (a call that depends on an earlier answer
                # counted with a max_tokens-long stand-in), and their judged comparisons with stand-in texts.
                for spec, request in strategy.estimate_calls(prompts):
                    hit = cache.get(_key(spec, request)) if cache is not None else None
                    if isinstance(spec, GeneratorSpec):
                        count("candidates", spec, generator_label(spec), request, hit.text if hit else None)
                    else:  # a judge asked while the candidates are made (a pointwise score)
                        count("judgments", spec, spec.model, request, hit.text if hit else None)
                questions = judge_questions(prompts)
                for prompt_id in strategy.estimate_judged(prompts):
                    for spec in config.model_judges:
                        judge = PairwiseJudge(spec, RequestBuilder(spec))  # type: ignore[arg-type]
                        filler = "x" * (CHARS_PER_TOKEN * FILLER_TOKENS)
                        for order in ("xy", "yx"):
                            request = judge.base_request(JudgeItem(questions[prompt_id], filler, filler, order))
                            count("judgments", spec, spec.model, request, None)
    finally:
        if cache is not None:
            cache.close()

    ordered = sorted(rows.values(), key=lambda r: (r.step != "candidates", r.model))
    unpriced = sorted({r.priced_as for r in ordered if r.cost_usd is None and r.to_pay})
    return {
        "prompts": prompt_count,
        "rows": [{**asdict(r), "to_pay": r.to_pay} for r in ordered],
        "total": {
            "calls": sum(r.calls for r in ordered),
            "cached": sum(r.cached for r in ordered),
            "to_pay": sum(r.to_pay for r in ordered),
            "input_tokens": sum(r.input_tokens for r in ordered),
            "max_output_tokens": sum(r.max_output_tokens for r in ordered),
            "cost_usd": round(sum(r.cost_usd or 0.0 for r in ordered), 6),
            "unpriced_models": unpriced,
        },
    }


def render_estimate(estimate: dict[str, Any]) -> str:
    """A plain-text table for the terminal."""
    header = ("step", "model", "mode", "calls", "cached", "to pay", "input tok", "output tok (max)", "cost USD (max)")
    lines = []
    for r in estimate["rows"]:
        cost = "?" if r["cost_usd"] is None else f"{r['cost_usd']:.4f}"
        lines.append((r["step"], r["model"], r["mode"], str(r["calls"]), str(r["cached"]), str(r["to_pay"]),
                      f"{r['input_tokens']:,}", f"{r['max_output_tokens']:,}", cost))
    t = estimate["total"]
    lines.append(("total", "", "", str(t["calls"]), str(t["cached"]), str(t["to_pay"]), f"{t['input_tokens']:,}",
                  f"{t['max_output_tokens']:,}", f"{t['cost_usd']:.4f}" + (" + ?" if t["unpriced_models"] else "")))
    widths = [max(len(x) for x in col) for col in zip(header, *lines)]
    fmt = lambda cells: "  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))  # noqa: E731
    out = [f"dry run over {estimate['prompts']} prompts (nothing was called)", fmt(header),
           fmt(tuple("-" * w for w in widths))]
    out += [fmt(cells) for cells in lines]
    out.append("")
    out.append("tokens: ~4 characters per token; output counted at max_tokens (an upper bound, verdicts are far "
               "shorter); judge calls assume every candidate succeeds, parse retries not included; "
               "batch models at half price; cached calls cost nothing.")
    if t["unpriced_models"]:
        out.append(f"no price known for: {', '.join(t['unpriced_models'])} (add them under 'prices' in the config)")
    return "\n".join(out)


__all__ = ["EstimateRow", "estimate_run", "render_estimate"]
