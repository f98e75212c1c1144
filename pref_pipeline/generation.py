"""Writing candidate responses: every configured strategy over a prompt batch, in one call session.

The strategies (``pref_pipeline/strategies/``) decide what to ask; this module runs them side by
side, collects their rows into the candidates table and fails the step only when more calls failed
than ``max_failure_rate`` allows (below that, a failed call is a recorded row).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from pref_pipeline import schema
from pref_pipeline.config import PipelineConfig
from pref_pipeline.ids import short_hash
from pref_pipeline.providers.client import CallSession, CallSettings
from pref_pipeline.strategies import STRATEGIES, PlannedComparison, Strategy

CANDIDATE_COLUMNS = schema.names("candidates")


class TooManyFailures(RuntimeError):
    """More LLM calls failed than ``max_failure_rate`` allows; the message lists the first errors."""


@dataclass(frozen=True)
class Generated:
    """The candidates of a batch and what their calls used (calls, tokens, cost, cache hits)."""

    candidates: pd.DataFrame
    usage: dict[str, Any]


def check_failures(errors: list[str], total: int, limit: float, what: str) -> None:
    """Raise when the share of failed calls exceeds ``limit``; otherwise failures stay recorded rows."""
    if total and errors and len(errors) / total > limit:
        sample = "\n  ".join(errors[:5])
        raise TooManyFailures(
            f"{len(errors)} of {total} {what} failed (more than max_failure_rate={limit:.0%}); first errors:\n  {sample}"
        )


def configured_strategies(config: PipelineConfig) -> list[Strategy]:
    """The strategies a configuration runs, in its order (``strategies``; absent: ``sampling``). Several entries
    may share a method (ALMoST's contrasts side by side); an entry identical to an earlier one (same method and
    ``strategy_params``) would make the very same candidates, ids included, so it runs once."""
    found: dict[tuple[str, str], Strategy] = {}
    for spec in config.strategies:
        strategy = STRATEGIES[spec.method](config, spec.model_dump(exclude={"method"}, exclude_none=True))
        found.setdefault((strategy.method, strategy.strategy_params), strategy)
    return list(found.values())


def own_candidates(candidates: pd.DataFrame, strategy: Strategy) -> pd.DataFrame:
    """The candidates one ``strategies`` entry made: its method's, with its own ``strategy_params`` (stored with
    every candidate), so two entries of one method never plan with each other's candidates. A row without
    ``strategy_params`` (made by hand, or by a writer that kept none) goes by its method alone."""
    mine = (candidates["strategy"] == strategy.method).fillna(False).astype(bool)
    if "strategy_params" in candidates.columns:
        params = candidates["strategy_params"]
        mine &= (params.isna() | (params == strategy.strategy_params).fillna(False)).astype(bool)
    return candidates[mine]


async def _generate(prompts: pd.DataFrame, config: PipelineConfig, calls: CallSettings,
                    logger: logging.Logger) -> tuple[list[dict], dict]:
    async with CallSession(config, calls, logger=logger, label="candidates") as session:
        per_strategy = await asyncio.gather(*(s.generate(prompts, session) for s in configured_strategies(config)))
    return [row for rows in per_strategy for row in rows], session.ledger.summary()


def generate_candidates(prompts: pd.DataFrame, config: PipelineConfig, calls: CallSettings,
                        logger: logging.Logger | None = None) -> Generated:
    """One row per planned candidate; failed calls are rows with ``error`` set and empty text."""
    logger = logger or logging.getLogger("pref_pipeline")
    rows, usage = asyncio.run(_generate(prompts, config, calls, logger))
    frame = pd.DataFrame(rows, columns=CANDIDATE_COLUMNS)
    check_failures([e for e in frame["error"] if e], len(frame), config.max_failure_rate, "generation calls")
    return Generated(frame, usage)


def plan_comparisons(candidates: pd.DataFrame, config: PipelineConfig,
                     prompts: pd.DataFrame | None = None) -> list[PlannedComparison]:
    """Every comparison the batch's candidates form, by the strategy that made them (a pure function of the
    stored candidates: judging and pairing recompute the same plan). With ``prompts``, also the no-pair
    entries the prompts alone decide (a prompt without a reference, for the strategies that need one)."""
    planned: list[PlannedComparison] = []
    strategies = configured_strategies(config)
    methods = Counter(s.method for s in strategies)
    for strategy in strategies:
        own = list(strategy.comparisons(own_candidates(candidates, strategy)))
        if prompts is not None:
            own += strategy.unpaired(prompts)
        if methods[strategy.method] > 1:  # a no-pair entry may name no candidate: the entry tells them apart
            entry = short_hash(strategy.strategy_params)
            own = [replace(p, entry=entry) if p.reason else p for p in own]
        planned += own
    return planned


def asks_judges(config: PipelineConfig) -> bool:
    """Whether any configured strategy shows comparisons to the judges (if none does, no verdict is expected)."""
    return any(s.asks_judges for s in configured_strategies(config))
