"""How sure a verdict is: the judge's stated confidence, and where the provider returns token
log-probabilities (OpenAI ``logprobs``/``top_logprobs``, llama.cpp), the A/B probability margin.

The margin is read at the token where the verdict's label is written (the value after
``"preference": "`` in JSON, or after ``PREFERENCE:`` in the line format): the probabilities of the
alternatives ``A`` and ``B`` there, normalised over the two, give ``P(A) - P(B)`` in [-1, 1] and the
probability of the label the judge gave. A margin near 0 is a coin flip however confident the text
says it is. The panel (``panel.py``) combines these with the agreement across orders and members.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

TOP_LOGPROBS = 5  # alternatives asked for per token
_LABEL_START = re.compile(r'"preference"\s*:\s*"|^\W*preference\W*:\s*', re.IGNORECASE | re.MULTILINE)


def _label_of(token: str) -> str | None:
    core = token.strip().strip('"\'*').strip()
    return core if core in ("A", "B") else None


def label_margin(token_logprobs: str | list[dict[str, Any]] | None, text: str) -> float | None:
    """``P(A) - P(B)`` (normalised over A and B) at the verdict's label token; None when there are no
    log-probabilities, no label position, or neither A nor B among the alternatives there.

    ``token_logprobs`` is the JSON string the providers store (``providers.base.token_logprobs``) or, in
    answers cached before that, the list itself."""
    if not token_logprobs:
        return None
    match = _LABEL_START.search(text)
    if match is None:
        return None
    if isinstance(token_logprobs, str):
        token_logprobs = json.loads(token_logprobs)
    start, offset = match.end(), 0
    for entry in token_logprobs:
        token = entry.get("token") or ""
        end = offset + len(token)
        if end > start and token.strip().strip('"'):  # the first token that reaches into the label
            probs = {"A": 0.0, "B": 0.0}
            for alt, logprob in entry.get("top") or [[token, entry.get("logprob")]]:
                label = _label_of(alt or "")
                if label and logprob is not None:
                    probs[label] += math.exp(logprob)
            total = probs["A"] + probs["B"]
            return None if total <= 0 else (probs["A"] - probs["B"]) / total
        offset = end
    return None


def label_probability(preference: str | None, margin: float | None) -> float | None:
    """The probability (over A and B) of the label the judge gave; None for a tie or without a margin."""
    if margin is None or preference not in ("A", "B"):
        return None
    return (1 + margin) / 2 if preference == "A" else (1 - margin) / 2
