"""The dataset as the Hugging Face Hub takes it: a dataset folder with its card, and its upload.

- ``write_folder``: ``exports/hf/`` as ``datasets.load_dataset`` loads it (``data/train-*.parquet``, and
  ``data/test-*`` with a test share: whole prompts, stratified by category), with a ``README.md`` card whose
  YAML the Hub accepts and whose text says how the pairs were made and how far to trust them.
- ``publish``: that folder to a Hub dataset repository (the token from ``HF_TOKEN``, never written anywhere).
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from pref_pipeline.audit.human_share import describe as describe_human_share
from pref_pipeline.audit.report import table
from pref_pipeline.export import trainer_format

FOLDER = "hf"
TAGS = ["preference", "dpo", "rlaif", "synthetic", "trl", "pref-pipeline"]
TASK_CATEGORIES = ["text-generation"]


# --------------------------------------------------------------------------- splits

def test_prompts(pairs: pd.DataFrame, share: float) -> set[str]:
    """The prompts of the test split: in each category, ``share`` of its prompts (rounded, at least one when the
    category has two or more), picked by a hash of the prompt id so that a re-run picks the same ones."""
    if share <= 0 or pairs.empty:
        return set()
    category = pairs["category"].fillna("uncategorized") if "category" in pairs.columns else "uncategorized"
    frame = pd.DataFrame({"prompt_id": pairs["prompt_id"], "category": category}).drop_duplicates("prompt_id")
    chosen: set[str] = set()
    for _, group in frame.groupby("category", sort=True):
        ids = sorted(group["prompt_id"], key=lambda pid: hashlib.sha256(str(pid).encode()).hexdigest())
        count = round(share * len(ids))
        if count == 0 and len(ids) >= 2:
            count = 1
        chosen.update(ids[:min(count, len(ids) - 1)] if len(ids) > 1 else [])
    return chosen


def split_pairs(pairs: pd.DataFrame, share: float) -> dict[str, pd.DataFrame]:
    """``train`` (and ``test`` when ``share`` picks any prompt): whole prompts, never one in both."""
    test = test_prompts(pairs, share)
    in_test = pairs["prompt_id"].isin(test) if len(pairs) else pd.Series(dtype=bool)
    splits = {"train": pairs[~in_test].reset_index(drop=True)}
    if test:
        splits["test"] = pairs[in_test].reset_index(drop=True)
    return splits


# --------------------------------------------------------------------------- the folder

def size_category(rows: int) -> str:
    """The Hub's size bucket."""
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if rows < limit:
            return name
    return "1M<n<10M" if rows < 10_000_000 else "n>1M"


