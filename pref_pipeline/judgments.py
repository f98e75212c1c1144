"""The judgments step: every planned comparison of a prompt batch judged, in both orders, by every judge.

The comparisons come from the strategies (``generation.plan_comparisons``): those a strategy wants
judged are shown to each judge twice, the order swapped; the judge types are the modules of
``pref_pipeline/judging/`` (``JUDGE_TYPES``).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pandas as pd

from pref_pipeline import schema
from pref_pipeline.config import PipelineConfig
from pref_pipeline.generation import check_failures, plan_comparisons
from pref_pipeline.ids import derived_seed
from pref_pipeline.judging import make_judge
from pref_pipeline.judging.base import JudgeTask
from pref_pipeline.judging.prompts import judge_questions
from pref_pipeline.providers.client import CallSession, CallSettings
from pref_pipeline.strategies import PlannedComparison

JUDGMENT_COLUMNS = schema.names("judgments")


@dataclass(frozen=True)
class Judged:
    """The verdict rows of a batch and what their calls used."""

    judgments: pd.DataFrame
    usage: dict[str, Any] | None


def judge_tasks(prompts: pd.DataFrame, candidates: pd.DataFrame, config: PipelineConfig,
                planned: list[PlannedComparison] | None = None) -> list[JudgeTask]:
    """Both orders of every planned comparison (default: what the strategies plan) that asks for a judge."""
    questions = judge_questions(prompts)
    categories = dict(zip(prompts["prompt_id"], prompts["category"])) if "category" in prompts else {}
    references = dict(zip(prompts["prompt_id"], prompts["reference"])) if "reference" in prompts else {}
    texts = dict(zip(candidates["candidate_id"], candidates["text"]))
    tasks = []
    for comparison in (plan_comparisons(candidates, config) if planned is None else planned):
        if not comparison.judged:
            continue
        for order in ("xy", "yx"):
            tasks.append(JudgeTask(comparison.comparison_id, comparison.prompt_id, questions[comparison.prompt_id],
                                   comparison.x_id, texts[comparison.x_id], comparison.y_id, texts[comparison.y_id],
                                   order, seed=derived_seed(comparison.comparison_id, order),
                                   category=_text_or_none(categories.get(comparison.prompt_id)),
                                   reference=_text_or_none(references.get(comparison.prompt_id))))
    return tasks


def _text_or_none(value) -> str | None:
    return None if value is None or pd.isna(value) else str(value)


async def _judge_all(tasks: list[JudgeTask], config: PipelineConfig, calls: CallSettings,
                     logger: logging.Logger) -> tuple[list[dict], dict]:
    """Every judge over every task (judges side by side); returns the rows and the usage summary."""
    async with CallSession(config, calls, logger=logger, label="judgments") as session:
        async def run_judge(spec) -> list[dict]:
            return await make_judge(spec, session).judge(tasks, datetime.now(timezone.utc))

        per_judge = await asyncio.gather(*(run_judge(spec) for spec in config.judges))
    return [row for rows in per_judge for row in rows], session.ledger.summary()


def judge_comparisons(prompts: pd.DataFrame, candidates: pd.DataFrame, config: PipelineConfig, calls: CallSettings,
                      logger: logging.Logger | None = None, planned: list[PlannedComparison] | None = None) -> Judged:
    """One row per (comparison, order, judge). Transport failures are rows with ``error`` set."""
    logger = logger or logging.getLogger("pref_pipeline")
    tasks = judge_tasks(prompts, candidates, config, planned)
    rows, usage = asyncio.run(_judge_all(tasks, config, calls, logger)) if tasks else ([], None)
    frame = pd.DataFrame(rows, columns=JUDGMENT_COLUMNS)
    check_failures([e for e in frame["error"] if e], len(frame), config.max_failure_rate, "judge calls")
    return Judged(frame, usage)
