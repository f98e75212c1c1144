"""``gold_corruption`` (AutoPM in-depth): the prompt's ``reference`` is chosen over a subtly flawed copy.

AutoPM's in-depth generation post-edits a good response with deletion, substitution and insertion, so
the edited copy is worse by construction. Here the good response is the prompt's reference answer, and
each prompt's copy gets one edit (the kind picked per prompt from ``edits``):

- with a ``model``, an LLM makes the edit (``gold_corruption_edit.j2``); the copy must stay within
  bounds: word 3-shingle similarity to the reference (``filters.response_similarity``) in
  [``min_similarity``, ``max_similarity``) and length ratio (words) in [``min_length_ratio``,
  ``max_length_ratio``], so it is neither identical, nor a different text, nor nonsense; outside them,
  no pair (``corruption_out_of_bounds``);
- with ``model: none``, rules make it, no LLM at all: ``delete`` drops the sentence most relevant to
  the prompt (most shared content words), ``substitute`` replaces it with a sentence of another
  prompt's reference, ``insert`` adds an unrelated sentence in the middle. When an edit cannot apply
  (one sentence to delete from) or leaves the bounds above, the next kind is tried.

The edit kinds are the functions registered with ``@rule_edit`` below (a new kind is a new function, and a
branch of ``gold_corruption_edit.j2`` for the LLM's instructions); ``edits`` accepts exactly those.

A prompt without a reference gives no pair (``no_reference``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime, timezone
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Annotated, Any, Literal

import pandas as pd
from pydantic import Field, field_validator

from pref_pipeline.ids import derived_seed
from pref_pipeline.metrics import response_similarity, word_count, words
from pref_pipeline.specs import GeneratorSpec, StrategySpec
from pref_pipeline.strategies.base import PlannedComparison, Strategy, no_pair
from pref_pipeline.strategies.calls import (
    REFERENCE_MODEL,
    RULES_MODEL,
    Ask,
    ask_all,
    by_prompt_and_role,
    candidate,
    has_text,
    notes_of,
    seed_for,
)
from pref_pipeline.strategies.templates import data, render

if TYPE_CHECKING:
    from pref_pipeline.providers.client import CallSession

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
MIN_CONTENT_WORD = 4  # words shorter than this do not count towards a sentence's relevance


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]


def relevance(sentence: str, prompt: str) -> int:
    """Content words the sentence shares with the prompt."""
    prompt_words = {w for w in words(prompt) if len(w) >= MIN_CONTENT_WORD}
    return len({w for w in words(sentence) if len(w) >= MIN_CONTENT_WORD} & prompt_words)


def most_relevant(parts: list[str], prompt: str) -> int:
    scores = [relevance(s, prompt) for s in parts]
    return scores.index(max(scores))


@cache
def builtin_references() -> tuple[str, ...]:
    """The built-in prompt set's references: the pool ``substitute`` draws from when the batch has no other."""
    text = resources.files("pref_pipeline").joinpath("data/default_prompts.jsonl").read_text(encoding="utf-8")
    return tuple(r["reference"] for r in map(json.loads, text.splitlines()) if r.get("reference"))


# An edit made by rules: (the reference's sentences, the prompt, other references, a seed) -> the edited
# sentences, or None when it cannot apply.
RuleEdit = Callable[[list[str], str, list[str], int], "list[str] | None"]
EDITS: dict[str, RuleEdit] = {}


def rule_edit(edit: RuleEdit) -> RuleEdit:
    """Registers an edit kind under its function's name, in the order of definition (the default ``edits``)."""
    EDITS[edit.__name__] = edit
    return edit


@rule_edit
def delete(parts: list[str], prompt: str, others: list[str], seed: int) -> list[str] | None:
    """Drop the sentence most relevant to the prompt."""
    if len(parts) < 2:
        return None
    del parts[most_relevant(parts, prompt)]
    return parts


@rule_edit
def substitute(parts: list[str], prompt: str, others: list[str], seed: int) -> list[str] | None:
    """Replace the most relevant sentence with a sentence of another prompt's reference."""
    pool = [s for other in others for s in sentences(other) if s not in parts]
    if not pool:
        return None
    parts[most_relevant(parts, prompt)] = pool[seed % len(pool)]
    return parts


