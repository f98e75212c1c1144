"""Publishing: each prompt batch's validated pairs, and the dataset that is the union of them all.

``preference_pairs_export`` (one per batch) writes ``exports/batches/{batch}/``;
``preference_dataset`` (not partitioned: a roll-up over every batch, after the audit over every batch, which
its card quotes) rebuilds the top-level ``exports/preference_pairs.jsonl`` and ``.parquet`` and the Hugging
Face dataset folder ``exports/hf/``. The export does not validate again: the pairs
gate already ran in the step that made the pairs, and its verdict is in the batch's quarantine rows,
which the export reads, so a batch whose gate failed is never published, even when the export is
materialized on its own.
"""


import dagster as dg
import pandas as pd

from assets.partitions import PROMPT_BATCHES
from assets.resources import PipelineHome
from pref_pipeline.config import PipelineConfig
from pref_pipeline.export import RECENCY_COLUMN
from pref_pipeline.human_sets import HumanSetError
from pref_pipeline.pairing import NotPublished, publish_batch, publish_dataset

GROUP = "preference_data"


def build_publishing_assets(config: PipelineConfig) -> list:

    @dg.asset(
        group_name=GROUP,
        kinds={"python", "file"},
        partitions_def=PROMPT_BATCHES,
        description="This batch's published pairs: exports/batches/{batch}/preference_pairs.jsonl and .parquet "
        "under the pipeline home. A batch whose pairs gate failed is not published.",
    )
    def preference_pairs_export(context: dg.AssetExecutionContext, home: PipelineHome,
                                preference_pairs: pd.DataFrame, quarantine: pd.DataFrame) -> dg.MaterializeResult:
        try:
            published = publish_batch(preference_pairs, quarantine, config, home.paths(), context.partition_key)
        except NotPublished as exc:
            raise dg.Failure(description=str(exc)) from None
        metadata: dict = {"left_out_by_rebalancing": published.left_out}
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
        kinds={"python", "file"},
        deps=[dg.AssetDep("preference_pairs_export", partition_mapping=dg.AllPartitionMapping()),
              dg.AssetDep("audit_report")],
        description="The dataset: exports/preference_pairs.jsonl and .parquet under the pipeline home, the union "
        "of every published batch (rebuilt after any batch is published), in TRL's preference format (export.format), "
        "and exports/hf/: a folder datasets.load_dataset loads, with a card saying how the pairs were made and what "
        "the audit found. The human-annotated sets of export.human_sets are mixed in at their shares.",
    )
    def preference_dataset(home: PipelineHome) -> dg.MaterializeResult:
        try:
            published = publish_dataset(config, home.paths())
        except HumanSetError as exc:
            raise dg.Failure(description=f"not published: {exc}") from None
        combined = published.combined
        return dg.MaterializeResult(metadata={
            "dagster/row_count": combined.rows,
            "batches": dg.MetadataValue.json(combined.batches),
            "format": combined.format,
            "splits": dg.MetadataValue.json(published.splits),
            "human_pairs": combined.added,
            "human_share": dg.MetadataValue.json(published.human_share),
            "jsonl": dg.MetadataValue.path(str(combined.jsonl)),
            "parquet": dg.MetadataValue.path(str(combined.parquet)),
            "hf_dataset": dg.MetadataValue.path(str(published.hf_folder)),
            "card": dg.MetadataValue.md((published.hf_folder / "README.md").read_text(encoding="utf-8")),
        })

    return [preference_pairs_export, preference_dataset]
