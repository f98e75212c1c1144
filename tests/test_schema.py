"""One declaration per table: typed frames, DDL, GX column expectations and the Dagster column schema agree."""

from __future__ import annotations

import dagster as dg
import duckdb
import pandas as pd
import pytest

from assets.column_schema import column_schema_metadata
from assets.resources import PipelineHome, PipelineIOManager
from pref_pipeline import gates, schema, table_files
from pref_pipeline.paths import Home
from tests.helpers import prompts_frame

# What DuckDB's DESCRIBE calls each declared type.
DESCRIBED = {"VARCHAR": "VARCHAR", "BIGINT": "BIGINT", "INTEGER": "INTEGER", "DOUBLE": "DOUBLE", "BOOLEAN": "BOOLEAN",
             "TIMESTAMPTZ": "TIMESTAMP WITH TIME ZONE"}


def described(con: duckdb.DuckDBPyConnection, relation: str) -> dict[str, str]:
    return {name: kind for name, kind, *_ in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()}


@pytest.mark.parametrize("table", list(schema.TABLES))
def test_empty_and_all_null_frames_keep_their_declared_types_in_duckdb(table):
    """An empty or all-null frame would otherwise reach DuckDB as its NULL type and refuse later values."""
    expected = {name: DESCRIBED[kind] for name, kind in schema.duckdb_types(table).items()}
    all_null = schema.conform(table, pd.DataFrame({name: [None, None] for name in schema.names(table, True)},
                                                  dtype=object))
    con = duckdb.connect()
    for frame in (schema.empty(table, with_optional=True), all_null):
        assert list(frame.columns) == schema.names(table, with_optional=True)
        assert dict(frame.dtypes.astype(str)) == schema.dtypes(table)
        con.register("frame", frame)
        assert described(con, "frame") == expected
        con.unregister("frame")


@pytest.mark.parametrize("table", list(schema.TABLES))
def test_ddl_creates_the_declared_table_and_typed_frames_fit_it(table):
    con = duckdb.connect()
    con.execute("CREATE SCHEMA pref")
    con.execute(schema.ddl(table, "pref"))
    con.execute(schema.ddl(table, "pref"))  # IF NOT EXISTS
    assert described(con, f"pref.{table}") == {n: DESCRIBED[k] for n, k in schema.duckdb_types(table).items()}
    values = [{"VARCHAR": "x", "BIGINT": 3, "INTEGER": 2, "DOUBLE": 0.5, "BOOLEAN": True,
               "TIMESTAMPTZ": pd.Timestamp("2026-01-01", tz="UTC")},
              {"VARCHAR": "y", "BIGINT": 4, "INTEGER": 1, "DOUBLE": 0.25, "BOOLEAN": False,
               "TIMESTAMPTZ": pd.Timestamp("2026-01-02", tz="UTC")}]
    columns = schema.table(table).columns
    full = {c.name: values[0][c.kind] for c in columns}
    sparse = {c.name: None if c.nullable else values[1][c.kind] for c in columns}  # every nullable column null
    frame = schema.conform(table, pd.DataFrame([full, sparse]).astype(object))
    con.register("frame", frame)
    con.execute(f"INSERT INTO pref.{table} SELECT * FROM frame")
    assert con.execute(f"SELECT count(*) FROM pref.{table}").fetchone()[0] == 2


def test_conform_orders_types_and_keeps_extra_columns():
    frame = pd.DataFrame({"extra": [1], "confidence": ["0.5"], "pair_id": ["pair-1"], "batch_id": ["b1"]})
    out = schema.conform("preference_pairs", frame)
    assert list(out.columns) == schema.names("preference_pairs") + ["batch_id", "extra"]
    assert out.loc[0, "confidence"] == 0.5 and str(out["judged_at"].dtype) == "datetime64[ns, UTC]"
    assert "chosen_words" not in out.columns  # optional columns are never added
    assert list(schema.conform("preference_pairs", frame, add_missing=False).columns) == [
        "pair_id", "confidence", "batch_id", "extra"]
    with pytest.raises(ValueError, match="preference_pairs.confidence"):
        schema.conform("preference_pairs", pd.DataFrame({"confidence": ["high"]}))


def test_gate_column_expectations_come_from_the_declaration():
    prompts = prompts_frame()
    assert gates.validate_prompts(prompts).success
    broken = prompts.drop(columns=["source"]).assign(category=[None, "creative"])
    labels = {f["label"] for f in gates.validate_prompts(broken).failures}
    assert labels == {"expect_column_to_exist(source)", "expect_column_values_to_be_of_type(source)",
                      "expect_column_values_to_not_be_null(category)"}
    # Every required column is checked to exist; every non-nullable one not to be null.
    kinds = [type(e).__name__ for e in schema.gx_expectations("prompts")]
    required = [c for c in schema.table("prompts").columns if c.required]
    assert kinds.count("ExpectColumnToExist") == len(required)
    assert kinds.count("ExpectColumnValuesToNotBeNull") == sum(not c.nullable for c in required)


def test_column_schema_metadata_describes_every_column():
    spec = column_schema_metadata("judgments")["dagster/column_schema"]
    assert [(c.name, c.type, c.description) for c in spec.columns] == schema.columns("judgments")
    by_name = {c.name: c for c in spec.columns}
    assert by_name["judgment_id"].constraints.nullable is False and "row id" in by_name["judgment_id"].constraints.other
    assert by_name["confidence"].constraints.nullable is True
    labels = column_schema_metadata("human_labels")["dagster/column_schema"]
    assert [c.name for c in labels.columns if c.constraints.unique] == ["label_id"]

    @dg.asset(metadata=column_schema_metadata("comparisons"))
    def comparisons() -> None: ...

    shown = comparisons.specs_by_key[dg.AssetKey("comparisons")].metadata["dagster/column_schema"]
    shown = getattr(shown, "schema", shown)  # a TableSchema, or its metadata value once normalised
    assert isinstance(shown, dg.TableSchema)
    assert [c.name for c in shown.columns] == schema.names("comparisons", with_optional=True)


def test_io_manager_stores_an_all_null_batch_then_a_batch_with_values(tmp_path):
    """The first batch has no winner at all (and the second no comparison): the table still takes later values."""
    batches = dg.StaticPartitionsDefinition(["a", "b", "c"])
    rows = {
        "a": [{"comparison_id": "cmp-1", "status": "tie", "winner_id": None}],
        "b": [],
        "c": [{"comparison_id": "cmp-2", "status": "consistent", "winner_id": "c9"}],
    }

    @dg.asset(partitions_def=batches)
    def comparisons(context):
        frame = pd.DataFrame(rows[context.partition_key], columns=schema.names("comparisons"), dtype=object)
        return frame.assign(batch_id=context.partition_key)

    stored_home = Home.at(tmp_path / "home")
    home_resource = PipelineHome(root=str(stored_home.root))
    resources = {"io_manager": PipelineIOManager(home=home_resource)}
    for key in ("a", "b", "c"):
        assert dg.materialize([comparisons], partition_key=key, resources=resources).success
    with table_files.connect(stored_home) as con:
        types = described(con, "pref.comparisons")
        stored = con.execute("SELECT batch_id, winner_id FROM pref.comparisons ORDER BY batch_id").fetchall()
    assert types["winner_id"] == "VARCHAR" and types["judge_models"] == "VARCHAR"
    assert stored == [("a", None), ("c", "c9")]
