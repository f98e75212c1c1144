"""``axiomatic``: pairs whose winner is known along one principle, as in axiomatic preference modelling.

The principles ("axioms") a good long-form answer follows are usefulness, relevance, groundedness,
truthfulness and thoroughness; each is a construction that makes a worse copy of, or stand-in for, the
prompt's answer, so the answer is chosen by construction (``label_source: construction``, no judge asked):

- ``relevance``: the prompt's answer over **another prompt's answer** (a hard negative): the answer of the most
  similar other prompt of the batch (``hard_negatives``: Jaccard similarity of the prompts' word 3-shingles, the
  near-duplicate filter's measure, and content words), leaving out prompts the filter would call near duplicates
  (``filters.near_duplicate_prompt_threshold``: their answers may well be right) and answers near-identical to
  this one (``filters.max_response_similarity``). No such other answer: no pair (``no_other_answer``).
- ``thoroughness``: the full answer over a **truncated** one: its first sentences up to ``keep_share`` of its words
  (or its first ``keep_share`` of words when its first sentence is already longer). An answer of fewer than
  ``MIN_TRUNCATE_WORDS`` words: no pair (``answer_too_short``).
- ``groundedness``: the answer over a copy with an **unsupported claim** added (an invented study, statistic or
  consensus); ``truthfulness``: over a copy with a **false claim** added. With ``negatives: rules`` the claim is a
  sentence of ``templates/strategies/axiomatic_claims.json`` put in the middle of the answer; one sentence in a long
  answer leaves a copy the near-identical filter drops (``filters.max_response_similarity``), so up to
  ``MAX_CLAIMS`` are added, spread through it, until the copy is less similar than that. With ``negatives: model``
  the model adds one about the topic (``axiomatic_claim.j2``), and a copy that is the answer unchanged, or no longer
  the answer with something added (word 3-shingle similarity below ``MIN_KEPT_SIMILARITY``, length ratio outside
  [``MIN_LENGTH_RATIO``, ``MAX_LENGTH_RATIO``]), gives no pair (``negative_out_of_bounds``).
- ``usefulness``: a direct answer over a **hedge or refusal** of a safe request: a hedge of
  ``axiomatic_hedges.json`` (rules) or the model's own answer when told to hedge (``axiomatic_hedge_system.j2``;
  one as similar to the answer as ``MAX_HEDGE_SIMILARITY`` is no hedge: ``negative_out_of_bounds``). On a prompt
  whose category is a harm category a refusal may be right: no pair (``harm_category``); an answer that itself
  refuses is no direct answer: no pair (``answer_refuses``).

**The answer** is the prompt's ``reference`` or the strategy's model's answer (``model``, default the first
generator), by ``source``: ``auto`` (the default) takes the reference where the prompt has one and asks the
model elsewhere, ``reference`` only uses references (a prompt without one: ``no_reference``), ``model`` always
asks. A conversation is continued (every turn before the answer); an empty answer gives no pair
(``empty_answer``).

**Each pair names its axiom** in its ``strategy_params`` (``"axiom": "relevance"``, merged into the strategy's
parameters by the planned comparison), and its rejected candidate's ``role`` says what was made (``off_topic``,
``truncated``, ``unsupported_claim``, ``false_claim``, ``hedge``; the chosen one's is ``answer``), so the pair's
``criteria`` reads ``construction: answer over truncated``. Why an axiom gave no pair for a prompt is kept in its
answer's ``notes`` (``no_pair``) until ``comparisons`` turns it into a quarantined no-pair entry.

The axioms are the functions registered with ``@axiom`` below, in the order they are declared (the default
``axioms``); a new axiom is a new function with its role.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Annotated, Any, Literal

import pandas as pd
from pydantic import Field

from pref_pipeline.ids import derived_seed
from pref_pipeline.judging.rules import HARM_CATEGORIES, refuses
from pref_pipeline.metrics import jaccard, response_similarity, shingles, word_count, words
from pref_pipeline.specs import ModelStrategySpec
from pref_pipeline.strategies.base import PlannedComparison, Strategy, no_pair
from pref_pipeline.strategies.calls import (
    REFERENCE_MODEL,
    RULES_MODEL,
    Ask,
    ask_all,
    by_prompt_and_role,
    candidate,
    continuing,
    conversations_of,
    has_text,
    no_reference,
    notes_of,
    placeholder,
    reference_text,
    seed_for,
    sentences,
)
from pref_pipeline.strategies.gold_corruption import MIN_CONTENT_WORD
from pref_pipeline.strategies.templates import data, render

if TYPE_CHECKING:
    from pref_pipeline.conversations import Conversation
    from pref_pipeline.providers.client import CallSession

ANSWER = "answer"  # the chosen candidate's role
MIN_TRUNCATE_WORDS = 8  # a shorter answer is not truncated (thoroughness)
MIN_KEPT_SIMILARITY = 0.3  # a model's copy with a claim added keeps at least this much of the answer
MIN_LENGTH_RATIO, MAX_LENGTH_RATIO = 0.9, 2.0  # ... and its length, in words, relative to the answer
MAX_HEDGE_SIMILARITY = 0.5  # a model's "hedge" this similar to the answer is no hedge
MAX_CLAIMS = 3  # rules add claims to a long answer until the filters would not call the copy near-identical
CLAIMS, HEDGES = "axiomatic_claims.json", "axiomatic_hedges.json"


@dataclass(frozen=True)
class Made:
    """A negative made by rules: its text and what to note about it."""

    text: str
    notes: dict[str, Any]


@dataclass(frozen=True)
class Skip:
    """An axiom that cannot apply to a prompt: the no-pair reason and why."""

    reason: str
    detail: str


@dataclass(frozen=True)
class Context:
    """What an axiom's rule reads: the prompt, its answer, a seed, and the negatives found across the batch."""

    prompt_id: str
    answer: str
    category: str | None
    seed: int
    keep_share: float
    relevance: dict[str, Any]  # prompt id -> its hard negative (see ``hard_negatives``)
    max_similarity: float | None = None  # filters.max_response_similarity: a copy this similar is dropped


