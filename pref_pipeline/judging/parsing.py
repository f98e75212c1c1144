"""A strict reader of judge output.

It accepts a JSON verdict (alone or fenced/embedded in prose), the ``PREFERENCE: / CONFIDENCE: /
REASONING:`` line format, or a bare ``A``/``B``/``tie``. Anything ambiguous (two different
preferences, "A or B", an unknown label) is *unparseable* with the reason recorded; nothing is ever
read as "A" by default. A confidence given as a word (``CONFIDENCE: high``) is kept as the word beside
its number (``CONFIDENCE_WORDS``). A ``REASONING:`` line goes on over the lines after it, up to a blank
line or the next key. A structured answer cut off by the token limit after its preference and
confidence were complete is accepted as ``truncated``; cut off earlier, it is unparseable. Empty
output, prose, a refusal and an output too long to be a verdict are unparseable with their reason.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Literal

Preference = Literal["A", "B", "tie"]
ParseStatus = Literal["ok", "truncated", "unparseable"]

CONFIDENCE_WORDS = {"very high": 0.95, "high": 0.9, "medium": 0.6, "moderate": 0.6, "low": 0.3, "very low": 0.1}

_LABEL = re.compile(
    r"""^\W*(?:(?:response|answer|assistant|output|option)\s*)?   # optional noun: "Response A"
        (?P<label>a|b|tie|equal|both\s+equal|neither)\W*$""",
    re.IGNORECASE | re.VERBOSE,
)
# Markdown emphasis around the key or the value ("**PREFERENCE:** B") is not part of either. One
# character class before the key and a greedy tail keep matching linear on long lines.
_LINE = re.compile(r"^[*#_\s]*(preference|confidence|reasoning)[*_\s]*:(.*)$", re.IGNORECASE)
_EMPHASIS = "*_"
_OBJECT_START = re.compile(r'\{\s*["}]')
# Outputs longer than this are not a verdict (a verdict with its reasoning is a few thousand
# characters; 100,000 are about 25,000 tokens of runaway text); reading them is not attempted.
MAX_OUTPUT_CHARS = 100_000
MAX_FAILED_OBJECTS = 10_000  # '{' that open no JSON object before the output counts as junk
_REFUSAL = re.compile(
    r"^\W*(?:i\s*(?:'m|am)\s+(?:sorry|unable|not\s+able)|i\s+(?:can\s*not|can't|cannot|won't|will\s+not|must\s+decline)"
    r"|sorry\b|as\s+an\s+ai\b|i\s+apologi[sz]e)",
    re.IGNORECASE,
)
_TRUNCATED_JSON = re.compile(
    r"""^\s*\{\s*"preference"\s*:\s*"(?P<pref>[^"]*)"\s*,\s*"confidence"\s*:\s*(?P<conf>-?[0-9.]+(?:[eE][-+]?\d+)?)\s*,""",
)


@dataclass(frozen=True)
class ParsedVerdict:
    preference: Preference | None
    confidence: float | None
    reasoning: str
    status: ParseStatus
    error: str | None = None
    confidence_word: str | None = None  # the confidence as the judge wrote it, when a word ("high")

    @property
    def usable(self) -> bool:
        return self.status != "unparseable"


def _unparseable(reason: str) -> ParsedVerdict:
    return ParsedVerdict(None, None, "", "unparseable", reason)


def normalize_label(value: object) -> Preference | None:
    """``"A"``, ``"Response B"``, ``"[A]"``, ``"Tie."`` -> a label; anything else -> None."""
    if not isinstance(value, str):
        return None
    match = _LABEL.match(value.strip())
    if not match:
        return None
    label = match.group("label").lower()
    if label in ("a", "b"):
        return label.upper()  # type: ignore[return-value]
    return "tie"


def _level_text(value: str) -> str:
    """``" [High]. "`` -> ``"high"``: a level as written in the seed's ``CONFIDENCE: [high/medium/low]`` form."""
    return value.strip().strip(".").strip("[]()").strip().lower()


def normalize_confidence(value: object) -> float | None | Literal[False]:
    """A confidence in [0, 1] from a number, a percentage or a word; False when present but invalid."""
    if value is None:
        return None
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        text = _level_text(value)
        if text in CONFIDENCE_WORDS:
            return CONFIDENCE_WORDS[text]
        percent = text.endswith("%")
        try:
            number = float(text.rstrip("%").strip())
        except ValueError:
            return False
        if percent:
            number /= 100
    else:
        return False
    if 1 < number <= 100 and float(number).is_integer():
        number /= 100  # "85" on a 0-100 scale
    return number if 0.0 <= number <= 1.0 else False


def confidence_word(value: object) -> str | None:
    """The confidence level a judge wrote as a word (``"High."`` -> ``"high"``), or None for a number or nothing."""
    if not isinstance(value, str):
        return None
    text = _level_text(value)
    return text if text in CONFIDENCE_WORDS else None


def _from_mapping(obj: dict) -> ParsedVerdict:
    keys = {str(k).lower(): v for k, v in obj.items()}
    if "preference" not in keys:
        return _unparseable("JSON verdict has no 'preference' key")
    preference = normalize_label(keys["preference"])
    if preference is None:
        return _unparseable(f"preference {keys['preference']!r} is not A, B or tie")
    confidence = normalize_confidence(keys.get("confidence"))
    if confidence is False:
        return _unparseable(f"confidence {keys.get('confidence')!r} is not a number in [0, 1] or a level")
    reasoning = keys.get("reasoning")
    return ParsedVerdict(preference, confidence, reasoning if isinstance(reasoning, str) else "", "ok",
                         confidence_word=confidence_word(keys.get("confidence")))


