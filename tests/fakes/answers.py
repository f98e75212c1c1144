"""What the fake LLMs answer: the part of the fakes that decides an answer, shared by the HTTP fake server
(``tests/fakes/llm_server.py``) and the in-process fake provider (``tests/fakes/in_process.py``).

A request is a chat request body in the shape of its protocol (OpenAI Chat Completions or Anthropic
Messages). One whose last user message contains both ``<response_a>`` and ``<response_b>`` is a judge
request (answered by a judge function, by default "the longer response wins"); one that contains
``<response>`` is a pointwise scoring request (a score function, by default a 1-10 score that grows with
the response's length); anything else is a generation request (a generate function, by default
deterministic text whose length depends on the prompt, model, temperature and seed). ``decide`` applies
them and returns the text with its rough token counts; each fake wraps it in its own transport.

Log-probabilities: ``fake_logprobs`` gives OpenAI-shaped ``choices[0].logprobs`` for an answer, one entry
per token (a simple word/punctuation split). Every token is certain except a verdict's label token
(``A``/``B``/``tie`` after ``"preference": "``), whose alternatives come from the judge function's
``_label_probs`` entry (e.g. ``{"A": 0.7, "B": 0.3}``; default 0.9 for the chosen label).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

Protocol = Literal["openai", "anthropic"]
JUDGE_PROSE = ("Both responses have their merits. The first is more direct, while the second covers more "
               "ground; which one is better depends on what the reader needs.")
DEFAULT_CONFIDENCE = 0.8
DEFAULT_LABEL_PROB = 0.9  # the chosen label's probability in the fake's log-probabilities

_ESCAPED_CLOSING_TAG = re.compile(r"<\\/(question|response_a|response_b|response)>", re.IGNORECASE)
_WORDS = (
    "clear", "careful", "practical", "concise", "thorough", "balanced", "useful", "direct",
    "accurate", "gentle", "simple", "detailed", "honest", "helpful", "structured", "friendly",
)


@dataclass(frozen=True)
class JudgeInfo:
    """What a judge function sees: the tagged parts of the judge prompt and the raw request."""

    question: str
    response_a: str
    response_b: str
    structured: bool  # a json_schema / json_object response_format or an output_config format was asked for
    protocol: Protocol
    body: dict[str, Any]


@dataclass(frozen=True)
class GenInfo:
    """What a generation function sees: the last user message, system prompt and sampling parameters."""

    prompt: str
    system: str | None
    temperature: float | None
    top_p: float | None
    seed: int | None
    max_tokens: int | None
    model: str
    protocol: Protocol
    body: dict[str, Any]


@dataclass(frozen=True)
class ScoreInfo:
    """What a pointwise scoring function sees: the question and the one response to score."""

    question: str
    response: str
    structured: bool
    protocol: Protocol
    body: dict[str, Any]


JudgeFn = Callable[[JudgeInfo], str | dict[str, Any]]
GenerateFn = Callable[[GenInfo], str]
ScoreFn = Callable[[ScoreInfo], str | dict[str, Any]]


def default_score(info: ScoreInfo) -> str | dict[str, Any]:
    """1 + one point per 5 words, at most 10: longer responses score higher, the same text the same."""
    score = min(10, 1 + len(info.response.split()) // 5)
    reasoning = f"{len(info.response.split())} words."
    return {"score": score, "reasoning": reasoning} if info.structured else f"SCORE: {score}\nREASONING: {reasoning}"


_TOKEN = re.compile(r"\s+|\w+|[^\w\s]")
_LABEL_VALUE = re.compile(r'"preference"\s*:\s*"')


def fake_logprobs(text: str, label_probs: dict[str, float] | None, top: int) -> dict[str, Any]:
    """``choices[0].logprobs`` for ``text``: certain tokens, except the verdict label's (see the module doc)."""
    match = _LABEL_VALUE.search(text)
    label_at = match.end() if match else -1
    content, offset = [], 0
    for token in _TOKEN.findall(text):
        alternatives = [(token, 0.0)]
        if offset == label_at and token in ("A", "B", "tie"):
            probs = dict(label_probs or {})
            if not probs:
                other = {"A": "B", "B": "A"}.get(token, "A")
                probs = {token: DEFAULT_LABEL_PROB, other: 1 - DEFAULT_LABEL_PROB}
            ranked = sorted(probs.items(), key=lambda kv: -kv[1])
            alternatives = [(t, math.log(p)) for t, p in ranked if p > 0]
            if token not in dict(alternatives):
                alternatives.append((token, math.log(1e-6)))
        chosen_lp = dict(alternatives)[token]
        content.append({"token": token, "logprob": chosen_lp, "bytes": list(token.encode()),
                        "top_logprobs": [{"token": t, "logprob": lp, "bytes": list(t.encode())}
                                         for t, lp in alternatives[:max(top, 1)]]})
        offset += len(token)
    return {"content": content, "refusal": None}


