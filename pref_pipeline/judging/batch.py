"""Judging every pair of candidates of every prompt, in both orders, by every configured judge."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone

import pandas as pd

from pref_pipeline import schema
from pref_pipeline.accounting import USAGE_ATTR
from pref_pipeline.config import PipelineConfig
from pref_pipeline.generation import check_failures, derived_seed
from pref_pipeline.judging.pairwise import JudgeItem, Order, OrderedVerdict, PairwiseJudge
from pref_pipeline.providers.client import CallSession
from pref_pipeline.runner import Outcome

JUDGMENT_COLUMNS = schema.names("judgments")


def _short_hash(*parts: object) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class JudgeTask:
    comparison_id: str
    prompt_id: str
    question: str
    x_id: str
    x_text: str
    y_id: str
    y_text: str
    order: Order


def plan_comparisons(prompts: pd.DataFrame, candidates: pd.DataFrame) -> list[JudgeTask]:
    """Every unordered pair of a prompt's successful candidates, once per order."""
    usable = candidates[candidates["error"].isna()].sort_values(["prompt_id", "candidate_index"])
    questions = dict(zip(prompts["prompt_id"], prompts["prompt"]))
    by_prompt: dict[str, list] = {}  # one pass instead of a pandas groupby: thousands of prompts stay fast
    for row in usable.itertuples(index=False):
        by_prompt.setdefault(row.prompt_id, []).append(row)
    tasks = []
    for prompt_id, rows in by_prompt.items():
        for x, y in itertools.combinations(rows, 2):
            comparison_id = "cmp-" + _short_hash(prompt_id, x.candidate_id, y.candidate_id)
            for order in ("xy", "yx"):
                tasks.append(JudgeTask(comparison_id, prompt_id, questions[prompt_id], x.candidate_id, x.text,
                                       y.candidate_id, y.text, order))
    return tasks


def _row(task: JudgeTask, judge: PairwiseJudge, outcome: Outcome[OrderedVerdict], now: datetime) -> dict:
    result = outcome.value
    verdict = result.verdict if result else None
    return {
        "judgment_id": "j-" + _short_hash(task.comparison_id, judge.fingerprint, task.order),
        "comparison_id": task.comparison_id,
        "prompt_id": task.prompt_id,
        "candidate_x_id": task.x_id,
        "candidate_y_id": task.y_id,
        "order": task.order,
        "judge_model": judge.spec.model,
        "judge_fingerprint": judge.fingerprint,
        "criteria": judge.spec.criteria,
        "preference": verdict.preference if verdict else None,
        "preferred": result.preferred if result else None,
        "confidence": verdict.confidence if verdict else None,
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


async def _judge_all(tasks: list[JudgeTask], config: PipelineConfig, logger: logging.Logger) -> tuple[list[dict], dict]:
    """Every judge over every task (judges side by side); returns the rows and the usage summary."""
    items = [JudgeItem(t.question, t.x_text, t.y_text, t.order, seed=derived_seed(t.comparison_id, t.order))
             for t in tasks]
    async with CallSession(config, logger=logger, label="judgments") as session:
        async def run_judge(spec) -> list[dict]:
            judge = PairwiseJudge(spec, session.client(spec))
            outcomes = await judge.judge_many(items)
            now = datetime.now(timezone.utc)
            return [_row(task, judge, outcome, now) for task, outcome in zip(tasks, outcomes)]

        per_judge = await asyncio.gather(*(run_judge(spec) for spec in config.judges))
    return [row for rows in per_judge for row in rows], session.ledger.summary()


def judge_candidates(prompts: pd.DataFrame, candidates: pd.DataFrame, config: PipelineConfig,
                     logger: logging.Logger | None = None) -> pd.DataFrame:
    """One row per (comparison, order, judge). Transport failures are rows with ``error`` set."""
    logger = logger or logging.getLogger("pref_pipeline")
    tasks = plan_comparisons(prompts, candidates)
    rows, usage = asyncio.run(_judge_all(tasks, config, logger)) if tasks else ([], None)
    frame = pd.DataFrame(rows, columns=JUDGMENT_COLUMNS)
    if usage is not None:
        frame.attrs[USAGE_ATTR] = usage  # for the asset's metadata (accounting.usage_metadata)
    check_failures([e for e in frame["error"] if e], len(frame), config.max_failure_rate, "judge calls")
    return frame
