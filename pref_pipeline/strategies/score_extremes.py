"""``score_extremes``: high-score vs low-score responses (the seeds' "high-score vs low-score").

Candidates are sampled as ``sampling`` samples them (spread over the generators), then every judge
with ``type: pointwise`` scores each one 1-10 against its rubric; a candidate's score is the mean of
those judges' scores (kept per judge in ``pointwise_scores``). Per prompt the highest-scored candidate
is chosen over the lowest when they are at least ``min_margin`` points apart; the label comes from
the scores (``expected``), so no pairwise judge is asked (``judged=False``; the pair's label source
is ``construction``). A prompt whose scores are tied (or closer than the margin), or with fewer than
two scored candidates, gives no pair: a no-pair entry with reason ``score_tie`` and why, which the
quarantine keeps.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Annotated, Any, Literal

import pandas as pd
from pydantic import Field

from pref_pipeline.judging.pointwise import PointwiseJudge, score_rows
from pref_pipeline.judging.prompts import judge_questions
from pref_pipeline.specs import StrategySpec
from pref_pipeline.strategies.base import PlannedComparison, Strategy, no_pair
from pref_pipeline.strategies.calls import candidate
from pref_pipeline.strategies.sampling import ROLE, SamplingStrategy, run_tasks

if TYPE_CHECKING:
    from pref_pipeline.config import PipelineConfig
    from pref_pipeline.providers.client import CallSession


class ScoreExtremesSpec(StrategySpec):
    """Candidates scored 1-10 by the ``type: pointwise`` judges; the highest is chosen over the lowest when they are
    at least ``min_margin`` points apart (otherwise no pair: quarantined)."""

    method: Literal["score_extremes"]
    min_margin: Annotated[float, Field(ge=0.0, le=9.0)] = 2.0
    candidates: Annotated[int, Field(ge=2, le=16)] | None = None  # per prompt; default candidates_per_prompt


class ScoreExtremesStrategy(Strategy):
    spec_class = ScoreExtremesSpec

    @property
    def min_margin(self) -> float:
        return float(self.spec.min_margin)

    asks_judges = False  # the pointwise judges score candidates while they are made; no comparison is judged

    @classmethod
    def config_problem(cls, config: PipelineConfig) -> str | None:
        if not any(j.type == PointwiseJudge.type for j in config.judges):
            return f"{cls.method} needs at least one judge with `type: {PointwiseJudge.type}`"
        return None

    async def generate(self, prompts: pd.DataFrame, session: CallSession) -> list[dict[str, Any]]:
        count = self.spec.candidates or self.config.candidates_per_prompt
        sampler = SamplingStrategy(self.config.model_copy(update={"candidates_per_prompt": count}))
        tasks = sampler.plan(self.prompts_of(prompts))
        outcomes = await run_tasks(tasks, session)
        now = datetime.now(timezone.utc)
        # Ids of its own (a hash of the strategy, its parameters and the ask), so that run beside ``sampling``, whose
        # tasks these are, its candidates are never taken for sampling's.
        rows = [candidate(self.method, self.strategy_params, t.prompt_id, t.index, ROLE, now, ask=t.ask(), outcome=o)
                for t, o in zip(tasks, outcomes)]
        usable = [r for r in rows if r["error"] is None]
        await score_rows(usable, judge_questions(prompts), [PointwiseJudge(spec, session.client(spec))
                                                           for spec in self.config.judges
                                                           if spec.type == PointwiseJudge.type])
        return rows

    def _per_prompt(self, candidates: pd.DataFrame):
        if "pointwise_score" not in candidates:
            candidates = candidates.assign(pointwise_score=None)
        usable = candidates[candidates["error"].isna()].sort_values(["prompt_id", "candidate_index"])
        for prompt_id, group in usable.groupby("prompt_id", sort=False):
            scored = group[group["pointwise_score"].notna()]
            if len(scored) < 2:
                yield prompt_id, None, f"{len(scored)} scored candidate(s); a pair needs two"
                continue
            scores = scored["pointwise_score"].astype(float)
            high, low = scored.loc[scores.idxmax()], scored.loc[scores.idxmin()]
            gap = float(high["pointwise_score"]) - float(low["pointwise_score"])
            if gap == 0 or gap < self.min_margin:
                what = "scores tied" if gap == 0 else "scores too close"
                yield prompt_id, None, f"{what}: highest {high['pointwise_score']:g}, lowest " \
                    f"{low['pointwise_score']:g} (min_margin {self.min_margin:g})"
                continue
            yield prompt_id, PlannedComparison(prompt_id, high["candidate_id"], low["candidate_id"], self.method,
                                               expected="x", judged=False), None

    def comparisons(self, candidates: pd.DataFrame) -> list[PlannedComparison]:
        """Per prompt: highest- vs lowest-scored candidate (x is the chosen one), when ``min_margin`` apart;
        otherwise a no-pair entry with reason ``score_tie``."""
        return [planned if planned is not None else no_pair(prompt_id, self.method, "score_tie", why)
                for prompt_id, planned, why in self._per_prompt(candidates)]
