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


def _cell(value):
    """A table cell Dagster can show: str, int, float, bool or None (an interval as "low–high")."""
    if isinstance(value, (list, tuple)):
        return "–".join(str(v) for v in value) if value else None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def table_metadata(rows: list[dict], columns: dict[str, str]) -> dg.MetadataValue:
    """Rows of an audit figure as a Dagster table (``columns``: name -> type, "string", "int" or "float"), which the
    asset's page shows as a table."""
    schema_ = dg.TableSchema(columns=[dg.TableColumn(name, kind) for name, kind in columns.items()])
    records = [dg.TableRecord({name: _cell(row.get(name)) for name in columns}) for row in rows]
    return dg.MetadataValue.table(records=records, schema=schema_)


AGREEMENT_COLUMNS = {"n": "int", "agreement_rate": "float", "ci95": "string"}


def human_agreement_tables(figures: dict) -> dict:
    """The audit's human-agreement figures as tables: people against the machine's decision (the exported pair,
    judges' or construction's) by strategy, label source, category and labeller; every disagreement; annotator
    drift by week; inter-annotator kappa."""
    human = (figures.get("agreement") or {}).get("human") or {}
    tables = {f"human_agreement.{key}": table_metadata(human.get(key) or [], {key.removeprefix("by_"): "string",
                                                                            **AGREEMENT_COLUMNS})
              for key in ("by_strategy", "by_label_source", "by_category", "by_labeller")}
    disagreements = (human.get("disagreements") or {}).get("rows") or []
    tables["human_agreement.disagreements"] = table_metadata(disagreements, {
        "comparison_id": "string", "strategy": "string", "label_source": "string", "category": "string",
        "labeller": "string", "human_winner_id": "string", "machine_winner_id": "string"})
    tables["human_agreement.inter_annotator"] = table_metadata(human.get("inter_annotator") or [], {
        "labeller_a": "string", "labeller_b": "string", "n": "int", "observed_agreement": "float", "kappa": "float"})
    tables["human_agreement.annotator_weekly"] = table_metadata((figures.get("drift") or {}).get("annotators") or [], {
        "labeller": "string", "week": "string", "n_labels": "int", "n_decisive": "int", "n_with_pair": "int",
        "n_agree": "int", "agreement_rate": "float", "agreement_ci95": "string"})
    return tables
