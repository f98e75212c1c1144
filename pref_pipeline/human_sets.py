"""Human-labelled preference files: reading them, and mixing them into the exported dataset (``export.human_sets``).

One reader for every human-labelled file the project takes (the known-answer calibration reads them too):
a JSON list or JSONL (``.gz`` read transparently) of LLMBar / MT-Bench style ``{input, output_1, output_2,
label: 1|2}`` records, hh-rlhf ``{chosen, rejected}`` dialogues (split at the last assistant turn), or the
export's own rows (``{prompt, chosen, rejected}`` in TRL's standard format, strings with an optional
``messages`` JSON, or its conversational format, lists of messages), each optionally with a ``category``.

Mixing (seed: "mix synthetic data with a smaller set of high-quality human-annotated preferences"): with S
synthetic pairs and sets of shares s_i, set i adds h_i = round(s_i * S / (1 - sum s)) pairs, so that each
makes up its share of the dataset within one pair; they are drawn by a seeded hash (the same S gives the same
pairs), all of them when a set has fewer (``short`` in the figures). Each added row has ``label_source:
human_set``, ``source`` (the set's name) and ``license``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from pref_pipeline import conversations, schema

SHIPPED_SETS = Path(__file__).parent / "data" / "human_prefs"  # licences and sources in its README.md
# The licence of each shipped set, as its README.md states it (a Hub licence id). MT-Bench: the LLMBar repository
# that processed it is MIT, the underlying human judgments are CC BY 4.0, the stricter (attribution) is named.
SHIPPED_LICENSES = {
    "LLMBar_Natural.json": "mit",
    "Processed_MT-Bench.json": "cc-by-4.0",
    "hh-rlhf_harmless-base_test_sample.jsonl": "mit",
}
LABEL_SOURCE = "human_set"  # the label_source of a mixed-in row
SOURCE_COLUMN = "source"  # the added rows' set name (null on the pipeline's own pairs)
LICENSE_COLUMN = "license"  # the added rows' licence (null on the pipeline's own pairs)
_LAST_TURN = "\n\nAssistant:"


class HumanSetError(ValueError):
    """A human-labelled file that cannot be used; the message names the file and the line (or record)."""


# --------------------------------------------------------------------------- reading

def numbered_records(path: Path) -> list[tuple[str, dict]]:
    """Each record of a JSON list or a JSONL file (``.gz`` read transparently) with where it is: ``line N`` of a
    JSONL file, ``record N`` of a JSON list. A line that is not a JSON object raises ``HumanSetError``."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise HumanSetError(f"{path}: cannot read it ({exc})") from None
    if text.lstrip().startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as exc:
            raise HumanSetError(f"{path} line {exc.lineno}: not valid JSON ({exc.msg})") from None
        numbered = [(f"record {number}", record) for number, record in enumerate(records, start=1)]
    else:
        numbered = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                numbered.append((f"line {number}", json.loads(line)))
            except json.JSONDecodeError as exc:
                raise HumanSetError(f"{path} line {number}: not valid JSON ({exc.msg})") from None
    for where, record in numbered:
        if not isinstance(record, dict):
            raise HumanSetError(f"{path} {where}: expected a JSON object, got {type(record).__name__}")
    return numbered


def read_records(path: Path) -> list[dict]:
    """The records of a JSON list or a JSONL file (``.gz`` read transparently)."""
    return [record for _, record in numbered_records(path)]


def short_hash(*parts: object) -> str:
    """12 hex digits of the SHA-256 of the parts: the ids of human-labelled pairs and prompts."""
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:12]


def as_labelled(record: dict) -> dict:
    """``{input, output_1, output_2, label}`` from either known-answer shape; a ``{chosen, rejected}`` dialogue is
    split at its last assistant turn, and the human's choice placed first or second by a hash (not always 1)."""
    if "chosen" in record and "rejected" in record and "input" not in record:
        chosen, rejected = str(record["chosen"]), str(record["rejected"])
        cut = chosen.rfind(_LAST_TURN)
        if cut < 0 or not rejected.startswith(chosen[:cut]):
            raise KeyError("a chosen/rejected dialogue must share its turns before the last assistant turn")
        prompt = chosen[:cut].strip()
        good, bad = chosen[cut + len(_LAST_TURN):].strip(), rejected[cut + len(_LAST_TURN):].strip()
        first = int(short_hash(prompt, good, bad), 16) % 2 == 0
        return {"input": prompt, "output_1": good if first else bad, "output_2": bad if first else good,
                "label": 1 if first else 2, "category": record.get("category")}
    return record