def write_folder(folder: Path, pairs: pd.DataFrame, *, fmt: str, test_share: float = 0.0,
                 audit: dict[str, Any] | None = None, license: str | None = None,
                 pretty_name: str | None = None, human_share: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write ``folder`` (``exports/hf``) whole: the formatted pairs as Parquet per split under ``data/`` and the
    card as ``README.md``. It is built beside the old one and swapped in, so a reader never sees half of it.
    Returns what was written (format, rows per split)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    formatted = trainer_format(pairs, fmt)
    splits = split_pairs(formatted, test_share)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        (staging / "data").mkdir()
        for name, frame in splits.items():
            arrow = pa.Table.from_pandas(frame, preserve_index=False)
            pq.write_table(arrow, staging / "data" / f"{name}-00000-of-00001.parquet")
        card = dataset_card(pairs, splits, fmt=fmt, audit=audit, license=license, pretty_name=pretty_name,
                            human_share=human_share)
        (staging / "README.md").write_text(card, encoding="utf-8")
        old = folder.with_name(f".{folder.name}-old")
        if folder.exists():
            shutil.rmtree(old, ignore_errors=True)
            folder.rename(old)
        staging.rename(folder)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {"format": fmt, "splits": {name: len(frame) for name, frame in splits.items()}, "folder": str(folder)}


# --------------------------------------------------------------------------- the card

def _pct(value: object) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{float(value):.1%}"


def _tally(pairs: pd.DataFrame, columns: list[str]) -> list[list[object]]:
    """Rows of (values of ``columns``, pairs with them), in value order."""
    if pairs.empty or any(c not in pairs.columns for c in columns):
        return []
    counts = pairs[columns].astype("string").fillna("(none)").value_counts().sort_index()
    return [[*key, int(n)] for key, n in counts.items()]


def dataset_card(pairs: pd.DataFrame, splits: dict[str, pd.DataFrame], *, fmt: str, audit: dict[str, Any] | None,
                 license: str | None, pretty_name: str | None, human_share: dict[str, Any] | None = None) -> str:
    """The ``README.md`` of the dataset folder: YAML front matter the Hub reads (``configs``, ``license``,
    ``task_categories``, ``size_categories``, ``tags``), then how the data was made, how much of it is
    human-annotated (``human_share``: ``human_sets.human_share``) and how far to trust it."""
    # The card's metadata class alone: ``DatasetCard`` (``huggingface_hub.repocard``) imports the Hub client
    # (~0.07 s a roll-up) only to render the same "---\n<yaml>\n---\n<text>" written here.
    from huggingface_hub.repocard_data import DatasetCardData

    title = pretty_name or "Synthetic preference pairs"
    data = DatasetCardData(
        license=license or "other", task_categories=TASK_CATEGORIES, size_categories=[size_category(len(pairs))],
        tags=TAGS, pretty_name=title,
        configs=[{"config_name": "default",
                  "data_files": [{"split": name, "path": f"data/{name}-*"} for name in splits]}])
    text = _card_text(pairs, splits, fmt, audit, title, human_share)
    return f"---\n{data.to_yaml()}\n---\n\n{text}"


def _card_text(pairs: pd.DataFrame, splits: dict[str, pd.DataFrame], fmt: str, audit: dict[str, Any] | None,
               title: str, human_share: dict[str, Any] | None = None) -> str:
    audit = audit or {}
    how = "\n".join([
        f"# {title}",
        "",
        f"{len(pairs)} synthetic preference pairs (prompt, chosen, rejected) made by pref-pipeline; "
        + ", ".join(f"{name}: {len(frame)}" for name, frame in splits.items()) + " (splits by prompt: no prompt is in "
        "two splits).",
        "",
        f"Format: TRL's **{fmt}** preference format"
        + (" (`prompt` is the list of messages, `chosen` and `rejected` one assistant turn each)."
           if fmt == "conversational" else " (`prompt`, `chosen`, `rejected` are strings)."),
        "",
        "```python",
        "from datasets import load_dataset",
        'dataset = load_dataset("<this folder or repository>")',
        "```",
        "",
        "## How the pairs were made",
        "",
        "By strategy (`generation_method`) and where each label comes from (`label_source`: `construction` when the "
        "winner is known by how the responses were made, `judge` when LLM judges chose it in both orders, "
        "`construction+judge` when both agree, `human_set` for a human-annotated pair mixed in):",
        "",
        table(["generation_method", "label_source", "pairs"], _tally(pairs, ["generation_method", "label_source"]),
              why_empty="No pairs."),
        "",
        "## Judges",
        "",
        table(["judge models", "judge fingerprints", "pairs"], _tally(pairs, ["judge_model_id", "judge_fingerprint"]),
              why_empty="No pairs."),
        "",
        "A fingerprint is a hash of everything that decides a judge's verdict (model, prompt template, criteria, "
        "sampling); every pair carries its judges' fingerprints.",
        "",
        describe_human_share(human_share),
    ])
    length = audit.get("length_bias") or {}
    position = audit.get("position_bias") or {}
    human = ((audit.get("agreement") or {}).get("human") or {})
    quarantine = (audit.get("quarantine") or {}).get("by_reason") or []
    trust = "\n".join([
        "## How far to trust it (the audit)",
        "",
        table(["figure", "value"], [
            ["judges' length bias: share of judge-labelled pairs where the longer response was chosen",
             _pct(length.get("pct_longer_chosen"))],
            ["share of all pairs where the longer response was chosen (a tie counts as not longer)",
             _pct(length.get("pct_longer_chosen_all_pairs"))],
            ["length bias flagged", length.get("flagged", "n/a")],
            ["judges' verdicts the same in both orders (position consistency)",
             _pct(position.get("consistency_rate"))],
            ["agreement with human labels", _pct(human.get("agreement_rate"))
             + (f" on {human['n']} labels" if human.get("n") else " (no human labels)")],
        ], why_empty=""),
        "",
        "### Set aside (quarantine), by stage and reason",
        "",
        table(["stage", "reason", "rows"], [[q["stage"], q["reason"], q["n"]] for q in quarantine],
              why_empty="Nothing was set aside."),
        "",
        "### Warnings",
        "",
        "\n".join(f"- {flag}" for flag in audit.get("flags") or []) or "(none)",
        "",
    ])
    return how + "\n" + trust


# --------------------------------------------------------------------------- the Hub

TOKEN_VARIABLE = "HF_TOKEN"


class PublishError(RuntimeError):
    """The folder could not be published; the message says why and what to do."""


def publish(folder: Path, repo: str, *, private: bool = False, environ: dict[str, str] | None = None,
            api: Any = None) -> str:
    """Upload ``folder`` (``exports/hf``) to the Hub dataset repository ``repo`` (``ORG/NAME``), creating it if
    needed; the token is read from ``HF_TOKEN`` and handed to the client only. Returns the commit URL."""
    environ = os.environ if environ is None else environ
    if not (folder / "README.md").exists():
        raise PublishError(f"{folder} holds no dataset (no README.md): run the pipeline first")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise PublishError(f"--repo must be ORG/NAME, got {repo!r}")
    token = environ.get(TOKEN_VARIABLE)
    if not token:
        raise PublishError(f"{TOKEN_VARIABLE} is not set: export a Hugging Face token with write access")
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(endpoint=environ.get("HF_ENDPOINT") or None)
    api.create_repo(repo, token=token, private=private, repo_type="dataset", exist_ok=True)
    info = api.upload_folder(repo_id=repo, folder_path=str(folder), repo_type="dataset", token=token,
                             commit_message="Upload preference pairs (pref-pipeline)")
    return str(getattr(info, "commit_url", info))