class _TooManyFragments(Exception):
    pass


def _json_objects(text: str) -> list[dict]:
    """Every top-level JSON object embedded in the text (fenced or inline) that may be a verdict.

    Only a ``{`` followed by a key or ``}`` can open an object, and a text without the word
    "preference" holds no verdict object: skipping the rest keeps long junk outputs cheap (each
    failed attempt costs a scan of the text before it, in ``JSONDecodeError``).
    """
    if "preference" not in text.lower():
        return []
    decoder = json.JSONDecoder(strict=False)  # models often put raw newlines inside strings
    found, index, failed = [], 0, 0
    while (match := _OBJECT_START.search(text, index)) is not None:
        start = match.start()
        try:
            obj, end = decoder.raw_decode(text, start)
        except (ValueError, RecursionError):  # not JSON, nesting too deep, a number too long: not a verdict
            failed += 1
            if failed > MAX_FAILED_OBJECTS:
                raise _TooManyFragments from None
            index = start + 1
            continue
        if isinstance(obj, dict):
            found.append(obj)
        index = end
    return found


def _strip_emphasis(value: str) -> str:
    """``" **B** "`` -> ``"B"``: whitespace and Markdown emphasis off both ends, in linear time."""
    start, end = 0, len(value)
    while start < end and (value[start].isspace() or value[start] in _EMPHASIS):
        start += 1
    while end > start and (value[end - 1].isspace() or value[end - 1] in _EMPHASIS):
        end -= 1
    return value[start:end]


def _from_lines(text: str) -> ParsedVerdict | None:
    fields: dict[str, list[str]] = {}
    current: str | None = None  # the key whose value a line without a key continues (only REASONING)
    for line in text.splitlines():
        match = _LINE.match(line)
        if match:
            current = match.group(1).lower()
            fields.setdefault(current, []).append(_strip_emphasis(match.group(2)))
        elif current == "reasoning" and line.strip():
            fields["reasoning"][-1] = " ".join(filter(None, (fields["reasoning"][-1], _strip_emphasis(line))))
        else:
            current = None
    if "preference" not in fields:
        return None
    labels = {normalize_label(v) for v in fields["preference"]}
    if None in labels:
        bad = next(v for v in fields["preference"] if normalize_label(v) is None)
        return _unparseable(f"PREFERENCE {bad!r} is not A, B or tie")
    if len(labels) > 1:
        return _unparseable(f"conflicting PREFERENCE lines: {', '.join(fields['preference'])}")
    stated = fields.get("confidence", [None])[0]
    confidence = normalize_confidence(stated)
    if confidence is False:
        return _unparseable(f"CONFIDENCE {fields['confidence'][0]!r} is not a number in [0, 1] or a level")
    reasoning = " ".join(fields.get("reasoning", []))
    return ParsedVerdict(labels.pop(), confidence, reasoning, "ok", confidence_word=confidence_word(stated))


def parse_verdict(text: str | None, *, truncated: bool = False) -> ParsedVerdict:
    """Read one judge output. ``truncated`` says the model stopped at its token limit."""
    if text is None or not text.strip():
        return _unparseable("empty output")
    if len(text) > MAX_OUTPUT_CHARS:
        return _unparseable(f"output of {len(text):,} characters is too long to be a verdict "
                            f"(limit {MAX_OUTPUT_CHARS:,})")
    try:
        objects = [o for o in _json_objects(text) if any(str(k).lower() == "preference" for k in o)]
    except _TooManyFragments:
        return _unparseable(f"more than {MAX_FAILED_OBJECTS:,} broken JSON fragments: not a verdict")
    if objects:
        verdicts = [_from_mapping(o) for o in objects]
        bad = next((v for v in verdicts if not v.usable), None)
        if bad:
            return bad
        if len({v.preference for v in verdicts}) > 1:
            return _unparseable("several JSON verdicts that disagree")
        return verdicts[0]
    from_lines = _from_lines(text)
    if from_lines is not None:
        return from_lines
    try:
        decoded = json.loads(text)
    except (ValueError, RecursionError):
        decoded = text
    if not isinstance(decoded, str):  # e.g. ["A"]: JSON, but not a verdict object
        return _unparseable("JSON output is not an object with a 'preference' key")
    bare = normalize_label(text)
    if bare is not None:
        return ParsedVerdict(bare, None, "", "ok")
    cut = _TRUNCATED_JSON.match(text)
    if cut:
        verdict = _from_mapping({"preference": cut.group("pref"), "confidence": float(cut.group("conf"))})
        if verdict.usable:
            return ParsedVerdict(verdict.preference, verdict.confidence, "", "truncated", "reasoning cut off")
        return verdict
    if truncated or text.lstrip().startswith("{"):
        return _unparseable("output cut off before the verdict was complete")
    if _REFUSAL.match(text):
        first_line = text.strip().splitlines()[0]
        return _unparseable(f"the judge refused: {first_line[:120]!r}")
    return _unparseable("no verdict found (expected JSON with 'preference', or a 'PREFERENCE:' line)")