AxiomRule = Callable[[Context], "Made | Skip"]


@dataclass(frozen=True)
class Axiom:
    """One axiom: the role of its negative, and how rules make it (``Made``) or why it cannot apply (``Skip``).
    ``by_model``: what the model is asked for under ``negatives: model`` (a claim kind, or a hedge), None: always
    rules."""

    name: str
    role: str
    rule: AxiomRule
    by_model: str | None = None


AXIOMS: dict[str, Axiom] = {}


def axiom(role: str, by_model: str | None = None) -> Callable[[AxiomRule], AxiomRule]:
    """Registers an axiom under its function's name, in the order of definition (the default ``axioms``)."""
    def register(fn: AxiomRule) -> AxiomRule:
        AXIOMS[fn.__name__] = Axiom(fn.__name__, role, fn, by_model)
        return fn
    return register


def _unsafe(category: str | None) -> bool:
    return (category or "").strip().lower() in HARM_CATEGORIES


def usefulness_skip(answer: str, category: str | None) -> Skip | None:
    """Why a hedge may not be worse here: a harm category (refusing may be right), or an answer that refuses."""
    if _unsafe(category):
        return Skip("harm_category", f"category {category!r} is a harm category: a hedge or refusal may be right")
    if refuses(answer):
        return Skip("answer_refuses", "the answer itself declines: it is no direct answer to prefer over a hedge")
    return None


@axiom("hedge", by_model="hedge")
def usefulness(ctx: Context) -> Made | Skip:
    """A hedge or refusal in place of the answer."""
    skip = usefulness_skip(ctx.answer, ctx.category)
    if skip is not None:
        return skip
    hedges = data(HEDGES)
    pick = ctx.seed % len(hedges)
    return Made(hedges[pick], {"hedge": pick})


@axiom("off_topic")
def relevance(ctx: Context) -> Made | Skip:
    """The answer of the most similar other prompt of the batch."""
    found = ctx.relevance.get(ctx.prompt_id)
    if found is None:
        return Skip("no_other_answer", "no other prompt of the batch has an answer that is not near-identical to "
                                       "this one, on a prompt that is not a near duplicate")
    return Made(found["text"], {k: v for k, v in found.items() if k != "text"})


