"""The relations the audit's SQL reads, and how a frame or stored table is set up as one.

Every relation gets every column it is declared with here: a source missing some gets them as typed
NULLs (old tables, hand-made test frames), and a pairs source without stored word counts gets them
counted with ``pref_pipeline.metrics.word_count`` (registered as a DuckDB function), so words are
defined once.
"""

from __future__ import annotations

import duckdb

from pref_pipeline import schema
from pref_pipeline.metrics import word_count

# Stored table behind each relation in a pipeline database (schema "pref").
STORED_TABLES = {"pairs": "preference_pairs", "judgments": "judgments", "comparisons": "comparisons",
                 "quarantine": "quarantine", "judgment_history": "judgment_history", "human_labels": "human_labels",
                 "candidates": "candidates"}
# The columns each relation's SQL reads; their types come from the one schema (pref_pipeline/schema.py).
NEEDED = {
    "pairs": ["pair_id", "prompt_id", "chosen", "rejected", "judge_model_id", "category", "confidence",
              "judge_fingerprint", "chosen_candidate_id", "rejected_candidate_id", "chosen_generator",
              "rejected_generator", "chosen_strategy", "rejected_strategy", "judged_at", "chosen_words",
              "rejected_words", "generation_method", "label_source", "batch_id"],
    "judgments": ["judgment_id", "comparison_id", "prompt_id", "candidate_x_id", "candidate_y_id", "order",
                  "judge_model", "judge_fingerprint", "preference", "preferred", "confidence", "parse_status",
                  "attempts", "error", "judged_at"],
    "comparisons": ["comparison_id", "prompt_id", "candidate_x_id", "candidate_y_id", "status", "winner_id",
                    "judge_models", "strategy", "expected_id", "judge_status", "label_source", "machine_status",
                    "machine_winner_id", "machine_label_source", "human_winner_id", "n_human_labels", "batch_id"],
    "quarantine": ["quarantine_id", "stage", "reason", "item_id", "pair_id", "detail", "batch_id"],
    "judgment_history": schema.names("judgment_history"),
    "human_labels": schema.names("human_labels"),
    "candidates": ["candidate_id", "generator_model"],  # who generated what (self-preference)
}


def _typed(relation: str) -> dict[str, str]:
    kinds = schema.duckdb_types(STORED_TABLES[relation])
    return {column: kinds[column] for column in NEEDED[relation]}


RELATIONS = {relation: _typed(relation) for relation in NEEDED}
PAIRS_SCHEMA, JUDGMENTS_SCHEMA, COMPARISONS_SCHEMA, QUARANTINE_SCHEMA, HISTORY_SCHEMA, HUMAN_SCHEMA = (
    RELATIONS[r] for r in ("pairs", "judgments", "comparisons", "quarantine", "judgment_history", "human_labels"))
# Columns computed from others when a source lacks them: {relation: {column: SQL over the conformed columns}}.
DERIVED = {"pairs": {"chosen_words": "word_count(chosen)", "rejected_words": "word_count(rejected)"}}


def register_functions(con: duckdb.DuckDBPyConnection) -> None:
    """``word_count(text)``: the Python metric, so that SQL and pandas count words the same way."""
    if con.execute("SELECT count(*) FROM duckdb_functions() WHERE function_name = 'word_count'").fetchall()[0][0]:
        return
    con.create_function("word_count", word_count, [duckdb.sqltype("VARCHAR")], duckdb.sqltype("BIGINT"),
                        null_handling="special")


def conform(con: duckdb.DuckDBPyConnection, name: str, source: str | None) -> set[str]:
    """A temp view ``name`` over ``source`` (a table or registered frame; None: empty) with every column
    of the relation's schema, typed. Returns the columns the source really has."""
    schema = RELATIONS[name]
    if source is None:
        body = ", ".join(f'CAST(NULL AS {kind}) AS "{column}"' for column, kind in schema.items())
        con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT {body} WHERE false")
        return set()
    present = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
    to_derive = {column: expression for column, expression in DERIVED.get(name, {}).items() if column not in present}
    extra = [f'CAST(NULL AS {kind}) AS "{column}"' for column, kind in schema.items()
             if column not in present and column not in to_derive]
    casts = [f'TRY_CAST("{c}" AS {kind}) AS "{c}"' if kind != "VARCHAR" else f'CAST("{c}" AS VARCHAR) AS "{c}"'
             for c, kind in schema.items() if c in present]
    others = [f'"{c}"' for c in present if c not in schema]
    body = f"SELECT {', '.join(casts + extra + others)} FROM {source}"
    if to_derive:
        register_functions(con)
        computed = ", ".join(f'CAST({expression} AS {schema[c]}) AS "{c}"' for c, expression in to_derive.items())
        body = f"SELECT *, {computed} FROM ({body})"
    con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS {body}")
    return present
