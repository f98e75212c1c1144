"""Writing candidate responses: every configured strategy over a prompt batch, in one call session.

The strategies (``pref_pipeline/strategies/``) decide what to ask; this module runs them side by
side, collects their rows into the candidates table and fails the step only when more calls failed
than ``max_failure_rate`` allows (below that, a failed call is a recorded row).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import pandas as pd

from pref_pipeline import schema
from pref_pipeline.config import PipelineConfig
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
    """The strategies a configuration runs, in its order (``strategies``; absent: ``sampling``)."""
    return [STRATEGIES[spec.method](config, spec.model_dump(exclude={"method"}, exclude_none=True))
            for spec in config.strategies]


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
    for strategy in configured_strategies(config):
        planned += strategy.comparisons(candidates[candidates["strategy"] == strategy.method])
        if prompts is not None:
            planned += strategy.unpaired(prompts)
    return planned


def asks_judges(config: PipelineConfig) -> bool:
    """Whether any configured strategy shows comparisons to the judges (if none does, no verdict is expected)."""
    return any(s.asks_judges for s in configured_strategies(config))
