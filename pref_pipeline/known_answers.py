"""Known-answer sets: human-labelled pairs to measure how often a judge agrees with people.

Reads human-labelled sets shipped with the package (``data/human_prefs``: LLMBar, MT-Bench human
judgments, a sample of Anthropic's hh-rlhf harmless-base test split; licences beside them) or a
user's own file: a JSON list or JSONL (optionally gzipped) of ``{input, output_1, output_2,
label: 1|2}`` records or of hh-rlhf-style ``{chosen, rejected}`` dialogues, each optionally with a
``category``. They become prompts and candidates shaped like the
pipeline's own, judges them with the configured judges in both orders, and reports the agreement
figures of the audit (``agreement.human``): how often the judge's pair matches the human choice,
every single verdict's accuracy and Cohen's kappa, by source.

    pref-pipeline review known-answer --set LLMBar_Natural.json [--config FILE] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from pref_pipeline import schema
from pref_pipeline.human_sets import (  # noqa: F401 (the readers live there; SHIPPED_SETS re-exported)
    SHIPPED_SETS,
    as_labelled,
    read_records,
    set_name,
    short_hash,
)
from pref_pipeline.metrics import longer_chosen_share

DEFAULT_SETS = [SHIPPED_SETS / "LLMBar_Natural.json", SHIPPED_SETS / "Processed_MT-Bench.json",
                SHIPPED_SETS / "hh-rlhf_harmless-base_test_sample.jsonl"]

KNOWN_ANSWER = "known_answer"  # the candidates' strategy: human-labelled, not generated


@dataclass(frozen=True)
class KnownAnswers:
    prompts: pd.DataFrame  # the prompts table's columns
    candidates: pd.DataFrame  # the candidates table's columns, two per prompt
    winners: dict[str, str]  # prompt_id -> the candidate id people preferred


def load_known_answers(path: Path, limit: int | None = None, source: str | None = None) -> KnownAnswers:
    records = read_records(path)
    source = source or set_name(path)
    now = datetime.now(timezone.utc)
    prompts, candidates, winners = [], [], {}
    for number, record in enumerate(records[:limit] if limit else records, start=1):
        try:
            record = as_labelled(record)
            text, outputs, label = record["input"], (record["output_1"], record["output_2"]), int(record["label"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{path}: record {number} lacks input, output_1, output_2 and a label 1|2 "
                             "(or chosen and rejected dialogues)") from None
        if label not in (1, 2):
            raise ValueError(f"{path}: record {number}: label must be 1 or 2, got {label}")
        prompt_id = f"ka-{short_hash(source, text, *outputs)}"  # one "prompt" per labelled pair (questions repeat)
        if prompt_id in winners:
            continue  # the same pair twice: the first labelling counts
        prompts.append({"prompt_id": prompt_id, "prompt": text, "category": record.get("category") or source,
                        "reference": None, "source": source})
        ids = []
        for index, output in enumerate(outputs):
            candidate_id = f"ka-{short_hash(prompt_id, index, output)}"
            ids.append(candidate_id)
            candidates.append({
                "candidate_id": candidate_id, "prompt_id": prompt_id, "candidate_index": index, "text": output,
                "strategy": KNOWN_ANSWER, "generator_model": f"human_set:{source}",
                "generator_label": f"output_{index + 1}", "sampling": "{}", "system_prompt": None,
                "served_model": None, "input_tokens": None, "output_tokens": None, "finish_reason": None,
                "latency_s": None, "error": None, "created_at": now,
            })
        winners[prompt_id] = ids[label - 1]
    return KnownAnswers(schema.from_rows("prompts", prompts), schema.from_rows("candidates", candidates), winners)


def human_labels_for(known: KnownAnswers, judgments: pd.DataFrame) -> pd.DataFrame:
    """``human_labels`` rows for the comparisons the judges made of a known-answer set."""
    from pref_pipeline.store import label_id

    categories = dict(zip(known.prompts["prompt_id"], known.prompts["category"]))
    sources = dict(zip(known.prompts["prompt_id"], known.prompts["source"]))
    rows = []
    for comparison_id, prompt_id in judgments[["comparison_id", "prompt_id"]].drop_duplicates().itertuples(index=False):
        rows.append({"label_id": label_id("known_answer", comparison_id, None), "source": sources[prompt_id],
                     "comparison_id": comparison_id, "pair_id": None, "prompt_id": prompt_id,
                     "category": categories[prompt_id], "human_preference": "known",
                     "human_winner_id": known.winners[prompt_id], "labeller": None, "notes": None,
                     "labelled_at": datetime.now(timezone.utc)})
    return schema.from_rows("human_labels", rows)


def measure(config, known: KnownAnswers, calls, logger=None) -> dict[str, Any]:
    """Judge a known-answer set with the configured judges (LLM calls per ``calls``, a ``CallSettings``);
    the audit's agreement figures on it."""
    from pref_pipeline.audit import compute_audit
    from pref_pipeline.judgments import judge_comparisons
    from pref_pipeline.judging.panel import panel_for
    from pref_pipeline.pairs import build_preference_pairs
    from pref_pipeline.strategies.base import all_pairs

    planned = all_pairs(known.candidates, KNOWN_ANSWER)
    judgments = judge_comparisons(known.prompts, known.candidates, config, calls, logger=logger,
                                  planned=planned).judgments
    result = build_preference_pairs(known.prompts, known.candidates, judgments, panel=panel_for(config))
    labels = human_labels_for(known, judgments)
    figures = compute_audit(result.pairs, judgments, result.comparisons, human_labels=labels,
                            candidates=known.candidates)
    return {
        "records": int(len(known.prompts)),
        "judges": sorted(set(judgments["judge_model"])) if len(judgments) else [],
        "comparisons": figures["pairs"]["by_status"],
        "human": figures["agreement"]["human"],
        "position_bias": {k: figures["position_bias"][k] for k in ("consistency_rate", "first_position_win_rate")},
        "length_bias_of_human_labels": _human_length_share(known),
    }


