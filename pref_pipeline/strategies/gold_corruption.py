"""``gold_corruption`` (AutoPM in-depth): a good response is chosen over subtly flawed copies of it.

AutoPM's in-depth generation is "a sequential post-editing process, applying edit actions (like deletion,
substitution, insertion) … to vary their quality": the edited copies are worse by construction, and the more
edits, the worse. The good response (the *source*) is the prompt's reference answer (``source: reference``,
the default), or a model's answer to the prompt (``source: model``: ``model`` answers, or with ``model: none``
the first of ``generators``). From it grows a chain of ``steps`` copies, each one edit away from the one
before (the kind picked per prompt from ``edits``, rotating along the chain):

- with a ``model``, an LLM makes each edit (``gold_corruption_edit.j2``); each copy must stay within bounds
  *of its predecessor*: word 3-shingle similarity (``filters.response_similarity``) in
  [``min_similarity``, ``max_similarity``) and length ratio (words) in [``min_length_ratio``,
  ``max_length_ratio``], so it is neither identical, nor a different text, nor nonsense;
- with ``model: none``, rules make it, no LLM at all: ``delete`` drops the sentence most relevant to
  the prompt (most shared content words), ``substitute`` replaces it with a sentence of another
  prompt's source, ``insert`` adds an unrelated sentence in the middle. When an edit cannot apply
  (one sentence to delete from) or leaves the bounds above, the next kind is tried.

Every two links of the chain make a pair, fewer edits chosen over more and the source over all (``steps: 3``:
6 pairs a prompt); a chain's pairs add their ``edit_distance`` to the pair's ``strategy_params``. A copy out of
bounds ends the chain there (no pair with it, ``corruption_out_of_bounds`` quarantined with its step; the
earlier links keep their pairs), as does a step no edit applies to (``edit_impossible``). Each copy's ``notes``
hold its ``step`` and its ``history``: every edit from the source to it, with the bounds of each step.
``steps: 1`` (the default) is one copy, one pair.

The edit kinds are the functions registered with ``@rule_edit`` below (a new kind is a new function, and a
branch of ``gold_corruption_edit.j2`` for the LLM's instructions); ``edits`` accepts exactly those.

A prompt without a reference gives no pair with ``source: reference`` (``no_reference``).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
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
from pref_pipeline.strategies.templates import data, render

if TYPE_CHECKING:
    from pref_pipeline.providers.client import CallSession

MIN_CONTENT_WORD = 4  # words shorter than this do not count towards a sentence's relevance


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


FIRST_COPY = "corrupted"  # role of the copy one edit away (and, with ``steps: 1``, the only one)
SOURCES = {"reference": "gold", "model": "answer"}  # role of the chain's source, by ``source``
DEFAULT_STEPS, DEFAULT_SOURCE = 1, "reference"


def copy_role(step: int) -> str:
    """The role of the copy ``step`` edits away from the source: ``corrupted``, ``corrupted_2``, ..."""
    return FIRST_COPY if step == 1 else f"{FIRST_COPY}_{step}"


class GoldCorruptionSpec(StrategySpec):
    """AutoPM in-depth: a good response (the reference, or a model's answer) is chosen over subtly corrupted copies."""

    method: Literal["gold_corruption"]
    model: GeneratorSpec | Literal["none"] | None = None  # "none": the edits are made by rules, no LLM
    edits: Annotated[list[Literal[tuple(EDITS)]], Field(min_length=1)] = Field(  # type: ignore[valid-type]
        default_factory=lambda: list(EDITS))
    # Bounds on an edited copy against its predecessor (word 3-shingle Jaccard similarity, and length ratio in
    # words): not identical, not a different text, not nonsense. Outside them: the chain ends, quarantined.
    min_similarity: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.2
    max_similarity: Annotated[float, Field(gt=0.0, le=1.0)] = 0.9
    min_length_ratio: Annotated[float, Field(gt=0.0, le=1.0)] = 0.5
    max_length_ratio: Annotated[float, Field(ge=1.0)] = 1.5
    # Copies in the chain, each one edit further from the source; pairs at every gap. Left out of
    # ``strategy_params`` at their defaults, so today's configurations keep their identity.
    steps: Annotated[int, Field(ge=1, le=8, exclude_if=lambda v: v == DEFAULT_STEPS)] = DEFAULT_STEPS
    # What the chain starts from: the prompt's ``reference``, or a ``model``'s answer to the prompt.
    source: Annotated[Literal["reference", "model"],
                      Field(exclude_if=lambda v: v == DEFAULT_SOURCE)] = DEFAULT_SOURCE

    @field_validator("model", mode="before")
    @classmethod
    def _none_spelled_any_case(cls, value: Any) -> Any:
        return "none" if isinstance(value, str) and value.strip().lower() == "none" else value


@dataclass
class Link:
    """The newest copy of a prompt's chain still within bounds: what the next step edits."""

    question: str
    candidate_id: str
    text: str
    history: list[dict[str, Any]]


class GoldCorruptionStrategy(Strategy):
    spec_class = GoldCorruptionSpec
    templates = ("gold_corruption_edit.j2", "unrelated_sentences.json")

    asks_judges = False

    @property
    def by_rules(self) -> bool:
        return self.spec.model == "none"

    @property
    def source_role(self) -> str:
        return SOURCES[self.spec.source]

    def edit_kind(self, prompt_id: str, step: int = 1) -> list[str]:
        """The edits to try for a prompt's ``step``: the one picked for it first, then the others in order (the
        pick rotates along the chain, so its steps vary the edit)."""
        kinds = list(self.spec.edits)
        start = (derived_seed(prompt_id, self.method, "edit") + step - 1) % len(kinds)
        return kinds[start:] + kinds[:start]

    def _ask(self, prompt_id: str, question: str, text: str, kind: str, step: int = 1) -> Ask:
        """The LLM edit of ``step``: ``kind`` applied to ``text`` (the source, or the copy before)."""
        seed_parts = (prompt_id, self.method, kind) if step == 1 else (prompt_id, self.method, kind, step)
        return Ask(prompt_id, copy_role(step), self.model,
                   render("gold_corruption_edit.j2", edit=kind, question=question, reference=text),
                   seed=seed_for(self.model, *seed_parts))

    def _answer_asks(self, prompts: pd.DataFrame) -> list[Ask]:
        """``source: model``: the model's answer to each prompt (a conversation continued)."""
        return [continuing(pid, self.source_role, self.model, conversation,
                           seed=seed_for(self.model, pid, self.method, self.source_role))
                for pid, conversation in conversations_of(prompts).items()]

    def _with_reference(self, prompts: pd.DataFrame) -> list[tuple[str, str, str]]:
        refs = prompts["reference"] if "reference" in prompts.columns else [None] * len(prompts)
        return [(pid, q, ref) for pid, q, r in zip(prompts["prompt_id"], prompts["prompt"], refs)
                if (ref := reference_text(r)) is not None]

    async def _sources(self, batch: pd.DataFrame, prompts: pd.DataFrame, session: CallSession, now: datetime,
                       params: str) -> tuple[list[dict[str, Any]], dict[str, Link], dict[str, str]]:
        """The source rows, the chains that start from them (a failed or empty answer starts none) and the pool of
        other prompts' sources ``substitute`` draws from."""
        rows: list[dict[str, Any]] = []
        chains: dict[str, Link] = {}
        if self.spec.source == "reference":
            for pid, question, ref in self._with_reference(prompts):
                rows.append(candidate(self.method, params, pid, 0, self.source_role, now, text=ref,
                                      model=REFERENCE_MODEL))
                chains[pid] = Link(question, rows[-1]["candidate_id"], ref, [])
            return rows, chains, {pid: ref for pid, _, ref in self._with_reference(batch)}
        asks = self._answer_asks(prompts)
        questions = dict(zip(prompts["prompt_id"], prompts["prompt"]))
        for ask, outcome in zip(asks, await ask_all(asks, session, self.method)):
            rows.append(candidate(self.method, params, ask.prompt_id, 0, self.source_role, now, ask=ask,
                                  outcome=outcome))
            if outcome.error is None and has_text(rows[-1]["text"]):
                chains[ask.prompt_id] = Link(questions[ask.prompt_id], rows[-1]["candidate_id"], rows[-1]["text"], [])
        return rows, chains, {pid: link.text for pid, link in chains.items()}

    def _rule_step(self, pid: str, link: Link, step: int, pool: dict[str, str]) -> tuple[str, str, dict] | None:
        """``step``'s copy of ``link`` by rules: (kind, copy, bounds against ``link``), the first edit within bounds,
        else the first that applied; None when none applies."""
        source_text = pool.get(pid, link.text)
        others = [t for p, t in pool.items() if p != pid] or [r for r in builtin_references() if r != source_text]
        seed = derived_seed(pid, self.method, "rule") if step == 1 else derived_seed(pid, self.method, "rule", step)
        made = []
        for kind in self.edit_kind(pid, step):
            copy = edited_by_rules(kind, link.text, link.question, others, seed)
            if copy is not None:
                made.append((kind, copy, bounds(link.text, copy, self.spec)))
                if made[-1][2]["within_bounds"]:
                    break
        return next((m for m in made if m[2]["within_bounds"]), made[0]) if made else None

    def _notes(self, link: Link, step: int, kind: str, by: str, within: dict[str, Any] | None) -> dict[str, Any]:
        """A copy's notes: its edit and its bounds against its predecessor, its step and every edit since the source."""
        measured = {k: within[k] for k in ("similarity", "length_ratio")} if within else {}
        return {"edit": kind, "by": by, **(within or {}), "step": step,
                "history": [*link.history, {"step": step, "edit": kind, **measured}]}

    async def generate(self, prompts: pd.DataFrame, session: CallSession) -> list[dict[str, Any]]:
        batch, prompts = prompts, self.prompts_of(prompts)
        now, params = datetime.now(timezone.utc), self.strategy_params
        rows, chains, pool = await self._sources(batch, prompts, session, now, params)
        for step in range(1, self.spec.steps + 1):
            if not chains:
                break
            made: list[tuple[str, dict[str, Any], bool]] = []  # (prompt, row, whether the chain goes on)
            if self.by_rules:
                for pid, link in chains.items():
                    edit = self._rule_step(pid, link, step, pool)
                    if edit is not None:
                        kind, copy, within = edit
                        made.append((pid, candidate(self.method, params, pid, step, copy_role(step), now, text=copy,
                                                    model=RULES_MODEL, label=f"{RULES_MODEL}:{kind}",
                                                    parent_id=link.candidate_id,
                                                    notes=self._notes(link, step, kind, "rules", within)),
                                     within["within_bounds"]))
            else:
                todo = [(pid, link, self.edit_kind(pid, step)[0]) for pid, link in chains.items()]
                asks = [self._ask(pid, link.question, link.text, kind, step) for pid, link, kind in todo]
                for (pid, link, kind), ask, outcome in zip(todo, asks, await ask_all(asks, session, self.method)):
                    within = bounds(link.text, outcome.value.text, self.spec) if outcome.error is None else None
                    made.append((pid, candidate(self.method, params, pid, step, copy_role(step), now, ask=ask,
                                                outcome=outcome, parent_id=link.candidate_id,
                                                notes=self._notes(link, step, kind, "llm", within)),
                                 bool(within and within["within_bounds"])))
            chains_next = {}
            for pid, row, goes_on in made:
                rows.append(row)
                if goes_on and has_text(row["text"]):
                    chains_next[pid] = Link(chains[pid].question, row["candidate_id"], row["text"],
                                            notes_of(row)["history"])
            chains = chains_next
        return rows

    def comparisons(self, candidates: pd.DataFrame) -> list[PlannedComparison]:
        """Every two links of each prompt's chain (the source, then the copies within bounds, in step order), fewer
        edits chosen; where the chain ended early, why (the batch's prompts without a reference are listed by
        ``unpaired``)."""
        out = []
        for prompt_id, roles in by_prompt_and_role(candidates).items():
            source = roles.get(self.source_role)
            if source is None:
                continue
            failed = bool(len(candidates) and ((candidates["prompt_id"] == prompt_id) & candidates["error"].notna()).any())
            chain = [source] if has_text(source["text"]) else []
            for step in range(1, self.spec.steps + 1):
                copy = roles.get(copy_role(step))
                if copy is None or not chain:
                    if not failed:  # a failed call is quarantined by the filters (generation_error)
                        out.append(no_pair(prompt_id, self.method, "edit_impossible", self._impossible(step, chain),
                                           *([chain[-1]["candidate_id"]] if chain else [source["candidate_id"]])))
                    break
                notes = notes_of(copy)
                if not notes.get("within_bounds", False) or not has_text(copy["text"]):
                    out.append(no_pair(prompt_id, self.method, "corruption_out_of_bounds",
                                       self._out_of_bounds(step, notes), chain[-1]["candidate_id"],
                                       copy["candidate_id"]))
                    break
                chain.append(copy)
            for (i, better), (j, worse) in itertools.combinations(enumerate(chain), 2):
                extra = {"edit_distance": j - i} if self.spec.steps > 1 else None
                out.append(PlannedComparison(prompt_id, better["candidate_id"], worse["candidate_id"], self.method,
                                             expected="x", judged=False, params=extra))
        return out

    def _impossible(self, step: int, chain: list[dict[str, Any]]) -> str:
        if not chain:
            return "the model's answer is empty: nothing to edit"
        what = "this reference" if self.spec.source == "reference" else "this answer"
        detail = f"none of the edits {list(self.spec.edits)} applies to {what}"
        return detail if step == 1 else f"step {step}: none of the edits {list(self.spec.edits)} applies to " \
                                        f"copy {step - 1}; the chain ends there"

    def _out_of_bounds(self, step: int, notes: dict[str, Any]) -> str:
        detail = (f"edited copy out of bounds: similarity {notes.get('similarity')} (allowed "
                  f"[{self.spec.min_similarity}, {self.spec.max_similarity})), length ratio "
                  f"{notes.get('length_ratio')} (allowed [{self.spec.min_length_ratio}, "
                  f"{self.spec.max_length_ratio}])")
        return detail if step == 1 else f"step {step}: {detail} against copy {step - 1}; the chain ends there"

    def unpaired(self, prompts: pd.DataFrame) -> list[PlannedComparison]:
        """``source: reference``: the prompts it runs on that have no reference: no pair, quarantined as
        ``no_reference``."""
        return no_reference(self.prompts_of(prompts), self.method) if self.spec.source == "reference" else []

    def estimate_calls(self, prompts: pd.DataFrame) -> list[tuple[Any, Any]]:
        """The model's answers (``source: model``) and, with a model, every step's edit: a step that edits an
        earlier answer is built with a ``max_tokens``-long stand-in (the whole chain counted: an upper bound)."""
        prompts = self.prompts_of(prompts)
        asks: list[Ask] = []
        if self.spec.source == "model":
            asks += self._answer_asks(prompts)
            sources = [(pid, q, placeholder(self.model)) for pid, q in zip(prompts["prompt_id"], prompts["prompt"])]
        else:
            sources = self._with_reference(prompts)
        if not self.by_rules:
            asks += [self._ask(pid, q, text if step == 1 else placeholder(self.model), self.edit_kind(pid, step)[0],
                               step)
                     for pid, q, text in sources for step in range(1, self.spec.steps + 1)]
        return [(a.spec, a.request()) for a in asks]
