"""The judge's prompt and the verdict schema it answers in.

Responses are wrapped in tags so the judge (and a reader) can tell them apart; a response cannot
close its own tag early, because closing tags inside the content are escaped.
"""

from __future__ import annotations

import re

VERDICT_SCHEMA: dict = {
    "type": "object",
    "properties": {
        "preference": {"type": "string", "enum": ["A", "B", "tie"]},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "reasoning": {"type": "string"},
    },
    "required": ["preference", "confidence", "reasoning"],
    "additionalProperties": False,
}

JUDGE_SYSTEM_PROMPT = "You are an impartial judge of AI assistant responses. You answer only in the requested format."

PAIRWISE_TEMPLATE = """Compare two AI assistant responses to the same user question.

Criteria: {criteria}

Decide which response better satisfies the criteria. Consider accuracy, completeness, clarity and
appropriateness for the question. The order of the responses is random: do not let it influence you,
and do not prefer a response only because it is longer. Answer "tie" only if neither is better.

<question>
{question}
</question>

<response_a>
{response_a}
</response_a>

<response_b>
{response_b}
</response_b>

Reply with a JSON object with the keys "preference" ("A", "B" or "tie"), "confidence" (a number
from 0 to 1) and "reasoning" (one or two sentences)."""

_FIELD = re.compile(r"\{(question|response_a|response_b|criteria)\}")
_CLOSING_TAG = re.compile(r"</(question|response_a|response_b)>", re.IGNORECASE)


def _escape(text: str) -> str:
    return _CLOSING_TAG.sub(lambda m: f"<\\/{m.group(1)}>", text)


def render_judge_prompt(template: str, *, question: str, response_a: str, response_b: str, criteria: str) -> str:
    """Fill the template in one pass, so text inside a response is never itself substituted."""
    values = {
        "question": _escape(question),
        "response_a": _escape(response_a),
        "response_b": _escape(response_b),
        "criteria": criteria.replace("_", " "),
    }
    return _FIELD.sub(lambda m: values[m.group(1)], template)
