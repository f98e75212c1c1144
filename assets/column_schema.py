"""The Dagster column schema (``dagster/column_schema``) of each stored table, from ``pref_pipeline.schema``.

Attached as definition metadata, it fills the Columns tab of every asset's page before the asset
first runs: each column's DuckDB type, description, whether it may be null, whether it is required
(the stage's gate checks it) and whether it is the row's id.
"""

import dagster as dg

from pref_pipeline import schema


def table_schema(table: str) -> dg.TableSchema:
    spec = schema.table(table)
    unique = spec.key[0] if len(spec.key) == 1 else None  # a single-column primary key
    columns = []
    for name, kind, description in schema.columns(table):
        column = spec.by_name[name]
        notes = ((name == spec.id_column, "row id"), (column.required, "required"),
                 (column.optional, "added by a later step"))
        other = [note for flag, note in notes if flag]
        columns.append(dg.TableColumn(name=name, type=kind, description=description,
                                      constraints=dg.TableColumnConstraints(nullable=column.nullable,
                                                                            unique=name == unique, other=other)))
    constraints = dg.TableConstraints(other=[f"primary key ({', '.join(spec.key)})"]) if spec.key else None
    return dg.TableSchema(columns=columns, constraints=constraints)


def column_schema_metadata(table: str) -> dict:
    """``{"dagster/column_schema": TableSchema}`` for an asset's ``metadata=`` (or an ``AssetOut``'s)."""
    return {"dagster/column_schema": table_schema(table)}