def default_judge(info: JudgeInfo) -> str | dict[str, Any]:
    """Prefer the longer response by characters (a tie when equal): position-consistent by design."""
    len_a, len_b = len(info.response_a), len(info.response_b)
    preference = "A" if len_a > len_b else "B" if len_b > len_a else "tie"
    if preference == "tie":
        reasoning = f"Both responses have the same length ({len_a} characters)."
    else:
        reasoning = f"Response {preference} is longer ({max(len_a, len_b)} vs {min(len_a, len_b)} characters)."
    if info.structured:
        return {"preference": preference, "confidence": DEFAULT_CONFIDENCE, "reasoning": reasoning}
    return f"PREFERENCE: {preference}\nCONFIDENCE: high\nREASONING: {reasoning}"


def asks_for_lines(info: JudgeInfo) -> bool:
    """Whether the judge prompt asks for the seed's ``PREFERENCE:`` / ``CONFIDENCE:`` / ``REASONING:`` lines (a
    ``verdict_format: lines`` judge): its instructions after the responses say so, and no JSON format is set."""
    instructions = last_user_text(info.body["messages"]).rsplit("</response_b>", 1)[-1]
    return not info.structured and "\nPREFERENCE:" in instructions


def worded_confidence(longer: int, shorter: int) -> str:
    """How sure the worded judge is that the longer response wins: high when it is over twice as long, medium
    over 1.2 times, else low."""
    ratio = longer / max(shorter, 1)
    return "high" if ratio > 2 else "medium" if ratio > 1.2 else "low"


def worded_judge(info: JudgeInfo) -> str | dict[str, Any]:
    """The default judge's choice (the longer response wins; never a tie, as the lines format asks for A or B),
    answered in the format the prompt asks for: the three lines when asked for them, else the default judge's
    JSON; its confidence a word (``worded_confidence``)."""
    len_a, len_b = len(info.response_a), len(info.response_b)
    if not asks_for_lines(info):
        return default_judge(info)
    preference = "A" if len_a >= len_b else "B"
    word = worded_confidence(max(len_a, len_b), min(len_a, len_b))
    return (f"PREFERENCE: {preference}\nCONFIDENCE: {word}\n"
            f"REASONING: Response {preference} is longer ({max(len_a, len_b)} vs {min(len_a, len_b)} characters).\n"
            "It covers more of the question.")


def default_generate(info: GenInfo) -> str:
    """Deterministic text; its words and length (1 to 4 sentences) depend on prompt, model, temperature, seed."""
    key = f"{info.model}|{info.temperature}|{info.seed}|{info.prompt}"
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    topic = " ".join(info.prompt.split()[:6])
    sentences = []
    for i in range(1 + digest[0] % 4):
        w = [_WORDS[b % len(_WORDS)] for b in digest[1 + 4 * i: 5 + 4 * i]]
        sentences.append(f"Point {i + 1} on '{topic}': a {w[0]} and {w[1]} view, {w[2]} yet {w[3]}.")
    return f"Answer ({info.model}, t={info.temperature}, seed={info.seed}): " + " ".join(sentences)


