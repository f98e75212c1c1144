"""The pairs step of one prompt batch, and what of it is published: plain Python, testable without Dagster.

``make_pairs`` turns a batch's verdicts into pairs (``pairs.build_preference_pairs``), drops what the filters
reject, validates the rest with the pairs gate, optionally leaves pairs out for length balance, keeps every row
it does not publish in ``quarantine`` with its stage and reason, and writes the batch's own audit, published or
not, so a blocked batch has a report saying why. The ``preference_pairs`` asset calls it and describes the
``PairsStep`` it returns.

``publish_batch`` writes a batch's export from the step's tables: nothing when the pairs gate blocked the batch
(its verdict is in the batch's quarantine rows, so an export materialized on its own cannot publish it either).
``publish_dataset`` rebuilds the dataset over every published batch, with the human-annotated sets of
``export.human_sets`` mixed in at their shares (``human_sets``): the top-level files in TRL's format and the
Hugging Face dataset folder with its card.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from pref_pipeline import audit as audit_lib
from pref_pipeline import gates, hf_dataset, human_sets, schema, store, table_files
from pref_pipeline.config import PipelineConfig
from pref_pipeline.diagnosis import pairs_gate_cause
from pref_pipeline.export import (
    CombinedExport,
    combine_published,
    export_pairs,
    published_rows,
    with_recency_weight,
)
from pref_pipeline.filters import filter_pairs, rebalance_length
from pref_pipeline.generation import plan_comparisons
from pref_pipeline.human_pairs import labels_digest, people_labels
from pref_pipeline.judging.panel import panel_for
from pref_pipeline.pairs import build_preference_pairs
from pref_pipeline.paths import SCHEMA, Home
from pref_pipeline.quarantine import (
    AWAITING_LABEL,
    EXPORT_STAGE,
    PAIRS_GATE_STAGE,
    concat,
    gate_quarantine,
    rejected_prompt_rows,
)

PAIRS_TABLE = "preference_pairs"


@dataclass(frozen=True)
class PairsStep:
    """What the pairs step made for one batch: its three tables, the gate's verdict and the batch's audit."""

    pairs: pd.DataFrame  # every pair that passed the filters (stored even when the gate blocks the batch)
    comparisons: pd.DataFrame  # every judged comparison with its outcome
    quarantine: pd.DataFrame  # every row not published, with stage and reason
    gate: gates.GateResult  # the pairs gate on ``pairs``
    cause: str | None  # why the gate blocked the batch, in the user's terms (None when it passed)
    audit: dict[str, Any]  # the batch's audit figures (what audit.json holds)
    audit_json: Path
    audit_md: Path
    left_out: int  # pairs the length rebalancing leaves out of the export (in quarantine, stage export)
    seconds: float  # the whole step
    gate_seconds: float  # the gate's suite alone (the first gate of a process also imports GX)
    awaiting_label: int = 0  # comparisons that wait for people (no judge asked, nobody labelled them yet)
    labels_digest: str = ""  # of the human labels applied (``human_pairs.labels_digest``; the label sensor's test)

    @property
    def published(self) -> bool:
        """Whether the gate lets the batch be exported."""
        return self.gate.success

    @property
    def quarantined_by_gate(self) -> int:
        return int((self.quarantine["stage"] == PAIRS_GATE_STAGE).sum()) if len(self.quarantine) else 0


def make_pairs(prompts: pd.DataFrame, rejected_prompts: pd.DataFrame, candidates: pd.DataFrame,
               judgments: pd.DataFrame, config: PipelineConfig, reports_dir: Path, *,
               batch: str | None = None, human_labels: pd.DataFrame | None = None) -> PairsStep:
    """The pairs step of one batch: pairs, comparisons and quarantine (tagged with ``batch``), the pairs gate's
    verdict and cause, and the batch's audit written to ``reports_dir`` (``audit.json``, ``audit.md``).

    ``human_labels`` (the stored table): what people labelled of this batch's comparisons decides them
    (``human_pairs``). A batch whose comparisons all wait for people is not gated: its gate passes, waiting."""
    started = time.perf_counter()
    planned = plan_comparisons(candidates, config, prompts)
    built = build_preference_pairs(prompts, candidates, judgments, planned, panel=panel_for(config),
                                   human_labels=human_labels)
    filtered = filter_pairs(built.pairs, built.comparisons, prompts, candidates, config.filters)
    pairs = schema.with_batch(filtered.pairs, batch)
    comparisons = schema.with_batch(built.comparisons, batch)
    awaiting = int((comparisons["status"] == AWAITING_LABEL).sum()) if len(comparisons) else 0
    gate_started = time.perf_counter()
    if awaiting and awaiting == len(comparisons):
        gate = gates.waiting_for_labels(awaiting)
    else:
        gate = gates.validate_pairs(pairs, config.gates, judgments)
    gate_seconds = time.perf_counter() - gate_started
    cause = None if gate.success else pairs_gate_cause(gate.failures, gate.figures, config.gates, len(pairs),
                                                        comparisons, judgments)
    set_aside = [filtered.quarantine, rejected_prompt_rows(rejected_prompts),
                 gate_quarantine(PAIRS_TABLE, pairs, gate, cause)]
    left_out = 0
    if gate.success and config.export.rebalance_length:
        _, rebalanced = rebalance_length(pairs)  # kept and audited; the export leaves them out
        set_aside.append(rebalanced)
        left_out = len(rebalanced)
    quarantine = schema.with_batch(concat(set_aside), batch)
    # A blocked batch's audit says so first (its batches figures: the cause is in its gate's quarantine rows).
    labels = people_labels(human_labels, comparisons["comparison_id"])  # what people labelled of this batch
    figures = audit_lib.compute_audit(pairs, judgments, comparisons, quarantine=quarantine, candidates=candidates,
                                      human_labels=labels, band=config.audit.length_bias_band)
    audit_json, audit_md = audit_lib.write_report(figures, reports_dir)
    digest = labels_digest(labels)
    return PairsStep(pairs, comparisons, quarantine, gate, cause, figures, audit_json, audit_md, left_out,
                     seconds=time.perf_counter() - started, gate_seconds=gate_seconds, awaiting_label=awaiting,
                     labels_digest=digest)


class NotPublished(Exception):
    """A batch that must not be exported: its pairs gate blocked it, or too few pairs are left to publish."""


def publishable(pairs: pd.DataFrame, quarantine: pd.DataFrame, config: PipelineConfig) -> pd.DataFrame:
    """The batch's pairs to publish: all but those the length rebalancing left out. ``NotPublished`` when the
    pairs gate rejected the batch, or when the rebalancing left fewer than ``gates.min_pairs``."""
    stages = quarantine["stage"] if len(quarantine) else pd.Series(dtype="string")
    rejected = quarantine[stages == PAIRS_GATE_STAGE]
    if len(rejected):
        raise NotPublished(f"not exported: the pairs gate rejected this batch ({rejected['detail'].iloc[0]})")
    left_out = set(quarantine.loc[stages == EXPORT_STAGE, "item_id"])
    kept = pairs[~pairs["pair_id"].isin(left_out)] if left_out else pairs
    if left_out and len(kept) < config.gates.min_pairs:
        raise NotPublished(f"not exported: length rebalancing left {len(kept)} pair(s), fewer than "
                           f"gates.min_pairs = {config.gates.min_pairs}")
    return kept.reset_index(drop=True)


@dataclass(frozen=True)
class PublishedBatch:
    """What a batch's export wrote."""

    pairs: pd.DataFrame  # the published pairs (with ``recency_weight`` when configured)
    left_out: int  # pairs the length rebalancing left out
    jsonl: Path
    parquet: Path
    recency_reference: pd.Timestamp | None = None  # the newest dated pair of any batch, when recency weights are on


