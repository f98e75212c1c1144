"""What the asset pages show: short previews of rows, the audit's figures as numbers the UI plots, and the batch
tag every stored row carries."""


import dagster as dg
import pandas as pd

from pref_pipeline import schema

PREVIEW_ROWS = 5
PREVIEW_CHARS = 80


def _short(value):
    if isinstance(value, str) and len(value) > PREVIEW_CHARS:
        return value[:PREVIEW_CHARS] + "…"
    return value


def table_md(frame: pd.DataFrame, columns: list[str], rows: int = PREVIEW_ROWS) -> str:
    """A few rows as Markdown, long text shortened."""
    shown = frame[[c for c in columns if c in frame.columns]].head(rows).copy()
    if shown.empty:
        return "(no rows)"
    for column in shown.columns:
        shown[column] = shown[column].map(_short)
    return shown.to_markdown(index=False)


def preview(frame: pd.DataFrame, columns: list[str]) -> dg.MetadataValue:
    return dg.MetadataValue.md(table_md(frame, columns))


def tag_batch(frame: pd.DataFrame, context: dg.AssetExecutionContext) -> pd.DataFrame:
    """Every stored row says which prompt batch (partition) it belongs to."""
    return schema.with_batch(frame, context.partition_key)


def plotted_figures(headline: dict) -> dict:
    """The audit's headline figures (``pref_pipeline.audit.headline_figures``: overall, per judge, the latest
    drift flip rate per judge) as numeric metadata, which the asset's Plots tab draws over its
    materializations. A figure the audit could not compute is left out rather than stored as null (the report
    says why it is missing)."""
    return {key: value for key, value in headline.items() if value is not None}