def _assistant_text(value: Any, field: str) -> str:
    """A response: a string (standard format) or one assistant turn ``[{role: assistant, content}]``
    (conversational format)."""
    if isinstance(value, str):
        return value
    turns = value.tolist() if hasattr(value, "tolist") else value
    if (isinstance(turns, list) and len(turns) == 1 and isinstance(turns[0], dict)
            and turns[0].get("role") == "assistant" and isinstance(turns[0].get("content"), str)):
        return turns[0]["content"]
    raise ValueError(f"`{field}` must be text or one assistant turn [{{role: assistant, content: ...}}]")


def as_pair(record: dict) -> dict[str, Any]:
    """``{prompt, messages, chosen, rejected, category}`` from any accepted record: the export's own rows (standard
    or conversational), LLMBar / MT-Bench records, or hh-rlhf dialogues. ``ValueError`` says what is wrong."""
    if "prompt" in record:  # the export's own format
        for field in ("chosen", "rejected"):
            if field not in record:
                raise ValueError(f"a row with `prompt` needs `chosen` and `rejected` (missing `{field}`)")
        prompt, messages = record["prompt"], record.get("messages")
        if not isinstance(prompt, str):  # conversational: the prompt is the conversation
            turns = conversations.parse_messages(prompt)
            messages, prompt = (None, turns[0]["content"]) if len(turns) == 1 and turns[0]["role"] == "user" \
                else (conversations.to_json(turns), conversations.render(turns))
        elif messages is not None and not (isinstance(messages, float) and math.isnan(messages)):
            messages = conversations.to_json(conversations.parse_messages(messages))
        else:
            messages = None
        pair = {"prompt": prompt, "messages": messages, "chosen": _assistant_text(record["chosen"], "chosen"),
                "rejected": _assistant_text(record["rejected"], "rejected")}
    else:
        try:
            labelled = as_labelled(record)
            text, outputs, label = labelled["input"], (labelled["output_1"], labelled["output_2"]), labelled["label"]
            label = int(label)
        except (KeyError, TypeError, ValueError):
            raise ValueError("expected {prompt, chosen, rejected} (the export's format), {input, output_1, output_2, "
                             "label: 1|2} or hh-rlhf {chosen, rejected} dialogues") from None
        if label not in (1, 2):
            raise ValueError(f"label must be 1 or 2, got {labelled['label']!r}")
        pair = {"prompt": text, "messages": None, "chosen": outputs[label - 1], "rejected": outputs[2 - label]}
    for field in ("prompt", "chosen", "rejected"):
        if not isinstance(pair[field], str):
            raise ValueError(f"`{field}` must be text")
    if not pair["prompt"].strip():
        raise ValueError("`prompt` is empty")
    category = record.get("category")
    return {**pair, "category": category if isinstance(category, str) and category else None}


# --------------------------------------------------------------------------- one set

@dataclass(frozen=True)
class HumanSet:
    """One ``export.human_sets`` entry, read: its distinct pairs as export rows (``pairs``), in file order."""

    name: str
    path: Path
    share: float
    license: str
    seed: int
    pairs: pd.DataFrame
    empty_responses: int = 0  # records left out: an empty chosen or rejected response is no pair to train on

    def drawn(self, count: int) -> pd.DataFrame:
        """``count`` of its pairs (all when it has fewer), drawn by a hash of the seed and the pair: the same
        count draws the same pairs, and a larger count draws a superset."""
        keys = [short_hash(self.seed, pair_id) for pair_id in self.pairs["pair_id"]]
        order = sorted(range(len(keys)), key=keys.__getitem__)
        return self.pairs.iloc[order[:count]].reset_index(drop=True)


def set_name(path: Path) -> str:
    """A set's default name: its file name up to the first dot (``LLMBar_Natural.json`` -> ``LLMBar_Natural``)."""
    return Path(path).name.split(".")[0]


def shipped_license(path: Path) -> str | None:
    """The licence of a file shipped in ``data/human_prefs`` (None for any other file)."""
    path = Path(path)
    shipped = SHIPPED_SETS / path.name
    return SHIPPED_LICENSES.get(path.name) if shipped.exists() and shipped.resolve() == path.resolve() else None