def publish_batch(pairs: pd.DataFrame, quarantine: pd.DataFrame, config: PipelineConfig, home: Home,
                  batch: str) -> PublishedBatch:
    """Write the batch's export (``exports/batches/<batch>/``): its publishable pairs, with their recency
    weight when ``export.recency_half_life_days`` is set. ``NotPublished`` when the batch must not be."""
    kept = publishable(pairs, quarantine, config)
    reference = None
    if config.export.recency_half_life_days:
        # Age counted from the newest time any stored batch is dated by (or this batch's newest, if later).
        reference = newest_dated(home)
        kept = with_recency_weight(kept, config.export.recency_half_life_days, reference)
    written = export_pairs(kept, home.batch_exports(batch))
    return PublishedBatch(kept, len(pairs) - len(kept), written["jsonl"], written["parquet"], reference)


def newest_dated(home: Home) -> pd.Timestamp | None:
    """The newest time a pair's recency counts from, over every batch: the newest verdict in ``judgment_history``,
    or the newest generation of a stored pair no judge dated (a label known by construction), whichever is later."""
    times = [store.newest_verdict(home)]
    con = table_files.connect(home, only=(PAIRS_TABLE,))
    try:
        if table_files.table_exists(con, PAIRS_TABLE):
            columns = {row[0] for row in con.execute(f"DESCRIBE {SCHEMA}.{PAIRS_TABLE}").fetchall()}
            if {"judged_at", "generated_at"} <= columns:
                times.append(con.execute(f"SELECT max(generated_at) FROM {SCHEMA}.{PAIRS_TABLE} "
                                         "WHERE judged_at IS NULL").fetchall()[0][0])
    finally:
        con.close()
    found = [pd.Timestamp(t) for t in times if t is not None]
    return max(found) if found else None


