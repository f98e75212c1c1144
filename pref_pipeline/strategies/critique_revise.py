"""``critique_revise`` (Constitutional AI): answer, critique the answer against a principle, revise it;
the revision is chosen over the original.

Per prompt: the model answers; it critiques its answer against one principle of the constitution
(``principles``, or the built-in one; the principle is picked per prompt); it rewrites the answer to fix
the critique; and it critiques the revision again. When that second critique says the flaw is still
there, the revision did not fix it, and as the seed suggests "the original flawed response could be the
rejected one, and a separate, good response (generated with a different prompt) chosen": a separately
generated answer, told to follow the principle, is paired against the original instead. With
``alternative: reference`` that separate, good response is the prompt's ``reference`` (written by a person,
as the seed allows: "perhaps generated with a different prompt or by a human") where the prompt has one, and
a model's answer where it has none; the alternative's ``notes`` say which (``alternative_from``). A revision
identical to the original (up to case and spacing) gives no pair (quarantined: ``revision_identical``).
The critiques are kept in the revision's ``notes``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Annotated, Any, Literal

import pandas as pd
from pydantic import Field, SerializerFunctionWrapHandler, model_serializer

from pref_pipeline.conversations import Conversation
from pref_pipeline.ids import derived_seed
from pref_pipeline.metrics import words
from pref_pipeline.specs import ModelStrategySpec
from pref_pipeline.strategies.base import PlannedComparison, Strategy, no_pair
from pref_pipeline.strategies.calls import (
    REFERENCE_MODEL,
    Ask,
    ask_all,
    by_prompt_and_role,
    candidate,
    continuing,
    conversations_of,
    has_text,
    notes_of,
    placeholder,
    references_of,
    seed_for,
)
from pref_pipeline.strategies.templates import data, render

if TYPE_CHECKING:
    from pref_pipeline.providers.client import CallSession

STILL_FLAWED = "YES"
FROM_MODEL, FROM_REFERENCE = "model", "reference"  # where the alternative to a still-flawed original comes from


class CritiqueReviseSpec(ModelStrategySpec):
    """Constitutional AI: answer, critique against a principle, revise; the revision is chosen."""

    method: Literal["critique_revise"]
    principles: Annotated[list[str], Field(min_length=1)] | None = None  # unset: the built-in constitution
    # When the revision did not fix the flaw, what is chosen over the original: a model's answer told to follow
    # the principle, or the prompt's reference (a model's answer where the prompt has none).
    alternative: Literal["model", "reference"] = FROM_MODEL

    @model_serializer(mode="wrap")
    def _default_left_out(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """``alternative`` at its default is left out of the dump, so ``strategy_params`` (hashed into candidate
        ids and cache keys) of a configuration that does not set it stays what it was before the key existed."""
        data = handler(self)
        if self.alternative == FROM_MODEL:
            data.pop("alternative", None)
        return data


def still_flawed(second_critique: str) -> bool:
    """The second critique's verdict: its first word is YES (the template asks for YES or NO first)."""
    found = words(second_critique)
    return bool(found) and found[0].upper() == STILL_FLAWED


def same_text(a: object, b: object) -> bool:
    return words(a) == words(b)