def load_set(path: Path, *, share: float, license: str, name: str | None = None, seed: int = 0) -> HumanSet:
    """Read a human-labelled file as export rows; a bad record raises ``HumanSetError`` naming file and line.
    The same pair twice counts once; a record with an empty response is left out (counted)."""
    name = name or set_name(path)
    rows, seen, empty = [], set(), 0
    for where, record in numbered_records(path):
        try:
            pair = as_pair(record)
        except ValueError as exc:  # ConversationError too
            raise HumanSetError(f"{path} {where}: {exc}") from None
        if not pair["chosen"].strip() or not pair["rejected"].strip():
            empty += 1  # e.g. hh-rlhf's empty replies: valid records, no pair
            continue
        pair_id = f"hs-{short_hash(name, pair['prompt'], pair['messages'], pair['chosen'], pair['rejected'])}"
        if pair_id in seen:
            continue
        seen.add(pair_id)
        rows.append({
            "pair_id": pair_id,
            "prompt_id": f"hs-{short_hash(pair['prompt'], pair['messages'])}",  # one prompt in one split, whatever set
            "prompt": pair["prompt"], "chosen": pair["chosen"], "rejected": pair["rejected"],
            "generation_method": LABEL_SOURCE, "judge_model_id": "human", "criteria": "human preference",
            "category": pair["category"] or name, "judge_fingerprint": f"{LABEL_SOURCE}:{name}",
            "label_source": LABEL_SOURCE, "messages": pair["messages"],
            "chosen_words": len(pair["chosen"].split()), "rejected_words": len(pair["rejected"].split()),
            SOURCE_COLUMN: name, LICENSE_COLUMN: license,
        })
    if not rows:
        raise HumanSetError(f"{path}: holds no pair" + (f" ({empty} records with an empty response)" if empty else ""))
    pairs = schema.conform("preference_pairs", pd.DataFrame(rows)).astype({SOURCE_COLUMN: "string",
                                                                          LICENSE_COLUMN: "string"})
    return HumanSet(name, Path(path), share, license, seed, pairs, empty)


def load_sets(entries: Iterable[Any]) -> list[HumanSet]:
    """Every ``export.human_sets`` entry read (each has ``path``, ``share``, ``license``, ``name``, ``seed``);
    the first bad file raises ``HumanSetError``, before anything is written."""
    return [load_set(e.path, share=e.share, license=e.license, name=e.name, seed=e.seed) for e in entries]


# --------------------------------------------------------------------------- mixing

def mixed_counts(synthetic_rows: int, shares: Sequence[float]) -> list[int]:
    """Pairs each set adds to ``synthetic_rows`` so that it makes up its share of the whole: round(s * S / (1 -
    sum of shares)), half up."""
    rest = 1.0 - sum(shares)
    return [math.floor(share * synthetic_rows / rest + 0.5) for share in shares]


def mixed_rows(sets: Sequence[HumanSet], synthetic_rows: int, columns: Sequence[str] = ()) -> pd.DataFrame:
    """The human rows to add to ``synthetic_rows`` pipeline pairs (``recency_weight`` 1.0 when the pipeline's
    pairs carry one: a human anchor does not age)."""
    counts = mixed_counts(synthetic_rows, [s.share for s in sets])
    frames = [s.drawn(count) for s, count in zip(sets, counts) if count]
    if not frames:
        return pd.DataFrame()
    rows = pd.concat(frames, ignore_index=True)
    if "recency_weight" in columns:
        rows["recency_weight"] = 1.0
    return rows


def human_share(sets: Sequence[HumanSet], synthetic_rows: int) -> dict[str, Any]:
    """How much of the dataset is human (``audit.json`` ``export.human_share``, the card): per set, the share
    asked, the pairs asked, available and added, and the share they make; ``short`` when a set has fewer pairs
    than asked (all of them are added)."""
    counts = mixed_counts(synthetic_rows, [s.share for s in sets])
    added = [min(count, len(s.pairs)) for s, count in zip(sets, counts)]
    total = synthetic_rows + sum(added)

    def share(n: int) -> float | None:
        return round(n / total, 4) if total else None

    return {
        "pairs": sum(added), "synthetic_pairs": synthetic_rows, "total_pairs": total, "share": share(sum(added)),
        "sets": [{"name": s.name, "file": s.path.name, "license": s.license, "share_asked": s.share,
                  "pairs_asked": count, "available": len(s.pairs), "pairs": n, "share": share(n),
                  "short": n < count, "left_out_empty": s.empty_responses} for s, count, n in zip(sets, counts, added)],
    }