def with_claims(answer: str, claims: list[str]) -> str:
    """The answer with the claims spread through it: one in the middle (after its first sentence when it has one or
    two), two after its first and second thirds, ... (never before its first sentence)."""
    parts = sentences(answer)
    after = [max(1, (i + 1) * len(parts) // (len(claims) + 1)) for i in range(len(claims))]
    out = []
    for index, part in enumerate(parts, start=1):
        out.append(part)
        out += [claim for claim, at in zip(claims, after) if at == index]
    return " ".join(out)


def _claim(kind: str, ctx: Context) -> Made:
    """One claim of ``kind``, or as many more (at most ``MAX_CLAIMS``) as keep the copy under ``max_similarity``."""
    pool = data(CLAIMS)[kind]
    picks = [pool[(ctx.seed + i) % len(pool)] for i in range(min(MAX_CLAIMS, len(pool)))]
    for count in range(1, len(picks) + 1):
        copy = with_claims(ctx.answer, picks[:count])
        similarity = round(response_similarity(ctx.answer, copy), 4)
        if ctx.max_similarity is None or similarity < ctx.max_similarity:
            break
    return Made(copy, {"claims": picks[:count], "similarity": similarity})


@axiom("unsupported_claim", by_model="unsupported")
def groundedness(ctx: Context) -> Made | Skip:
    """The answer with an unsupported claim added."""
    return _claim("unsupported", ctx)


@axiom("false_claim", by_model="false")
def truthfulness(ctx: Context) -> Made | Skip:
    """The answer with a false claim added."""
    return _claim("false", ctx)


def truncated(answer: str, keep_share: float) -> str:
    """The answer's first sentences up to ``keep_share`` of its words; its first words when one sentence is more."""
    limit, kept, used = keep_share * word_count(answer), [], 0
    for part in sentences(answer):
        if used + word_count(part) > limit:
            break
        kept.append(part)
        used += word_count(part)
    if kept:
        return " ".join(kept)
    return " ".join(answer.split()[:max(1, int(limit))])


@axiom("truncated")
def thoroughness(ctx: Context) -> Made | Skip:
    """The answer cut short."""
    total = word_count(ctx.answer)
    if total < MIN_TRUNCATE_WORDS:
        return Skip("answer_too_short", f"{total} words: too short to cut (fewer than {MIN_TRUNCATE_WORDS})")
    cut = truncated(ctx.answer, ctx.keep_share)
    return Made(cut, {"kept_words": word_count(cut), "of_words": total})


def _content(text: str) -> set[str]:
    return {w for w in words(text) if len(w) >= MIN_CONTENT_WORD}


def hard_negatives(texts: dict[str, str], answers: dict[str, tuple[str, dict[str, Any]]],
                   duplicate_at: float, identical_at: float) -> dict[str, dict[str, Any]]:
    """Per prompt id with an answer: the answer of the most similar other prompt of the batch, leaving out its near
    duplicates and answers near-identical to its own. ``answers``: prompt id -> (answer text, answer row).

    Similar: the Jaccard similarity of the prompts' word 3-shingles and content words together (the shingles see
    the phrasing, as the near-duplicate filter does; the words see the topic, which short prompts share in words
    more than in shingles); a seeded order among equals. A near duplicate: word 3-shingle Jaccard (the filter's
    measure, exact here) at ``duplicate_at`` or more; a near-identical answer: ``response_similarity`` at
    ``identical_at`` or more. Exact, over every pair of the batch's prompts."""
    ids = [pid for pid in texts if pid in answers]
    grams = {pid: shingles(words(texts[pid])) for pid in ids}
    features = {pid: grams[pid] | {f"word:{w}" for w in _content(texts[pid])} for pid in ids}
    out: dict[str, dict[str, Any]] = {}
    for pid in ids:
        ranked = []
        for other in ids:
            shingle_similarity = jaccard(grams[pid], grams[other])
            if other == pid or shingle_similarity >= duplicate_at:
                continue
            ranked.append((-jaccard(features[pid], features[other]), derived_seed(pid, other), other,
                           shingle_similarity))
        for minus_similarity, _, other, shingle_similarity in sorted(ranked):
            text, row = answers[other]
            if response_similarity(answers[pid][0], text) >= identical_at:
                continue
            out[pid] = {"text": text, "from_prompt": other, "prompt_similarity": round(-minus_similarity, 4),
                        "shingle_similarity": round(shingle_similarity, 4), "from_candidate": row["candidate_id"],
                        "model": row["generator_model"], "label": row["generator_label"]}
            break
    return out


class AxiomaticSpec(ModelStrategySpec):
    """Axiomatic pairs: the prompt's answer over a copy made worse along one principle (see the module docstring)."""

    method: Literal["axiomatic"]
    axioms: Annotated[list[Literal[tuple(AXIOMS)]], Field(min_length=1)] = Field(  # type: ignore[valid-type]
        default_factory=lambda: list(AXIOMS))
    source: Literal["auto", "reference", "model"] = "auto"  # where the answer comes from
    negatives: Literal["rules", "model"] = "rules"  # who adds the claims and writes the hedge
    keep_share: Annotated[float, Field(ge=0.1, le=0.8)] = 0.5  # thoroughness: the truncated copy's share of words


class AxiomaticStrategy(Strategy):
    spec_class = AxiomaticSpec
    templates = ("axiomatic_claim.j2", "axiomatic_hedge_system.j2", CLAIMS, HEDGES)

    asks_judges = False

    def _axioms(self) -> list[Axiom]:
        return [AXIOMS[name] for name in dict.fromkeys(self.spec.axioms)]

    def _by_model(self, ax: Axiom) -> bool:
        return self.spec.negatives == "model" and ax.by_model is not None

    def _todo(self, prompts: pd.DataFrame) -> list[tuple[str, str, str | None, str | None]]:
        """(prompt id, text, category, reference used as the answer or None: the model answers) of each prompt it
        makes an answer for."""
        refs = prompts["reference"] if "reference" in prompts.columns else [None] * len(prompts)
        out = []
        for pid, text, category, r in zip(prompts["prompt_id"], prompts["prompt"], prompts["category"], refs):
            ref = reference_text(r) if self.spec.source != "model" else None
            if ref is None and self.spec.source == "reference":
                continue  # no_reference (``unpaired``)
            out.append((pid, text, category, ref))
        return out

    def _answer_ask(self, pid: str, conversation: Conversation) -> Ask:
        return continuing(pid, ANSWER, self.model, conversation, seed=seed_for(self.model, pid, self.method, ANSWER))

    def _negative_ask(self, ax: Axiom, pid: str, question: str, answer: str, conversation: Conversation) -> Ask:
        seed = seed_for(self.model, pid, self.method, ax.name)
        if ax.by_model == "hedge":
            return continuing(pid, ax.role, self.model, conversation, seed=seed,
                              system=render("axiomatic_hedge_system.j2"))
        return Ask(pid, ax.role, self.model, render("axiomatic_claim.j2", kind=ax.by_model, question=question,
                                                    answer=answer), seed=seed)

    def _index(self, ax: Axiom) -> int:
        return 1 + list(AXIOMS).index(ax.name)

    async def generate(self, prompts: pd.DataFrame, session: CallSession) -> list[dict[str, Any]]:
        prompts = self.prompts_of(prompts)
        conversations = conversations_of(prompts)
        now, params = datetime.now(timezone.utc), self.strategy_params
        todo = self._todo(prompts)
        asks = [self._answer_ask(pid, conversations[pid]) for pid, _, _, ref in todo if ref is None]
        asked = dict(zip((a.prompt_id for a in asks), zip(asks, await ask_all(asks, session, self.method))))
        answers: dict[str, dict[str, Any]] = {}
        for pid, _, _, ref in todo:
            if ref is not None:
                answers[pid] = candidate(self.method, params, pid, 0, ANSWER, now, text=ref, model=REFERENCE_MODEL,
                                         notes={"source": "reference"})
            else:
                ask, outcome = asked[pid]
                answers[pid] = candidate(self.method, params, pid, 0, ANSWER, now, ask=ask, outcome=outcome,
                                         notes={"source": "model"})
        usable = {pid: row for pid, row in answers.items() if row["error"] is None and has_text(row["text"])}
        texts = dict(zip(prompts["prompt_id"], prompts["prompt"]))
        filters = self.config.filters
        negatives = hard_negatives(texts, {pid: (row["text"], row) for pid, row in usable.items()},
                                   filters.near_duplicate_prompt_threshold or 1.0, filters.max_response_similarity or 1.0) \
            if any(ax.name == "relevance" for ax in self._axioms()) else {}

        rows: list[dict[str, Any]] = []
        model_asks: list[tuple[Axiom, Ask]] = []
        for pid, question, category, _ in todo:
            answer = answers[pid]
            rows.append(answer)
            if pid not in usable:
                continue
            skipped: dict[str, list[str]] = {}
            for ax in self._axioms():
                if self._by_model(ax):
                    skip = usefulness_skip(answer["text"], category) if ax.by_model == "hedge" else None
                    if skip is None:
                        model_asks.append((ax, self._negative_ask(ax, pid, question, answer["text"],
                                                                  conversations[pid])))
                    else:
                        skipped[ax.name] = [skip.reason, skip.detail]
                    continue
                ctx = Context(pid, answer["text"], category, derived_seed(pid, self.method, ax.name),
                              self.spec.keep_share, negatives, filters.max_response_similarity)
                made = ax.rule(ctx)
                if isinstance(made, Skip):
                    skipped[ax.name] = [made.reason, made.detail]
                    continue
                notes = {"axiom": ax.name, "by": "rules", **made.notes}
                if ax.name == "relevance":
                    rows.append(candidate(self.method, params, pid, self._index(ax), ax.role, now, text=made.text,
                                          model=notes.pop("model"), label=notes.pop("label"),
                                          parent_id=notes.pop("from_candidate"), notes=notes))
                else:
                    rows.append(candidate(self.method, params, pid, self._index(ax), ax.role, now, text=made.text,
                                          model=RULES_MODEL, label=f"{RULES_MODEL}:{ax.name}",
                                          parent_id=None if ax.by_model == "hedge" else answer["candidate_id"],
                                          notes=notes))
            if skipped:
                answer["notes"] = json.dumps({**notes_of(answer), "no_pair": skipped}, sort_keys=True,
                                             ensure_ascii=False)

        outcomes = await ask_all([a for _, a in model_asks], session, f"{self.method} negatives")
        for (ax, ask), outcome in zip(model_asks, outcomes):
            answer = answers[ask.prompt_id]
            notes: dict[str, Any] = {"axiom": ax.name, "by": "model"}
            if outcome.error is None:
                notes.update(self._bounds(ax, answer["text"], outcome.value.text))
            rows.append(candidate(self.method, params, ask.prompt_id, self._index(ax), ax.role, now, ask=ask,
                                  outcome=outcome, parent_id=None if ax.by_model == "hedge" else answer["candidate_id"],
                                  notes=notes))
        return rows

    @staticmethod
    def _bounds(ax: Axiom, answer: str, made: str) -> dict[str, Any]:
        """Whether a model's negative is what it was asked for (see the module docstring)."""
        similarity = round(response_similarity(answer, made), 4)
        ratio = round(word_count(made) / max(1, word_count(answer)), 4)
        if ax.by_model == "hedge":
            ok = has_text(made) and similarity < MAX_HEDGE_SIMILARITY
        else:
            ok = (words(made) != words(answer) and similarity >= MIN_KEPT_SIMILARITY
                  and MIN_LENGTH_RATIO <= ratio <= MAX_LENGTH_RATIO)
        return {"similarity": similarity, "length_ratio": ratio, "within_bounds": bool(ok)}

    def comparisons(self, candidates: pd.DataFrame) -> list[PlannedComparison]:
        """Per prompt and axiom: the answer over its negative (x is the chosen), or the no-pair entry its answer's
        notes keep; a negative a model made out of bounds: ``negative_out_of_bounds``."""
        out = []
        for prompt_id, roles in by_prompt_and_role(candidates).items():
            answer = roles.get(ANSWER)
            if answer is None:
                continue
            if not has_text(answer["text"]):
                out.append(no_pair(prompt_id, self.method, "empty_answer", "the answer is empty: nothing to prefer",
                                   answer["candidate_id"]))
                continue
            skipped = notes_of(answer).get("no_pair", {})
            for ax in self._axioms():
                negative = roles.get(ax.role)
                if negative is None:
                    if ax.name in skipped:  # else a failed call: quarantined as generation_error
                        out.append(no_pair(prompt_id, self.method, *skipped[ax.name], answer["candidate_id"]))
                    continue
                notes = notes_of(negative)
                if not notes.get("within_bounds", True) or not has_text(negative["text"]):
                    out.append(no_pair(prompt_id, self.method, "negative_out_of_bounds",
                                       f"{ax.name}: the model's {ax.role} is not what was asked for (similarity to "
                                       f"the answer {notes.get('similarity')}, length ratio {notes.get('length_ratio')})",
                                       answer["candidate_id"], negative["candidate_id"]))
                    continue
                out.append(PlannedComparison(prompt_id, answer["candidate_id"], negative["candidate_id"], self.method,
                                             expected="x", judged=False, params={"axiom": ax.name}))
        return out

    def unpaired(self, prompts: pd.DataFrame) -> list[PlannedComparison]:
        """With ``source: reference``, the prompts without one: no pair (``no_reference``)."""
        return no_reference(self.prompts_of(prompts), self.method) if self.spec.source == "reference" else []

    def estimate_calls(self, prompts: pd.DataFrame) -> list[tuple[Any, Any]]:
        """The model's answers and, with ``negatives: model``, its claims (on a ``max_tokens``-long stand-in for an
        answer it has yet to write) and hedges (an upper bound: every prompt counted)."""
        prompts = self.prompts_of(prompts)
        conversations = conversations_of(prompts)
        asks: list[Ask] = []
        for pid, question, category, ref in self._todo(prompts):
            if ref is None:
                asks.append(self._answer_ask(pid, conversations[pid]))
            for ax in self._axioms():
                if self._by_model(ax) and not (ax.by_model == "hedge" and _unsafe(category)):
                    asks.append(self._negative_ask(ax, pid, question, ref if ref is not None else placeholder(
                        self.model), conversations[pid]))
        return [(a.spec, a.request()) for a in asks]
