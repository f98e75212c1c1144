"""Conversations: a prompt may be a whole chat (a system message, earlier turns, then the turn to answer).

A prompt row keeps its conversation as ``messages`` (JSON, ``[{"role": ..., "content": ...}, ...]``, ending
with a ``user`` turn) and, in ``prompt``, the conversation rendered as text (``render``): what exact and
near-duplicate detection compare, what a prompt's id hashes, and what a person reads. A single-string prompt
has no ``messages`` and its ``prompt`` is the string itself, so everything made from single-turn prompts is as
it always was.

Generation continues the conversation (``Conversation``: its system message, the earlier turns, the final
user turn), the judges read every turn before the two answers, and the export writes the messages in TRL's
conversational format.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

ROLES = ("system", "user", "assistant")
ROLE_LABELS = {"system": "System", "user": "User", "assistant": "Assistant"}


class ConversationError(ValueError):
    """A conversation that cannot be used; the message says what is wrong with which turn."""


def _as_list(value: Any) -> list | None:
    """A list of turns from what a file or a dataset holds (a list, a tuple, a numpy array, a JSON string)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ConversationError(f"`messages` is text that is not a JSON list ({exc.msg})") from None
    if hasattr(value, "tolist") and not isinstance(value, Mapping):  # a numpy array from Parquet or a dataset
        value = value.tolist()
    return list(value) if isinstance(value, (list, tuple)) else None


def parse_messages(value: Any) -> list[dict[str, str]]:
    """A checked conversation: a non-empty list of ``{role, content}`` turns, roles system/user/assistant, texts
    for contents, at most one system message (the first turn), and a ``user`` turn last (the one to answer).
    Other keys of a turn (``name``, ...) are dropped."""
    turns = _as_list(value)
    if turns is None:
        raise ConversationError(f"`messages` must be a list of {{role, content}} turns, got {type(value).__name__}")
    if not turns:
        raise ConversationError("`messages` is empty: a conversation needs at least one user turn")
    out = []
    for number, turn in enumerate(turns, start=1):
        if not isinstance(turn, Mapping):
            raise ConversationError(f"`messages` turn {number} must be an object with role and content, got "
                                    f"{type(turn).__name__}")
        role, content = turn.get("role"), turn.get("content")
        if role not in ROLES:
            raise ConversationError(f"`messages` turn {number} has role {role!r}; roles are {', '.join(ROLES)}")
        if not isinstance(content, str):
            raise ConversationError(f"`messages` turn {number} ({role}) content must be text, got "
                                    f"{'nothing' if content is None else type(content).__name__}")
        if role == "system" and number != 1:
            raise ConversationError(f"`messages` turn {number} is a system message; only the first turn may be one")
        out.append({"role": role, "content": content})
    if out[-1]["role"] != "user":
        raise ConversationError(f"`messages` ends with a {out[-1]['role']} turn; the last turn must be the user's "
                                "(the one to answer)")
    if not out[-1]["content"].strip():
        raise ConversationError(f"`messages` turn {len(out)} (user, the one to answer) is empty")
    return out


def render(messages: Sequence[Mapping[str, str]]) -> str:
    """The conversation as text: ``User: ...`` blocks for a reader, a text model or a ``standard`` export. A
    single user turn renders as its content alone (the same text a single-string prompt has)."""
    if len(messages) == 1 and messages[0]["role"] == "user":
        return messages[0]["content"].strip()
    return "\n\n".join(f"{ROLE_LABELS[m['role']]}: {m['content'].strip()}" for m in messages)


def to_json(messages: Sequence[Mapping[str, str]]) -> str:
    return json.dumps([{"role": m["role"], "content": m["content"]} for m in messages], ensure_ascii=False)


def from_json(value: object) -> list[dict[str, str]] | None:
    """The stored ``messages`` of a prompt row (JSON text), or None for a single-string prompt (null, NA)."""
    return json.loads(value) if isinstance(value, str) and value else None


@dataclass(frozen=True)
class Conversation:
    """What a model is asked for one prompt: its system message, the earlier turns and the turn to answer."""

    final: str  # the user turn to answer
    system: str | None = None
    history: tuple[tuple[str, str], ...] = ()  # (role, content) of the turns before the final one

    @classmethod
    def of(cls, prompt: str, messages: object = None) -> Conversation:
        """From a prompt row: its ``messages`` when it has them, else the single-string ``prompt``."""
        turns = from_json(messages)
        if not turns:
            return cls(prompt)
        system = turns[0]["content"] if turns[0]["role"] == "system" else None
        rest = turns[1:] if system is not None else turns
        return cls(rest[-1]["content"], system, tuple((t["role"], t["content"]) for t in rest[:-1]))

    def system_with(self, own: str | None) -> str | None:
        """A system prompt of a model or strategy, put in front of the conversation's own."""
        parts = [p for p in (own, self.system) if p]
        return "\n\n".join(parts) if parts else None
