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


def table_metadata(rows: list[dict], columns: dict[str, str], descriptions: dict[str, str] | None = None
                   ) -> dg.MetadataValue:
    """Rows of an audit figure as a Dagster table (``columns``: name -> type, "string", "int" or "float"; optional
    column ``descriptions``), which the asset's page shows as a table."""
    descriptions = descriptions or {}
    schema_ = dg.TableSchema(columns=[dg.TableColumn(name, kind, description=descriptions.get(name))
                                      for name, kind in columns.items()])
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
    rows = [{**entry, "judge_agreement": (entry.get("judge_agreement") or {}).get("rate")}
            for entry in figures.get("strategies") or []]
    return table_metadata(rows, {name: kind for name, kind, _ in STRATEGY_COLUMNS},
                          {name: text for name, _, text in STRATEGY_COLUMNS})


def plot_entries(images: dict[str, str]) -> dict[str, dg.MetadataValue]:
    """Each plot (name -> ``data:`` URI) as a Markdown entry of its own, ``plot.<name>``, beside the report."""
    return {f"plot.{name}": dg.MetadataValue.md(f"![{name}]({uri})") for name, uri in images.items()}


def quarantine_by_kind(figures: dict) -> dg.MetadataValue:
    """What the ``pairs.quarantined`` count is made of: rows by stage and reason (a blocked batch adds one row that
    stands for the batch when only table-level expectations failed, so the count can exceed the comparisons)."""
    rows = (figures.get("quarantine") or {}).get("by_reason") or []
    return dg.MetadataValue.json({f"{row['stage']} / {row['reason']}": row["n"] for row in rows})
