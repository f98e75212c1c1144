"""Publishing: each prompt batch's validated pairs, and the dataset that is the union of them all.

``preference_pairs_export`` (one per batch) writes ``exports/batches/{batch}/``;
``preference_dataset`` (not partitioned: a roll-up over every batch) rebuilds the top-level
``exports/preference_pairs.jsonl`` and ``.parquet``. The export does not validate again: the pairs
gate already ran in the step that made the pairs, and its verdict is in the batch's quarantine rows,
which the export reads, so a batch whose gate failed is never published, even when the export is
materialized on its own.
"""


import dagster as dg
import pandas as pd

from assets.resources import PipelineHome
from assets.partitions import PROMPT_BATCHES
from pref_pipeline import store
from pref_pipeline.config import PipelineConfig
from pref_pipeline.export import RECENCY_COLUMN, combine_published, export_pairs, published_batches, with_recency_weight
from pref_pipeline.quarantine import EXPORT_STAGE, PAIRS_GATE_STAGE

GROUP = "preference_data"


def publishable(pairs: pd.DataFrame, quarantine: pd.DataFrame, config: PipelineConfig) -> pd.DataFrame:
    """The batch's pairs to publish; ``dg.Failure`` when the pairs gate rejected the batch."""
    stages = quarantine["stage"] if len(quarantine) else pd.Series(dtype="string")
    rejected = quarantine[stages == PAIRS_GATE_STAGE]
    if len(rejected):
        raise dg.Failure(description=f"not exported: the pairs gate rejected this batch "
                         f"({rejected['detail'].iloc[0]})")
    left_out = set(quarantine.loc[stages == EXPORT_STAGE, "item_id"])
    kept = pairs[~pairs["pair_id"].isin(left_out)] if left_out else pairs
    if left_out and len(kept) < config.gates.min_pairs:
        raise dg.Failure(description=f"not exported: length rebalancing left {len(kept)} pair(s), fewer than "
                         f"gates.min_pairs = {config.gates.min_pairs}")
    return kept.reset_index(drop=True)


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
        paths = home.paths()
        pairs = publishable(preference_pairs, quarantine, config)
        metadata: dict = {"left_out_by_rebalancing": len(preference_pairs) - len(pairs)}
        half_life = config.export.recency_half_life_days
        if half_life:
            # Age counted from the newest verdict stored in any batch (or this batch's newest, if later).
            newest = store.newest_verdict(paths)
            pairs = with_recency_weight(pairs, half_life, newest)
            metadata.update({"recency_half_life_days": half_life,
                             "recency_reference": str(newest) if newest is not None else "newest pair of the batch",
                             "recency_weight_min": float(pairs[RECENCY_COLUMN].min()) if len(pairs) else None})
        written = export_pairs(pairs, paths.batch_exports(context.partition_key))
        return dg.MaterializeResult(metadata={
            **metadata,
            "dagster/row_count": len(pairs),
            "jsonl": dg.MetadataValue.path(str(written["jsonl"])),
            "parquet": dg.MetadataValue.path(str(written["parquet"])),
        })

    @dg.asset(
        group_name=GROUP,
        kinds={"python", "file"},
        deps=[dg.AssetDep("preference_pairs_export", partition_mapping=dg.AllPartitionMapping())],
        description="The dataset: exports/preference_pairs.jsonl and .parquet under the pipeline home, the union "
        "of every published batch (rebuilt after any batch is published).",
    )
    def preference_dataset(home: PipelineHome) -> dg.MaterializeResult:
        exports = home.paths().exports
        written = combine_published(exports)
        rows = sum(1 for line in written["jsonl"].read_text(encoding="utf-8").splitlines() if line.strip())
        return dg.MaterializeResult(metadata={
            "dagster/row_count": rows,
            "batches": dg.MetadataValue.json([p.name for p in published_batches(exports)]),
            "jsonl": dg.MetadataValue.path(str(written["jsonl"])),
            "parquet": dg.MetadataValue.path(str(written["parquet"])),
        })

    return [preference_pairs_export, preference_dataset]
