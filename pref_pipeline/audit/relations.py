"""The relations the audit's SQL reads, and how a frame or stored table is set up as one.

Every relation gets every column it is declared with here: a source missing some gets them as typed
NULLs (old tables, hand-made test frames), and a pairs source without stored word counts gets them
counted with ``pref_pipeline.metrics.word_count`` (registered as a DuckDB function), so words are
defined once.
"""

from __future__ import annotations

import duckdb

from pref_pipeline import store
from pref_pipeline.metrics import word_count

# Columns each relation needs, with their types.
PAIRS_SCHEMA = {
    "pair_id": "VARCHAR", "prompt_id": "VARCHAR", "chosen": "VARCHAR", "rejected": "VARCHAR",
    "judge_model_id": "VARCHAR", "category": "VARCHAR", "confidence": "DOUBLE", "judge_fingerprint": "VARCHAR",
    "chosen_candidate_id": "VARCHAR", "rejected_candidate_id": "VARCHAR", "chosen_generator": "VARCHAR",
    "rejected_generator": "VARCHAR", "chosen_strategy": "VARCHAR", "rejected_strategy": "VARCHAR",
    "judged_at": "TIMESTAMPTZ", "chosen_words": "BIGINT", "rejected_words": "BIGINT",
    "generation_method": "VARCHAR", "label_source": "VARCHAR",
}
JUDGMENTS_SCHEMA = {
    "judgment_id": "VARCHAR", "comparison_id": "VARCHAR", "prompt_id": "VARCHAR", "candidate_x_id": "VARCHAR",
    "candidate_y_id": "VARCHAR", "order": "VARCHAR", "judge_model": "VARCHAR", "judge_fingerprint": "VARCHAR",
    "preference": "VARCHAR", "preferred": "VARCHAR", "confidence": "DOUBLE", "parse_status": "VARCHAR",
    "attempts": "BIGINT", "error": "VARCHAR", "judged_at": "TIMESTAMPTZ",
}
COMPARISONS_SCHEMA = {
    "comparison_id": "VARCHAR", "prompt_id": "VARCHAR", "candidate_x_id": "VARCHAR", "candidate_y_id": "VARCHAR",
    "status": "VARCHAR", "winner_id": "VARCHAR", "judge_models": "VARCHAR",
    "strategy": "VARCHAR", "expected_id": "VARCHAR", "judge_status": "VARCHAR", "label_source": "VARCHAR",
}
QUARANTINE_SCHEMA = {"quarantine_id": "VARCHAR", "stage": "VARCHAR", "reason": "VARCHAR", "item_id": "VARCHAR",
                     "pair_id": "VARCHAR"}
# The stored tables' own column types (store.py creates them).
HISTORY_SCHEMA = store.HISTORY_COLUMNS
HUMAN_SCHEMA = store.HUMAN_LABEL_COLUMNS
RELATIONS = {
    "pairs": PAIRS_SCHEMA, "judgments": JUDGMENTS_SCHEMA, "comparisons": COMPARISONS_SCHEMA,
    "quarantine": QUARANTINE_SCHEMA, "judgment_history": HISTORY_SCHEMA, "human_labels": HUMAN_SCHEMA,
}
# Stored table behind each relation in a pipeline database (schema "pref").
STORED_TABLES = {"pairs": "preference_pairs", "judgments": "judgments", "comparisons": "comparisons",
                 "quarantine": "quarantine", "judgment_history": "judgment_history", "human_labels": "human_labels"}
# Columns computed from others when a source lacks them: {relation: {column: SQL over the conformed columns}}.
DERIVED = {"pairs": {"chosen_words": "word_count(chosen)", "rejected_words": "word_count(rejected)"}}
# Quarantine stages that stand for a comparison that did not end up as a published pair.
PAIR_STAGES = ("pairs", "filters", "gate:preference_pairs", "export")


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