class CritiqueReviseStrategy(Strategy):
    spec_class = CritiqueReviseSpec
    templates = ("critique.j2", "revise.j2", "recritique.j2", "alternative_system.j2", "constitution.json")

    asks_judges = False

    def principle(self, prompt_id: str) -> str:
        principles = self.spec.principles or data("constitution.json")
        return principles[derived_seed(prompt_id, self.method, "principle") % len(principles)]

    def _ask(self, prompt_id: str, role: str, user: str, system: str | None = None) -> Ask:
        """A critique, revision or second critique: one turn that quotes the whole prompt (its template)."""
        return Ask(prompt_id, role, self.model, user, system=system, seed=seed_for(self.model, prompt_id, self.method, role))

    def _answer(self, prompt_id: str, role: str, conversation: Conversation, system: str | None = None) -> Ask:
        """An answer to the prompt itself: the conversation continued."""
        return continuing(prompt_id, role, self.model, conversation, system=system,
                          seed=seed_for(self.model, prompt_id, self.method, role))

    def _alternative(self, prompt_id: str, conversation: Conversation) -> Ask:
        """The model's separate answer, told to follow the prompt's principle."""
        return self._answer(prompt_id, "alternative", conversation,
                            system=render("alternative_system.j2", principle=self.principle(prompt_id)))

    def alternatives_from_reference(self, prompts: pd.DataFrame) -> dict[str, str]:
        """The references that stand as alternatives (``alternative: reference``), by prompt id; none otherwise."""
        return references_of(prompts) if self.spec.alternative == FROM_REFERENCE else {}

    async def generate(self, prompts: pd.DataFrame, session: CallSession) -> list[dict[str, Any]]:
        prompts = self.prompts_of(prompts)
        now, params = datetime.now(timezone.utc), self.strategy_params
        questions = dict(zip(prompts["prompt_id"], prompts["prompt"]))  # a conversation rendered as text
        conversations = conversations_of(prompts)
        references = self.alternatives_from_reference(prompts)
        rows: list[dict[str, Any]] = []

        originals = [self._answer(pid, "original", conversations[pid]) for pid in questions]
        first = await ask_all(originals, session, f"{self.method} answer")
        answered = {}
        for a, o in zip(originals, first):
            row = candidate(self.method, params, a.prompt_id, 0, "original", now, ask=a, outcome=o)
            rows.append(row)
            if o.error is None:
                answered[a.prompt_id] = row

        critiques = [self._ask(pid, "critique", render("critique.j2", principle=self.principle(pid),
                                                       question=questions[pid], answer=row["text"]))
                     for pid, row in answered.items()]
        critiqued = {a.prompt_id: o for a, o in zip(critiques, await ask_all(critiques, session, f"{self.method} critique"))}

        revisions = [self._ask(pid, "revised", render("revise.j2", principle=self.principle(pid), question=questions[pid],
                                                      answer=answered[pid]["text"], critique=o.value.text))
                     for pid, o in critiqued.items() if o.error is None]
        revised = {a.prompt_id: (a, o) for a, o in zip(revisions, await ask_all(revisions, session, f"{self.method} revise"))}

        rechecks = [self._ask(pid, "second_critique", render(
            "recritique.j2", principle=self.principle(pid), question=questions[pid], answer=o.value.text,
            critique=critiqued[pid].value.text)) for pid, (_, o) in revised.items() if o.error is None]
        second = {a.prompt_id: o for a, o in zip(rechecks, await ask_all(rechecks, session, f"{self.method} re-critique"))}

        alternatives = []
        for pid, (ask, outcome) in revised.items():
            notes = {"principle": self.principle(pid), "critique": critiqued[pid].value.text}
            check = second.get(pid)
            if check is not None and check.error is None:
                notes["second_critique"] = check.value.text
                notes["still_flawed"] = still_flawed(check.value.text)
                if notes["still_flawed"] and pid in references:  # the prompt's reference: no call
                    rows.append(candidate(self.method, params, pid, 2, "alternative", now, text=references[pid],
                                          model=REFERENCE_MODEL, parent_id=answered[pid]["candidate_id"],
                                          notes={"principle": notes["principle"], "alternative_from": FROM_REFERENCE}))
                elif notes["still_flawed"]:
                    alternatives.append(self._alternative(pid, conversations[pid]))
            elif check is not None:
                notes["second_critique_error"] = check.error
            rows.append(candidate(self.method, params, pid, 1, "revised", now, ask=ask, outcome=outcome,
                                  parent_id=answered[pid]["candidate_id"], notes=notes))
        for a, o in zip(alternatives, await ask_all(alternatives, session, f"{self.method} alternative")):
            notes = {"principle": self.principle(a.prompt_id)}
            if self.spec.alternative == FROM_REFERENCE:  # asked for the reference, but the prompt has none
                notes.update(alternative_from=FROM_MODEL, why="the prompt has no reference")
            rows.append(candidate(self.method, params, a.prompt_id, 2, "alternative", now, ask=a, outcome=o,
                                  parent_id=answered[a.prompt_id]["candidate_id"], notes=notes))
        return rows

    def comparisons(self, candidates: pd.DataFrame) -> list[PlannedComparison]:
        out = []
        for prompt_id, roles in by_prompt_and_role(candidates).items():
            original, revised = roles.get("original"), roles.get("revised")
            if original is None or revised is None:
                continue  # a failed call: quarantined as generation_error
            notes = notes_of(revised)
            if notes.get("still_flawed"):
                alternative = roles.get("alternative")
                if alternative is not None and has_text(alternative["text"]):
                    out.append(PlannedComparison(prompt_id, alternative["candidate_id"], original["candidate_id"],
                                                 self.method, expected="x", judged=False))
                continue
            if same_text(revised["text"], original["text"]):
                out.append(no_pair(prompt_id, self.method, "revision_identical",
                                   "the revision is the original unchanged (up to case and spacing): no pair",
                                   original["candidate_id"], revised["candidate_id"]))
                continue
            out.append(PlannedComparison(prompt_id, revised["candidate_id"], original["candidate_id"], self.method,
                                         expected="x", judged=False))
        return out

    def estimate_calls(self, prompts: pd.DataFrame) -> list[tuple[Any, Any]]:
        """Answer, critique, revision, second critique and (an upper bound) the alternative answer, which is not
        asked for where the prompt's reference stands in for it (``alternative: reference``)."""
        calls = []
        filler = placeholder(self.model)
        prompts = self.prompts_of(prompts)
        conversations = conversations_of(prompts)
        references = self.alternatives_from_reference(prompts)
        for pid, question in zip(prompts["prompt_id"], prompts["prompt"]):
            p = self.principle(pid)
            asks = [self._answer(pid, "original", conversations[pid]),
                    self._ask(pid, "critique", render("critique.j2", principle=p, question=question, answer=filler)),
                    self._ask(pid, "revised", render("revise.j2", principle=p, question=question, answer=filler,
                                                     critique=filler)),
                    self._ask(pid, "second_critique", render("recritique.j2", principle=p, question=question,
                                                             answer=filler, critique=filler))]
            if pid not in references:
                asks.append(self._alternative(pid, conversations[pid]))
            calls += [(ask.spec, ask.request()) for ask in asks]
        return calls
