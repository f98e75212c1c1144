"""The judges' prompts (Jinja2 files in ``templates/``) and the output schemas they answer in.

Candidates are wrapped in tags so the judge (and a reader) can tell them apart; a candidate cannot
close its own tag early, because closing tags inside the content are escaped. The built-in templates
are hardened against prompt injection: the judge is told that text inside the tags is data, and the
output instructions come again after the data (``bench/bench_injection.py`` measures the effect
against ``pairwise_unhardened.jinja``, today's template before hardening). A template's text is part
of the judge's fingerprint, so editing it re-judges.

A custom ``template:`` in the configuration uses ``{question}``-style fields (filled in one pass, so
text inside a response is never itself substituted); the built-in files use Jinja2.

A conversation is the ``question``: every turn before the two answers, each in its own ``turn`` tag
(``judge_question``), so text injected into an earlier turn is data as a response's is. A single-string
prompt is the question as it always was, so its judge prompts (and their cached answers) are unchanged.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

import jinja2

from pref_pipeline.conversations import from_json

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



def verdict_schema(reasoning_max_chars: int | None = None) -> dict:
    """``VERDICT_SCHEMA``, with the reasoning capped at ``reasoning_max_chars`` characters when given."""
    if reasoning_max_chars is None:
        return VERDICT_SCHEMA
    properties = {**VERDICT_SCHEMA["properties"], "reasoning": {"type": "string", "maxLength": reasoning_max_chars}}
    return {**VERDICT_SCHEMA, "properties": properties}


SCORE_SCHEMA: dict = {
    "type": "object",
    "properties": {
        "score": {"type": "integer", "minimum": 1, "maximum": 10},
        "reasoning": {"type": "string"},
    },
    "required": ["score", "reasoning"],
    "additionalProperties": False,
}

JUDGE_SYSTEM_PROMPT = "You are an impartial judge of AI assistant responses. You answer only in the requested format."

_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                          keep_trailing_newline=False, autoescape=False)


@cache
def template_text(name: str) -> str:
    """The text of a built-in template, ``pref_pipeline/judging/templates/<name>.jinja``."""
    return resources.files("pref_pipeline.judging").joinpath(f"templates/{name}.jinja").read_text(encoding="utf-8")


PAIRWISE_TEMPLATE = template_text("pairwise")
# A pairwise judge with ``verdict_format: lines``: the seed's PREFERENCE / CONFIDENCE / REASONING lines, no JSON.
PAIRWISE_LINES_TEMPLATE = template_text("pairwise_lines")
UNHARDENED_PAIRWISE_TEMPLATE = template_text("pairwise_unhardened")
# The embedded default judge's (a 135M model pays for every prompt token: a third of the hardened template's words,
# the same structure: data in tags declared as data, the output instruction after it).
PAIRWISE_COMPACT_TEMPLATE = template_text("pairwise_compact")
POINTWISE_TEMPLATE = template_text("pointwise")

_FIELD = re.compile(r"\{(question|response_a|response_b|criteria)\}")
_CLOSING_TAG = re.compile(r"</(question|response_a|response_b|response|reference)>", re.IGNORECASE)


def _escape(text: str) -> str:
    return _CLOSING_TAG.sub(lambda m: f"<\\/{m.group(1)}>", text)


_CLOSING_TURN = re.compile(r"</turn>", re.IGNORECASE)


def judge_question(prompt: str, messages: object = None) -> str:
    """What the judges read as the question: the prompt, or every turn of its conversation, delimited (a turn
    cannot close its own tag: a closing tag inside it is escaped)."""
    turns = from_json(messages)
    if not turns:
        return prompt
    blocks = []
    for turn in turns:
        content = _CLOSING_TURN.sub(lambda _: "<\\/turn>", turn["content"].strip())
        blocks.append(f'<turn role="{turn["role"]}">\n{content}\n</turn>')
    return "\n".join(blocks)


def judge_questions(prompts) -> dict[str, str]:
    """Per prompt id of a prompts frame, what the judges read as its question (``judge_question``)."""
    messages = prompts["messages"] if "messages" in prompts.columns else [None] * len(prompts)
    return {pid: judge_question(text, turns) for pid, text, turns in zip(prompts["prompt_id"], prompts["prompt"],
                                                                         messages)}


@cache
def _compiled(template: str) -> jinja2.Template:
    return _ENV.from_string(template)


def is_jinja(template: str) -> bool:
    return "{{" in template


def render_template(template: str, *, criteria: str, rubric: str | None = None, **texts: str) -> str:
    """Fill a judge template: the texts (question, responses) escaped so they cannot close their tags;
    a Jinja2 template (the built-in files) or a ``{field}`` one (a custom ``template:``)."""
    values = {name: _escape(text) for name, text in texts.items()}
    criteria = criteria.replace("_", " ")
    if is_jinja(template):
        return _compiled(template).render(criteria=criteria, rubric=(rubric or "").strip(), **values)
    values["criteria"] = criteria
    return _FIELD.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def render_judge_prompt(template: str, *, question: str, response_a: str, response_b: str, criteria: str,
                        rubric: str | None = None) -> str:
    """The pairwise prompt for one order of one comparison."""
    return render_template(template, criteria=criteria, rubric=rubric, question=question, response_a=response_a,
                           response_b=response_b)


def render_score_prompt(*, question: str, response: str, criteria: str, rubric: str | None = None,
                        template: str = POINTWISE_TEMPLATE) -> str:
    """The pointwise prompt for one candidate."""
    return render_template(template, criteria=criteria, rubric=rubric, question=question, response=response)