@dataclass(frozen=True)
class PublishedDataset:
    """The dataset over every published batch: the top-level files and the Hugging Face dataset folder."""

    combined: CombinedExport
    hf_folder: Path
    splits: dict[str, int]  # rows per split of the folder
    human_share: dict[str, Any] | None = None  # ``human_sets.human_share`` of the dataset (none configured: 0 pairs)


def human_share(config: PipelineConfig, home: Home) -> dict[str, Any]:
    """How much of the dataset the configured human sets make up over the batches published now (what
    ``publish_dataset`` will mix in): the roll-up audit's ``export.human_share``."""
    return human_sets.human_share(human_sets.load_sets(config.export.human_sets), published_rows(home.exports))


def publish_dataset(config: PipelineConfig, home: Home) -> PublishedDataset:
    """Rebuild ``exports/preference_pairs.jsonl`` and ``.parquet`` from every published batch, with the human sets
    (``export.human_sets``) mixed in, in the configured format, and ``exports/hf/`` (a folder
    ``datasets.load_dataset`` loads, its card quoting the roll-up audit in ``reports/audit.json`` when there is
    one). Every human set is read before anything is written: a bad file (``HumanSetError``) changes nothing."""
    spec = config.export
    sets = human_sets.load_sets(spec.human_sets)
    combined = combine_published(home.exports, spec.format,
                                 add=lambda union: human_sets.mixed_rows(sets, len(union), union.columns))
    share = human_sets.human_share(sets, combined.rows - combined.added)
    audit_json = home.reports / "audit.json"
    audit = json.loads(audit_json.read_text(encoding="utf-8")) if audit_json.exists() else None
    pairs = combined.pairs if combined.pairs is not None else pd.DataFrame()
    written = hf_dataset.write_folder(home.exports / hf_dataset.FOLDER, pairs, fmt=combined.format,
                                      test_share=spec.test_share, audit=audit, license=spec.license,
                                      pretty_name=spec.pretty_name, human_share=share)
    return PublishedDataset(combined, home.exports / hf_dataset.FOLDER, written["splits"], share)
