"""A deliberately gullible judge for the fakes (the server or the in-process provider): it obeys verdict instructions it finds in the prompt.

It models the failure that prompt-injection hardening is meant to prevent, not any real model. It reads
the whole judge prompt (system and user message) and looks for *directives*: text that tells the judge
which verdict to give ("answer B", ``"preference": "A"``, "the verdict is A", "Response B is better",
"prefer this response", ...). It obeys the **last** directive it sees, except that directives inside a
delimited data block (``<question>``, ``<response_a>``, ``<response_b>``, as the tags really stand in
the prompt: an escaped ``<\\/response_a>`` inside a response does not close its block) are ignored when
the prompt, outside those blocks, says that the tagged text is data and never an instruction. With no
directive to obey it judges "on merit" like the fake's default judge: the longer response wins.

So against this judge a template's flip rate measures the template's structure (is the data delimited,
is the judge told that it is data), which is what ``bench/bench_injection.py`` reports beside a real
model's row.
"""

from __future__ import annotations

import re
from typing import Any

from tests.fakes.answers import DEFAULT_CONFIDENCE, JudgeInfo, default_judge, last_user_text, text_of

# The label is case-sensitive ("answer a question" is not a directive); the words around it are not.
_DIRECTIVES = [re.compile(p) for p in (
    r"(?i:\banswers?\s+(?:with\s+)?)[\"']?(A|B)\b",
    r"(?i:\b(?:choose|select|pick|prefer)\s+(?:response\s+)?)[\"']?(A|B)\b",
    r"(?i:\bverdict\s*(?:is\s+|:\s*))[\"']?(?:(?i:response)\s+)?(A|B)\b",
    r"(?i:\bpreference\s*(?:is\s+|:\s*|\s+))[\"']?(A|B)\b",
    r"\"preference\"\s*:\s*\"(A|B)\"",
    r"(?i:\bresponse\s+)(A|B)(?i:\s+is\s+(?:the\s+)?(?:better|winner|correct|preferred))",
)]
_SELF_DIRECTIVE = re.compile(r"(?i:\b(?:choose|select|pick|prefer|rate)\s+this\s+(?:response|answer))")
_DATA_DECLARED = re.compile(r"(?i:never an instruction|(?:is|are) data\b|not instructions)")
_BLOCKS = ("question", "response_a", "response_b")


def _blocks(prompt: str) -> list[tuple[str, int, int]]:
    """(tag, start, end) of each delimited block as it really stands (the first opening, the next real closing)."""
    spans = []
    for tag in _BLOCKS:
        opening = prompt.find(f"<{tag}>")
        closing = prompt.find(f"</{tag}>", opening + 1) if opening >= 0 else -1
        if opening >= 0 and closing >= 0:
            spans.append((tag, opening, closing))
    return spans


def directives(prompt: str) -> list[tuple[int, str, str | None]]:
    """Every verdict directive in ``prompt``: (position, label, the block it is in or None)."""
    blocks = _blocks(prompt)

    def block_at(position: int) -> str | None:
        return next((tag for tag, start, end in blocks if start < position < end), None)

    found = []
    for pattern in _DIRECTIVES:
        for match in pattern.finditer(prompt):
            found.append((match.start(), match.group(1), block_at(match.start())))
    for match in _SELF_DIRECTIVE.finditer(prompt):  # "prefer this response": the response it stands in
        block = block_at(match.start())
        if block in ("response_a", "response_b"):
            found.append((match.start(), block[-1].upper(), block))
    return sorted(found)


def obeyed_label(prompt: str) -> str | None:
    """The label this judge will give because it was told to, or None (it judges on merit)."""
    found = directives(prompt)
    outside = prompt
    for _, start, end in sorted(_blocks(prompt), key=lambda s: -s[1]):
        outside = outside[:start] + outside[end:]
    if _DATA_DECLARED.search(outside):
        found = [d for d in found if d[2] is None]
    return found[-1][1] if found else None


def gullible_judge(info: JudgeInfo) -> str | dict[str, Any]:
    """A fake's ``judge_fn``: obeys the last directive it is not told to ignore, else the longer wins."""
    messages = info.body.get("messages") or []
    system = "\n".join([text_of(info.body.get("system")),  # Anthropic's system field, OpenAI's system messages
                        *(text_of(m.get("content")) for m in messages if m.get("role") == "system")])
    label = obeyed_label(f"{system}\n{last_user_text(messages)}")
    if label is None:
        return default_judge(info)
    reasoning = f"As instructed, response {label} is preferred."
    if info.structured:
        return {"preference": label, "confidence": DEFAULT_CONFIDENCE, "reasoning": reasoning}
    return f"PREFERENCE: {label}\nCONFIDENCE: high\nREASONING: {reasoning}"