def text_of(content: Any) -> str:
    """The text of a message ``content``: a string, or the text parts of a list of content blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def last_user_text(messages: list[dict[str, Any]]) -> str:
    """The text of the last user message ("" when there is none)."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return text_of(message.get("content"))
    return ""


def _tagged(text: str, tag: str) -> str:
    """The content of ``<tag>\\n...\\n</tag>`` with escaped closing tags restored ("" when absent)."""
    match = re.search(rf"<{tag}>\n?(.*?)\n?</{tag}>", text, re.DOTALL)
    return _ESCAPED_CLOSING_TAG.sub(r"</\1>", match.group(1)) if match else ""


def _truncate_words(text: str, max_words: int | None) -> tuple[str, bool]:
    """Cut ``text`` after ``max_words`` words (a rough token count), keeping its whitespace."""
    if max_words is None:
        return text, False
    words = list(re.finditer(r"\S+", text))
    if len(words) <= max_words:
        return text, False
    return (text[: words[max_words - 1].end()] if max_words > 0 else ""), True


def _count_words(*texts: str) -> int:
    """Whitespace-separated words: the fake's rough token count."""
    return sum(len(t.split()) for t in texts)


@dataclass(frozen=True)
class Answer:
    """What a fake answers to one request: the text (cut at ``max_tokens`` words), its rough token counts, and
    the verdict label's probabilities for the log-probabilities (a judge answer only)."""

    text: str
    truncated: bool
    input_tokens: int
    output_tokens: int
    label_probs: dict[str, float] | None = None


def decide(body: dict[str, Any], protocol: Protocol, *, judge_fn: JudgeFn = default_judge,
           generate_fn: GenerateFn = default_generate, score_fn: ScoreFn = default_score,
           prose_instead: Callable[[], bool] | None = None) -> Answer:
    """The answer to a valid request ``body`` of ``protocol``, from the judge, score or generate function (see
    the module docstring). ``prose_instead``, asked once per judge answer, replaces the verdict with
    ``JUDGE_PROSE`` when it returns True."""
    messages = body["messages"]
    prompt = last_user_text(messages)
    input_texts = [text_of(m.get("content")) for m in messages]
    if protocol == "openai":
        system_parts = [text_of(m.get("content")) for m in messages if m.get("role") in ("system", "developer")]
        system = "\n".join(system_parts) or None
        fmt = body.get("response_format") or {}
        structured = fmt.get("type") in ("json_schema", "json_object")
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    else:
        system = text_of(body.get("system")) or None
        input_texts.append(system or "")
        fmt = (body.get("output_config") or {}).get("format") or {}
        structured = fmt.get("type") == "json_schema"
        max_tokens = body.get("max_tokens")

    label_probs = None
    if "<response_a>" in prompt and "<response_b>" in prompt:
        verdict = judge_fn(JudgeInfo(
            question=_tagged(prompt, "question"), response_a=_tagged(prompt, "response_a"),
            response_b=_tagged(prompt, "response_b"), structured=structured, protocol=protocol, body=body,
        ))
        if isinstance(verdict, dict):
            label_probs = verdict.get("_label_probs")
            verdict = {k: v for k, v in verdict.items() if not k.startswith("_")}
        text = verdict if isinstance(verdict, str) else json.dumps(verdict)
        if prose_instead is not None and prose_instead():
            text = JUDGE_PROSE
    elif "<response>" in prompt:
        scored = score_fn(ScoreInfo(question=_tagged(prompt, "question"), response=_tagged(prompt, "response"),
                                    structured=structured, protocol=protocol, body=body))
        text = scored if isinstance(scored, str) else json.dumps(scored)
    else:
        text = generate_fn(GenInfo(
            prompt=prompt, system=system, temperature=body.get("temperature"), top_p=body.get("top_p"),
            seed=body.get("seed"), max_tokens=max_tokens, model=body["model"], protocol=protocol, body=body,
        ))
    text, truncated = _truncate_words(text, max_tokens)
    return Answer(text, truncated, _count_words(*input_texts), _count_words(text), label_probs)
