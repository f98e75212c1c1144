"""Publishing: each prompt batch's validated pairs, whether the batch is published, and the dataset that is the
union of them all.

``preference_pairs_export`` (one per batch) writes ``exports/batches/{batch}/``; ``batch_published`` (one per
batch, nothing below it) is where a blocked batch shows: its partition fails with the cause in the user's
terms and stays failed, whatever other batches do, until a run of that batch passes. It is a leaf on
purpose: a failed step stops everything below it in the run, and the roll-ups must still be made over the
batches that passed (a skipped roll-up would show as failed);
``preference_dataset`` (not partitioned: a roll-up over every batch, after the audit over every batch, which
its card quotes) rebuilds the top-level ``exports/preference_pairs.jsonl`` and ``.parquet`` and the Hugging
Face dataset folder ``exports/hf/``. The export does not validate again: the pairs
gate already ran in the step that made the pairs, and its verdict is in the batch's quarantine rows,
which the export reads, so a batch whose gate failed is never published, even when the export is
materialized on its own: its export then succeeds without writing (``published: false``) and leaves what an
earlier run of the batch published as it was.
"""


import json

import dagster as dg
import pandas as pd

from assets.partitions import PROMPT_BATCHES
from assets.resources import PipelineHome
from pref_pipeline.config import PipelineConfig
from pref_pipeline.export import RECENCY_COLUMN
from pref_pipeline.human_sets import HumanSetError
from pref_pipeline.pairing import NotPublished, publish_batch, publish_dataset, publishable

GROUP = "preference_data"


def build_publishing_assets(config: PipelineConfig) -> list:

    @dg.asset(
        group_name=GROUP,
        kinds={"python", "file"},
        partitions_def=PROMPT_BATCHES,
        description="This batch's published pairs: exports/batches/{batch}/preference_pairs.jsonl and .parquet "
        "under the pipeline home. A batch whose pairs gate failed is not published (published: false; what an "
        "earlier run published stays as it was); batch_published says so.",
    )
    def preference_pairs_export(context: dg.AssetExecutionContext, home: PipelineHome,
                                preference_pairs: pd.DataFrame, quarantine: pd.DataFrame) -> dg.MaterializeResult:
        try:
            published = publish_batch(preference_pairs, quarantine, config, home.paths(), context.partition_key)
        except NotPublished as exc:  # batch_published fails with the cause; the roll-ups still run
            context.log.warning(f"batch {context.partition_key!r} {exc}")
            return dg.MaterializeResult(metadata={"published": False, "why": str(exc)})
        metadata: dict = {"published": True, "left_out_by_rebalancing": published.left_out}
        if config.export.recency_half_life_days:
            pairs, reference = published.pairs, published.recency_reference
            metadata.update({"recency_half_life_days": config.export.recency_half_life_days,
                             "recency_reference": str(reference) if reference is not None else "newest pair of the batch",
                             "recency_weight_min": float(pairs[RECENCY_COLUMN].min()) if len(pairs) else None})
        return dg.MaterializeResult(metadata={
            **metadata,
            "dagster/row_count": len(published.pairs),
            "jsonl": dg.MetadataValue.path(str(published.jsonl)),
            "parquet": dg.MetadataValue.path(str(published.parquet)),
        })

    @dg.asset(
        group_name=GROUP,
        kinds={"python"},
        partitions_def=PROMPT_BATCHES,
        deps=["preference_pairs_export"],
        description="Whether this batch is published. A batch its pairs gate blocked (or whose length rebalancing "
        "left too few pairs) fails here with the cause, so its partition shows Failed in the catalog and on the "
        "lineage until a run of that batch passes, whatever other batches do. Nothing depends on it: the "
        "roll-ups are still made over the batches that passed.",
    )
    def batch_published(context: dg.AssetExecutionContext, preference_pairs: pd.DataFrame,
                        quarantine: pd.DataFrame) -> dg.MaterializeResult:
        batch = context.partition_key
        try:
            kept = publishable(preference_pairs, quarantine, config)
        except NotPublished as exc:
            raise dg.Failure(description=blocked_message(batch, str(exc)), metadata={
                "batch": batch, "cause": str(exc).removeprefix("not exported: "),
                "quarantined_rows": len(quarantine),
                "audit_md": dg.MetadataValue.path(f"reports/batches/{batch}/audit.md"),
            }, allow_retries=False) from None
        return dg.MaterializeResult(metadata={"dagster/row_count": len(kept), "batch": batch})

    @dg.asset(
        group_name=GROUP,
        kinds={"python", "file"},
        deps=[dg.AssetDep("preference_pairs_export", partition_mapping=dg.AllPartitionMapping()),
              dg.AssetDep("audit_report")],
        description="The dataset: exports/preference_pairs.jsonl and .parquet under the pipeline home, the union "
        "of every published batch (rebuilt after any batch is published), in TRL's preference format (export.format), "
        "and exports/hf/: a folder datasets.load_dataset loads, with a card saying how the pairs were made and what "
        "the audit found. The human-annotated sets of export.human_sets are mixed in at their shares.",
    )
    def preference_dataset(context: dg.AssetExecutionContext, home: PipelineHome) -> dg.MaterializeResult:
        try:
            published = publish_dataset(config, home.paths())
        except HumanSetError as exc:
            raise dg.Failure(description=f"not published: {exc}") from None
        combined = published.combined
        blocked = blocked_batches(home.paths())
        left_out = {b: why for b, why in blocked.items() if b not in combined.batches}
        earlier = sorted(b for b in blocked if b in combined.batches)
        if left_out:
            context.log.warning(f"{len(left_out)} batch(es) blocked by the pairs gate are left out of the dataset: "
                                f"{', '.join(left_out)}")
        return dg.MaterializeResult(metadata={
            "dagster/row_count": combined.rows,
            "batches": dg.MetadataValue.json(combined.batches),
            # a blocked batch -> why; and blocked batches whose pairs published by an earlier, passing run stay in
            "left_out_batches": dg.MetadataValue.json(left_out),
            "blocked_batches_published_earlier": dg.MetadataValue.json(earlier),
            "format": combined.format,
            "splits": dg.MetadataValue.json(published.splits),
            "human_pairs": combined.added,
            "human_share": dg.MetadataValue.json(published.human_share),
            "jsonl": dg.MetadataValue.path(str(combined.jsonl)),
            "parquet": dg.MetadataValue.path(str(combined.parquet)),
            "hf_dataset": dg.MetadataValue.path(str(published.hf_folder)),
            "card": dg.MetadataValue.md((published.hf_folder / "README.md").read_text(encoding="utf-8")),
        })

    return [preference_pairs_export, batch_published, preference_dataset]


def blocked_batches(home) -> dict[str, str]:
    """Batches the pairs gate blocked in their latest run -> why (the audit over every batch, made just before)."""
    audit_json = home.reports / "audit.json"
    if not audit_json.exists():
        return {}
    by_batch = (json.loads(audit_json.read_text(encoding="utf-8")).get("batches") or {}).get("by_batch") or []
    return {str(b["batch"]): b.get("why") or "" for b in by_batch if b.get("status") == "blocked"}


def blocked_message(batch: str, why: str) -> str:
    """What the run page shows first for a blocked batch: which batch, why, and what makes it pass."""
    return (f"batch {batch!r} is not published: {why.removeprefix('not exported: ')}. Its pairs and the reason are "
            f"in quarantine and its own audit in reports/batches/{batch}/. It stays blocked until a run of this batch "
            "passes: fix the judge or the gates in the configuration, then launch preference_pipeline (or rejudge) "
            "for this partition.")