def _human_length_share(known: KnownAnswers) -> float | None:
    """Share of known answers where people preferred the longer response (a judge's length bias is relative to it)."""
    candidates = known.candidates
    winner = (candidates["prompt_id"].map(known.winners) == candidates["candidate_id"]).fillna(False)
    chosen = candidates[winner.to_numpy(dtype=bool)].set_index("prompt_id")["text"]
    rejected = candidates[~winner.to_numpy(dtype=bool)].set_index("prompt_id")["text"]
    return longer_chosen_share(pd.DataFrame({"chosen": chosen, "rejected": rejected.reindex(chosen.index)}))


def calibrate(config, sets: list[Path], calls, limit: int | None = None, logger=None) -> dict[str, dict[str, Any]]:
    """``measure`` over each known-answer file (named by its stem): what ``review known-answer`` prints and the
    ``judge_calibration`` asset records. A file that cannot be read raises ``OSError`` / ``ValueError``."""
    return {Path(path).stem: measure(config, load_known_answers(path, limit), calls, logger=logger) for path in sets}


def overall_agreement(report: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Agreement with people pooled over every set: the pairs compared and the share where the judges' pair
    matched the human choice, and the same by category (worst first)."""
    from pref_pipeline.audit.stats import ratio, wilson_interval

    n = agree = 0
    by_category: dict[str, list[int]] = {}
    for figures in report.values():
        human = figures["human"]
        n += human["n_compared"] or 0
        agree += round((human["agreement_rate"] or 0) * (human["n_compared"] or 0))
        for category in human.get("by_category") or []:
            counts = by_category.setdefault(str(category["category"]), [0, 0])
            counts[0] += category["n"]
            counts[1] += round((category["agreement_rate"] or 0) * category["n"])
    categories = sorted(({"category": c, "n": k, "agreement_rate": ratio(a, k)} for c, (k, a) in by_category.items()),
                        key=lambda c: (c["agreement_rate"] if c["agreement_rate"] is not None else 2, c["category"]))
    return {"n_compared": n, "agreement_rate": ratio(agree, n), "agreement_ci95": wilson_interval(agree, n),
            "by_category": categories}


@dataclass(frozen=True)
class Calibration:
    """Agreement of the configured judges with people on known-answer sets, as written to ``known_answers.json``."""

    by_set: dict[str, dict[str, Any]]  # ``measure`` of each set, by name
    overall: dict[str, Any]  # ``overall_agreement`` over every set
    path: Path  # reports/known_answers.json


def run_calibration(config, sets: list[Path], calls, reports_dir: Path, limit: int | None = None,
                    logger=None) -> Calibration:
    """``calibrate`` the judges on ``sets`` and write the report to ``reports_dir/known_answers.json``."""
    report = calibrate(config, sets, calls, limit, logger=logger)
    reports_dir.mkdir(parents=True, exist_ok=True)
    out = reports_dir / "known_answers.json"
    out.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    return Calibration(report, overall_agreement(report), out)


def cli(args: argparse.Namespace) -> int:
    from pref_pipeline.config import ConfigError, load_config
    from pref_pipeline.paths import Home
    from pref_pipeline.providers.client import CallSettings

    home = Home.at(args.home) if getattr(args, "home", None) else Home.from_env()
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sets = args.set or [p for p in DEFAULT_SETS if p.exists()]
    if not sets:
        print("error: no known-answer file given (--set FILE)", file=sys.stderr)
        return 2
    for path in sets:  # every file readable before any call is paid for
        try:
            load_known_answers(path, args.limit)
        except (OSError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    calibration = run_calibration(config, sets, CallSettings.under(home.ensure()), home.reports, args.limit)
    for name, figures in calibration.by_set.items():
        human = figures["human"]
        verdicts = figures["human"]["per_verdict"]
        per_verdict = "; ".join(f"{v['judge_model']}: accuracy {v['accuracy']}, kappa {v['kappa']}" for v in verdicts)
        print(f"{name}: {figures['records']} pairs; judge's pair agrees with people on "
              f"{human['agreement_rate']} of {human['n_compared']} (no pair on {human['n_judge_undecided']}); "
              f"most divergent category: {human['most_divergent_category']}; "
              f"single verdicts: {per_verdict or 'none'}; people preferred the longer response in "
              f"{figures['length_bias_of_human_labels']}")
    print(f"report: {calibration.path}")
    return 0


def add_known_answer_parser(actions) -> None:
    known = actions.add_parser("known-answer", help="judge human-labelled pairs (LLMBar, MT-Bench) and report how "
                               "often the configured judges agree with people")
    known.add_argument("--set", type=Path, action="append", default=None,
                       help="a JSON/JSONL(.gz) file of {input, output_1, output_2, label[, category]} or {chosen, "
                       "rejected} dialogues (repeatable; default: the sets shipped in pref_pipeline/data/human_prefs)")
    known.add_argument("--config", type=Path, default=None, help="a YAML configuration file (its judges are used)")
    known.add_argument("--limit", type=int, default=None, help="only the first N records of each set")
    known.add_argument("--home", type=Path, default=None, help="overrides PREF_PIPELINE_HOME (cache, report)")
    known.set_defaults(func=cli)