@rule_edit
def insert(parts: list[str], prompt: str, others: list[str], seed: int) -> list[str] | None:
    """Add an unrelated sentence in the middle."""
    unrelated = data("unrelated_sentences.json")
    parts.insert(max(1, len(parts) // 2), unrelated[seed % len(unrelated)])
    return parts


def edited_by_rules(kind: str, reference: str, prompt: str, others: list[str], seed: int) -> str | None:
    """The reference with one edit of ``kind`` made by rules; None when it cannot apply."""
    parts = sentences(reference)
    edited = EDITS[kind](parts, prompt, others, seed) if parts else None
    return " ".join(edited) if edited is not None else None


def bounds(reference: str, copy: str, spec: Any) -> dict[str, Any]:
    """How far the copy is from the reference, and whether that is within the configured bounds."""
    similarity = round(response_similarity(reference, copy), 4)
    ratio = round(word_count(copy) / max(1, word_count(reference)), 4)
    ok = (spec.min_similarity <= similarity < spec.max_similarity
          and spec.min_length_ratio <= ratio <= spec.max_length_ratio)
    return {"similarity": similarity, "length_ratio": ratio, "within_bounds": bool(ok)}


def _reference(value: object) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


class GoldCorruptionSpec(StrategySpec):
    """AutoPM in-depth: the prompt's ``reference`` is chosen over a subtly corrupted copy of it."""

    method: Literal["gold_corruption"]
    model: GeneratorSpec | Literal["none"] | None = None  # "none": the edits are made by rules, no LLM
    edits: Annotated[list[Literal[tuple(EDITS)]], Field(min_length=1)] = Field(  # type: ignore[valid-type]
        default_factory=lambda: list(EDITS))
    # Bounds on an LLM-edited copy (word 3-shingle Jaccard similarity to the reference, and length ratio in
    # words): not identical, not a different text, not nonsense. Outside them: no pair, quarantined.
    min_similarity: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.2
    max_similarity: Annotated[float, Field(gt=0.0, le=1.0)] = 0.9
    min_length_ratio: Annotated[float, Field(gt=0.0, le=1.0)] = 0.5
    max_length_ratio: Annotated[float, Field(ge=1.0)] = 1.5

    @field_validator("model", mode="before")
    @classmethod
    def _none_spelled_any_case(cls, value: Any) -> Any:
        return "none" if isinstance(value, str) and value.strip().lower() == "none" else value


class GoldCorruptionStrategy(Strategy):
    spec_class = GoldCorruptionSpec
    templates = ("gold_corruption_edit.j2", "unrelated_sentences.json")

    asks_judges = False

    @property
    def by_rules(self) -> bool:
        return self.spec.model == "none"

    def edit_kind(self, prompt_id: str) -> list[str]:
        """The edits to try for a prompt: the one picked for it first, then the others in order."""
        kinds = list(self.spec.edits)
        start = derived_seed(prompt_id, self.method, "edit") % len(kinds)
        return kinds[start:] + kinds[:start]

    def _ask(self, prompt_id: str, question: str, reference: str, kind: str) -> Ask:
        return Ask(prompt_id, "corrupted", self.model,
                   render("gold_corruption_edit.j2", edit=kind, question=question, reference=reference),
                   seed=seed_for(self.model, prompt_id, self.method, kind))

    def _with_reference(self, prompts: pd.DataFrame) -> list[tuple[str, str, str]]:
        refs = prompts["reference"] if "reference" in prompts.columns else [None] * len(prompts)
        return [(pid, q, ref) for pid, q, r in zip(prompts["prompt_id"], prompts["prompt"], refs)
                if (ref := _reference(r)) is not None]

    async def generate(self, prompts: pd.DataFrame, session: CallSession) -> list[dict[str, Any]]:
        batch, prompts = prompts, self.prompts_of(prompts)
        now, params = datetime.now(timezone.utc), self.strategy_params
        rows: list[dict[str, Any]] = []
        todo = self._with_reference(prompts)
        golds = {}
        for pid, _, ref in todo:
            golds[pid] = candidate(self.method, params, pid, 0, "gold", now, text=ref, model=REFERENCE_MODEL)
            rows.append(golds[pid])
        if self.by_rules:
            all_refs = {pid: ref for pid, _, ref in self._with_reference(batch)}
            for pid, question, ref in todo:
                others = [r for p, r in all_refs.items() if p != pid] or [r for r in builtin_references() if r != ref]
                seed = derived_seed(pid, self.method, "rule")
                made = []  # (kind, copy, bounds): the first edit within bounds is used, else the first that applied
                for kind in self.edit_kind(pid):
                    copy = edited_by_rules(kind, ref, question, others, seed)
                    if copy is not None:
                        made.append((kind, copy, bounds(ref, copy, self.spec)))
                        if made[-1][2]["within_bounds"]:
                            break
                if made:
                    kind, copy, within = next((m for m in made if m[2]["within_bounds"]), made[0])
                    rows.append(candidate(self.method, params, pid, 1, "corrupted", now, text=copy,
                                          model=RULES_MODEL, label=f"{RULES_MODEL}:{kind}",
                                          parent_id=golds[pid]["candidate_id"],
                                          notes={"edit": kind, "by": "rules", **within}))
            return rows
        asks = [self._ask(pid, question, ref, self.edit_kind(pid)[0]) for pid, question, ref in todo]
        references = {pid: ref for pid, _, ref in todo}
        for ask, outcome, kind in zip(asks, await ask_all(asks, session, self.method),
                                      [self.edit_kind(pid)[0] for pid, _, _ in todo]):
            notes: dict[str, Any] = {"edit": kind, "by": "llm"}
            if outcome.error is None:
                notes.update(bounds(references[ask.prompt_id], outcome.value.text, self.spec))
            rows.append(candidate(self.method, params, ask.prompt_id, 1, "corrupted", now, ask=ask, outcome=outcome,
                                  parent_id=golds[ask.prompt_id]["candidate_id"], notes=notes))
        return rows

    def comparisons(self, candidates: pd.DataFrame) -> list[PlannedComparison]:
        """Gold over its corrupted copy; the batch's prompts without a reference are listed by ``unpaired``."""
        out = []
        for prompt_id, roles in by_prompt_and_role(candidates).items():
            gold, copy = roles.get("gold"), roles.get("corrupted")
            if gold is None:
                continue
            if copy is None:
                if not (len(candidates) and ((candidates["prompt_id"] == prompt_id) & candidates["error"].notna()).any()):
                    out.append(no_pair(prompt_id, self.method, "edit_impossible",
                                       f"none of the edits {list(self.spec.edits)} applies to this reference",
                                       gold["candidate_id"]))
                continue
            notes = notes_of(copy)
            if not notes.get("within_bounds", False) or not has_text(copy["text"]):
                out.append(no_pair(prompt_id, self.method, "corruption_out_of_bounds",
                                   f"edited copy out of bounds: similarity {notes.get('similarity')} (allowed "
                                   f"[{self.spec.min_similarity}, {self.spec.max_similarity})), length ratio "
                                   f"{notes.get('length_ratio')} (allowed [{self.spec.min_length_ratio}, "
                                   f"{self.spec.max_length_ratio}])", gold["candidate_id"], copy["candidate_id"]))
                continue
            out.append(PlannedComparison(prompt_id, gold["candidate_id"], copy["candidate_id"], self.method,
                                         expected="x", judged=False))
        return out

    def unpaired(self, prompts: pd.DataFrame) -> list[PlannedComparison]:
        """The prompts it runs on that have no reference: no pair, quarantined as ``no_reference``."""
        return no_reference(self.prompts_of(prompts), self.method)

    def estimate_calls(self, prompts: pd.DataFrame) -> list[tuple[Any, Any]]:
        if self.by_rules:
            return []
        return [(a.spec, a.request()) for a in (self._ask(pid, q, ref, self.edit_kind(pid)[0])
                                                 for pid, q, ref in self._with_reference(self.prompts_of(prompts)))]


def no_reference(prompts: pd.DataFrame, method: str) -> list[PlannedComparison]:
    refs = prompts["reference"] if "reference" in prompts.columns else [None] * len(prompts)
    return [no_pair(pid, method, "no_reference", "the prompt has no reference answer: nothing is right by construction")
            for pid, r in zip(prompts["prompt_id"], refs) if _reference(r) is None]
