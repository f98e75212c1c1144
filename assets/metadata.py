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


STRATEGY_COLUMNS = (  # (name, type, description) of the per-strategy table, from audit.json's ``strategies``
    ("strategy", "string", "generation method"),
    ("comparisons", "int", "comparisons planned"),
    ("pairs_made", "int", "a winner, by the judges or by construction"),
    ("by_construction", "int", "winner known by construction"),
    ("pairs_kept", "int", "in the dataset after the filters and the gate"),
    ("pct_longer_chosen", "float", "share of pairs whose chosen response is longer"),
    ("judge_agreement", "float", "how often the judges named the constructed winner"),
)


def strategy_table(figures: dict) -> dg.MetadataValue:
    """The audit's per-strategy figures as a table entry (the asset page shows it as a table, not as Markdown)."""
    schema = dg.TableSchema(columns=[dg.TableColumn(name, kind, description=text)
                                     for name, kind, text in STRATEGY_COLUMNS])
    records = []
    for entry in figures.get("strategies") or []:
        agreement = entry.get("judge_agreement") or {}
        records.append(dg.TableRecord({
            "strategy": entry["strategy"], "comparisons": entry["comparisons"], "pairs_made": entry["pairs_made"],
            "by_construction": entry["by_construction"], "pairs_kept": entry["pairs_kept"],
            "pct_longer_chosen": entry["pct_longer_chosen"], "judge_agreement": agreement.get("rate"),
        }))
    return dg.MetadataValue.table(records, schema=schema)


def plot_entries(images: dict[str, str]) -> dict[str, dg.MetadataValue]:
    """Each plot (name -> ``data:`` URI) as a Markdown entry of its own, ``plot.<name>``, beside the report."""
    return {f"plot.{name}": dg.MetadataValue.md(f"![{name}]({uri})") for name, uri in images.items()}


def quarantine_by_kind(figures: dict) -> dg.MetadataValue:
    """What the ``pairs.quarantined`` count is made of: rows by stage and reason (a blocked batch adds one row that
    stands for the batch when only table-level expectations failed, so the count can exceed the comparisons)."""
    rows = (figures.get("quarantine") or {}).get("by_reason") or []
    return dg.MetadataValue.json({f"{row['stage']} / {row['reason']}": row["n"] for row in rows})
