"""``best_of_n``: best-of-N by a scorer, as ALMoST's reward-model-guided self-play (RMSP) picks its demonstrations.

N answers per prompt are sampled as ``sampling`` samples them (answer ``i`` from generator ``i mod
len(generators)``, its seed derived from the prompt and ``i``), then scored, and the best one is chosen over the
worst and/or over a random other one (``pair_with``). The scorer (``scorer``) is

- ``pointwise``: every ``type: pointwise`` judge scores each answer 1-10 against its rubric; an answer's score is
  the mean of those judges' scores (kept per judge in ``pointwise_scores``, by judge fingerprint);
- a rule with a score of its own for one answer (``SCORERS`` below): ``reference_match`` (word-overlap F1 with
  the prompt's ``reference``, 0-1, as the ``reference_match`` rule judge computes it; a prompt without a
  reference gives no pair, ``no_reference``), ``no_refusal_of_safe_requests`` (1 for an answer, 0 for a refusal,
  on a prompt whose category is not a harm category; no score on one that is). No call is made.

The scores are kept on the candidates (``pointwise_score``, ``pointwise_scores``) and, with the pair, in its
``strategy_params`` (``pair_with``, ``chosen_score``, ``rejected_score``). The label comes from the scores
(``expected``), so no judge compares the pair (``label_source: construction``). A pair needs the two scores at
least ``min_margin`` apart (default by scorer, ``DEFAULT_MARGIN``); a tie or a smaller gap gives no pair
(``score_tie``), fewer than two scored answers (or no third one for ``random`` beside ``worst``) none either
(``too_few_scored``), both quarantined with the scores in their detail.

Who is who is decided by the scores alone (``select``), by ``generate`` (which labels the roles ``best``,
``worst``, ``random``, ``sample``) and by ``comparisons`` alike: the best is the highest score (the lowest
candidate index among equals), the worst the lowest of the others (the highest index among equals), the random
one drawn, with a seed derived from the prompt, from the others that are neither.

Its candidates have ids of their own (a hash of the strategy, its parameters and the ask), so beside
``sampling`` or ``score_extremes``, which ask the same requests (and share their cached answers), they are never
taken for theirs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Annotated, Any, Literal

import pandas as pd
from pydantic import Field, model_validator

from pref_pipeline.ids import derived_seed
from pref_pipeline.judging.pointwise import PointwiseJudge, ScoreItem, score_rows
from pref_pipeline.judging.prompts import judge_questions
from pref_pipeline.judging.rules import HARM_CATEGORIES, MIN_F1_GAP, _f1, refuses
from pref_pipeline.providers.base import RequestBuilder
from pref_pipeline.specs import StrategySpec
from pref_pipeline.strategies.base import PlannedComparison, Strategy, no_pair
from pref_pipeline.strategies.calls import candidate, has_text, no_reference, placeholder, reference_text
from pref_pipeline.strategies.sampling import ROLE, SamplingStrategy, run_tasks

if TYPE_CHECKING:
    from pref_pipeline.config import PipelineConfig
    from pref_pipeline.providers.client import CallSession

POINTWISE = "pointwise"
PAIR_WITH = ("worst", "random")
TIE, TOO_FEW = "score_tie", "too_few_scored"  # no-pair reasons

# A rule's score of one answer: (the answer, the prompt's category, its reference) -> a score, or None where the
# rule has nothing to say (no reference, a harm category).
RuleScore = Callable[[str, "str | None", "str | None"], "float | None"]
SCORERS: dict[str, RuleScore] = {}


def scorer(fn: RuleScore) -> RuleScore:
    """Registers a rule's per-answer score under the rule's name (what ``scorer:`` accepts besides ``pointwise``)."""
    SCORERS[fn.__name__] = fn
    return fn


@scorer
def reference_match(text: str, category: str | None, reference: str | None) -> float | None:
    """Word-overlap F1 with the prompt's reference (0-1), the ``reference_match`` rule's measure."""
    return round(_f1(text, reference), 4) if reference else None


@scorer
def no_refusal_of_safe_requests(text: str, category: str | None, reference: str | None) -> float | None:
    """1 for an answer, 0 for a refusal, on a safe request (a category that is not a harm category)."""
    if (category or "").strip().lower() in HARM_CATEGORIES:
        return None
    return 0.0 if refuses(text) else 1.0


# The smallest gap that makes a pair when ``min_margin`` is unset, by scorer (its scale).
DEFAULT_MARGIN = {POINTWISE: 2.0, "reference_match": MIN_F1_GAP, "no_refusal_of_safe_requests": 1.0}

PairWith = Literal[PAIR_WITH]  # type: ignore[valid-type]


class BestOfNSpec(StrategySpec):
    """N sampled answers scored by the pointwise judges or a rule; the best is chosen over the worst and/or a random
    other one (when the scores are at least ``min_margin`` apart; otherwise no pair: quarantined)."""

    method: Literal["best_of_n"]
    n: Annotated[int, Field(ge=2, le=32)] = 4  # answers sampled per prompt
    scorer: Literal[(POINTWISE, *SCORERS)] = POINTWISE  # type: ignore[valid-type]
    pair_with: PairWith | Annotated[list[PairWith], Field(min_length=1, max_length=2)] = "worst"
    min_margin: Annotated[float, Field(ge=0.0, le=9.0)] | None = None  # unset: DEFAULT_MARGIN[scorer]

    @model_validator(mode="after")
    def _kinds_make_sense(self) -> BestOfNSpec:
        kinds = self.kinds
        if len(set(kinds)) != len(kinds):
            raise ValueError(f"pair_with: {kinds} names a kind twice")
        if len(kinds) == 2 and self.n < 3:
            raise ValueError("pair_with: [worst, random] needs n of at least 3 (best, worst and another one)")
        return self

    @property
    def kinds(self) -> list[str]:
        """``pair_with`` as a list, in the order given."""
        return [self.pair_with] if isinstance(self.pair_with, str) else list(self.pair_with)


def select(group: pd.DataFrame, kinds: list[str], seed: int) -> dict[str, dict[str, Any]]:
    """From one prompt's scored candidates (``pointwise_score`` set), who is ``best`` and, per ``kinds``, ``worst`` and
    ``random`` (see the module docstring); {} when fewer than two are scored."""
    scored = group[group["pointwise_score"].notna()].sort_values("candidate_index")
    rows = scored.to_dict("records")
    if len(rows) < 2:
        return {}
    best = max(rows, key=lambda r: (float(r["pointwise_score"]), -int(r["candidate_index"])))
    others = [r for r in rows if r["candidate_id"] != best["candidate_id"]]
    out = {"best": best}
    if "worst" in kinds:
        out["worst"] = min(others, key=lambda r: (float(r["pointwise_score"]), -int(r["candidate_index"])))
        others = [r for r in others if r["candidate_id"] != out["worst"]["candidate_id"]]
    if "random" in kinds and others:
        out["random"] = others[seed % len(others)]
    return out


class BestOfNStrategy(Strategy):
    spec_class = BestOfNSpec

    asks_judges = False  # the scorer scores answers while they are made; no comparison is judged

    @classmethod
    def config_problem(cls, config: PipelineConfig) -> str | None:
        needs_judge = any(s.method == cls.method and s.scorer == POINTWISE for s in config.strategies)
        if needs_judge and not any(j.type == PointwiseJudge.type for j in config.judges):
            return (f"{cls.method} with `scorer: {POINTWISE}` needs at least one judge with `type: "
                    f"{PointwiseJudge.type}` (or name a rule: `scorer: {' | '.join(SCORERS)}`)")
        return None

    @property
    def min_margin(self) -> float:
        margin = self.spec.min_margin
        return float(margin if margin is not None else DEFAULT_MARGIN[self.spec.scorer])

    @property
    def by_rule(self) -> bool:
        return self.spec.scorer != POINTWISE

    def _prompts(self, prompts: pd.DataFrame) -> pd.DataFrame:
        """The prompts it samples for: its prompts, those with a reference when the scorer needs one."""
        prompts = self.prompts_of(prompts)
        if self.spec.scorer != "reference_match":
            return prompts
        refs = prompts["reference"] if "reference" in prompts.columns else pd.Series([None] * len(prompts))
        return prompts[[reference_text(r) is not None for r in refs]]

    def _tasks(self, prompts: pd.DataFrame):
        sampler = SamplingStrategy(self.config.model_copy(update={"candidates_per_prompt": self.spec.n}))
        return sampler.plan(self._prompts(prompts))

    def _judges(self, session: CallSession | None = None) -> list[PointwiseJudge]:
        """The pointwise judges that score (none with a rule scorer); without a session, for building requests only."""
        if self.by_rule:
            return []
        return [PointwiseJudge(spec, session.client(spec) if session is not None else RequestBuilder(spec))  # type: ignore[arg-type]
                for spec in self.config.judges if spec.type == PointwiseJudge.type]

    async def generate(self, prompts: pd.DataFrame, session: CallSession) -> list[dict[str, Any]]:
        tasks = self._tasks(prompts)
        outcomes = await run_tasks(tasks, session)
        now, params = datetime.now(timezone.utc), self.strategy_params
        rows = [candidate(self.method, params, t.prompt_id, t.index, ROLE, now, ask=t.ask(), outcome=o)
                for t, o in zip(tasks, outcomes)]
        usable = [r for r in rows if r["error"] is None and has_text(r["text"])]
        if self.by_rule:
            self._score_by_rule(usable, prompts)
        else:
            await self._score_by_judges(usable, prompts, session)
        self._label_roles(rows)
        return rows

    async def _score_by_judges(self, usable: list[dict[str, Any]], prompts: pd.DataFrame,
                               session: CallSession) -> None:
        await score_rows(usable, judge_questions(prompts), self._judges(session))

    def _score_by_rule(self, usable: list[dict[str, Any]], prompts: pd.DataFrame) -> None:
        rule = SCORERS[self.spec.scorer]
        refs = prompts["reference"] if "reference" in prompts.columns else [None] * len(prompts)
        about = {pid: (category, reference_text(ref)) for pid, category, ref in
                 zip(prompts["prompt_id"], prompts["category"], refs)}
        for row in usable:
            score = rule(row["text"], *about[row["prompt_id"]])
            row["pointwise_scores"] = json.dumps({f"rule:{self.spec.scorer}": score})
            row["pointwise_score"] = score

    def _label_roles(self, rows: list[dict[str, Any]]) -> None:
        """``best``, ``worst``, ``random`` by the scores (as ``comparisons`` picks them), ``sample`` the rest."""
        frame = pd.DataFrame(rows, columns=["candidate_id", "prompt_id", "candidate_index", "pointwise_score"])
        picked: dict[str, str] = {}
        for prompt_id, group in frame.groupby("prompt_id", sort=False):
            for role, row in select(group, self.spec.kinds, self._seed(prompt_id)).items():
                picked[row["candidate_id"]] = role
        for row in rows:
            row["role"] = picked.get(row["candidate_id"], ROLE)

    def _seed(self, prompt_id: str) -> int:
        return derived_seed(prompt_id, self.method, "random")

    def comparisons(self, candidates: pd.DataFrame) -> list[PlannedComparison]:
        """Per prompt and ``pair_with`` kind: the best over the worst / a random other one (x is the chosen), when
        ``min_margin`` apart; otherwise a no-pair entry (``score_tie``, ``too_few_scored``)."""
        if "pointwise_score" not in candidates:
            candidates = candidates.assign(pointwise_score=None)
        usable = candidates[candidates["error"].isna()].sort_values(["prompt_id", "candidate_index"])
        out: list[PlannedComparison] = []
        for prompt_id, group in usable.groupby("prompt_id", sort=False):
            picked = select(group, self.spec.kinds, self._seed(prompt_id))
            scored = int(group["pointwise_score"].notna().sum())
            if not picked:
                why = f" ({self.spec.scorer} gives these answers no score)" if self.by_rule and not scored else ""
                out.append(no_pair(prompt_id, self.method, TOO_FEW,
                                   f"{scored} scored answer(s) of {len(group)}; a pair needs two{why}"))
                continue
            best = picked["best"]
            for kind in self.spec.kinds:
                other = picked.get(kind)
                if other is None:
                    out.append(no_pair(prompt_id, self.method, TOO_FEW, f"{scored} scored answer(s): none left to draw "
                                       f"at random besides the best and the worst", best["candidate_id"]))
                    continue
                high, low = float(best["pointwise_score"]), float(other["pointwise_score"])
                if high - low == 0 or high - low < self.min_margin:
                    what = "scores tied" if high == low else "scores too close"
                    out.append(no_pair(prompt_id, self.method, TIE, f"{what}: best {high:g}, {kind} {low:g} "
                                       f"(min_margin {self.min_margin:g}, scorer {self.spec.scorer})",
                                       best["candidate_id"], other["candidate_id"]))
                    continue
                out.append(PlannedComparison(prompt_id, best["candidate_id"], other["candidate_id"], self.method,
                                             expected="x", judged=False,
                                             params={"pair_with": kind, "chosen_score": high, "rejected_score": low}))
        return out

    def unpaired(self, prompts: pd.DataFrame) -> list[PlannedComparison]:
        """With ``scorer: reference_match``, the prompts without a reference: no answer is sampled for them."""
        if self.spec.scorer != "reference_match":
            return []
        return no_reference(self.prompts_of(prompts), self.method)

    def estimate_calls(self, prompts: pd.DataFrame) -> list[tuple[Any, Any]]:
        """The N samples per prompt and, with ``scorer: pointwise``, each pointwise judge's score of each (its
        answer a ``max_tokens``-long stand-in)."""
        tasks = self._tasks(prompts)
        calls: list[tuple[Any, Any]] = [(t.generator, t.ask().request()) for t in tasks]
        questions = judge_questions(prompts)
        for judge in self._judges():
            calls += [(judge.spec, judge.base_request(ScoreItem(questions[t.prompt_id], placeholder(t.generator),
                                                                derived_seed(t.prompt_id, t.index, "score"))))
                      for t in tasks]
        return calls
