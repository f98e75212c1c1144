"""Every table's columns, declared once: name, DuckDB type, pandas dtype, required/nullable, description.

The rest is derived from these declarations, so a column is added or retyped in one place:

- ``conform(table, frame)`` / ``empty(table)`` / ``from_rows(table, rows)``: frames whose columns have
  their declared dtype even when empty or all null (DuckDB would store an all-null object column with
  its NULL type, which then refuses every later batch's values);
- ``ddl(table, schema_name)``: a ``CREATE TABLE`` statement (tests and benchmarks that build a database);
- ``gx_expectations(table)``: Great Expectations column expectations: each required column exists, is
  not null unless nullable, and holds values of its type (``gates.py``);
- ``columns(table)``: (name, type, description) for the Dagster column schema (``assets/column_schema.py``).

``required`` columns must be present in a frame a gate checks; ``nullable=False`` columns must also have a
value in every row (only required columns can be non-nullable). ``optional`` columns are added by a later
step (the word counts by the filters, ``batch_id`` by the Dagster layer): ``conform`` types them when
present and never adds them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import pandas as pd

# pandas dtype of each DuckDB type: nullable extension types, so an all-null column keeps its type.
PANDAS_DTYPES = {
    "VARCHAR": "string",
    "BIGINT": "Int64",
    "INTEGER": "Int32",
    "DOUBLE": "float64",
    "BOOLEAN": "boolean",
    "TIMESTAMPTZ": "datetime64[ns, UTC]",
}
# The dtype names Great Expectations accepts for a column of each kind.
INT_TYPES = ["int", "int8", "int16", "int32", "int64", "Int8", "Int16", "Int32", "Int64", "uint8", "uint16", "uint32",
             "uint64"]
FLOAT_TYPES = ["float", "float16", "float32", "float64", "Float32", "Float64"]
NUMERIC_TYPES = INT_TYPES + FLOAT_TYPES
BATCH_COLUMN = "batch_id"


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # DuckDB type
    description: str
    required: bool = False  # a gate fails when the column is missing
    nullable: bool = True  # False: a gate fails on a null (required columns only)
    optional: bool = False  # added by a later step: typed when present, never added by ``conform``

    def __post_init__(self) -> None:
        if self.kind not in PANDAS_DTYPES:
            raise ValueError(f"column {self.name}: unknown DuckDB type {self.kind}")
        if not self.nullable and not self.required:
            raise ValueError(f"column {self.name}: a non-nullable column must be required (the gate checks it)")

    @property
    def dtype(self) -> str:
        """The pandas dtype of this column."""
        return PANDAS_DTYPES[self.kind]


@dataclass(frozen=True)
class Table:
    name: str
    description: str
    columns: tuple[Column, ...]
    id_column: str | None = None  # the column that names a row (quarantine and gate failures cite it)
    key: tuple[str, ...] = ()  # primary key of the stored table, when the store keeps one
    by_name: dict[str, Column] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {c.name: c for c in self.columns})


def _text(name: str, description: str, **flags) -> Column:
    return Column(name, "VARCHAR", description, **flags)


def _id(name: str, description: str) -> Column:
    return Column(name, "VARCHAR", description, required=True, nullable=False)


_BATCH = _text(BATCH_COLUMN, "The prompt batch (Dagster partition) the row belongs to.", optional=True)

PROMPTS = Table("prompts", "Prompts of one batch, exact repeats dropped.", (
    _id("prompt_id", "Stable id: the source's own, or a hash of the text (a conversation's: of every turn)."),
    _text("prompt", "The prompt text, stripped; a conversation rendered as text (User: ..., Assistant: ...).",
          required=True, nullable=False),
    _text("category", "Category from the source (or 'uncategorized').", required=True, nullable=False),
    _text("reference", "A reference answer, when the source has one."),
    _text("source", "The file (or builtin:…) the prompt came from.", required=True),
    _text("messages", "The conversation, when the prompt is one: JSON [{role, content}, ...] ending with the user "
          "turn to answer (``prompt`` is then the conversation rendered as text)."),
    _BATCH,
), id_column="prompt_id")

CANDIDATES = Table("candidates", "Candidate responses, several per prompt; a failed call keeps its error.", (
    _id("candidate_id", "Hash of prompt, generator, index and seed."),
    _id("prompt_id", "The prompt answered."),
    Column("candidate_index", "BIGINT", "Position of the candidate among the prompt's candidates.", required=True,
           nullable=False),
    _text("text", "The response (empty when the call failed).", required=True),
    _text("strategy", "How the candidate was made (sampling, known_answer, …)."),
    _text("generator_model", "The generator, as provider:model.", required=True, nullable=False),
    _text("generator_label", "The generator's label in the configuration.", required=True, nullable=False),
    _text("sampling", "Sampling parameters and seed, as JSON.", required=True),
    _text("system_prompt", "The generator's system prompt, if any."),
    _text("served_model", "The model name the server reported."),
    Column("input_tokens", "BIGINT", "Prompt tokens of the call."),
    Column("output_tokens", "BIGINT", "Completion tokens of the call."),
    _text("finish_reason", "Why generation stopped (stop, length, …)."),
    Column("latency_s", "DOUBLE", "Seconds the call took."),
    _text("error", "The error of a call that failed after retries.", required=True),
    Column("created_at", "TIMESTAMPTZ", "When the candidate was made.", required=True, nullable=False),
    Column("pointwise_score", "DOUBLE", "The candidate's score where a strategy scores its candidates: the mean 1-10 "
           "score of the pointwise judges (score_extremes, best_of_n), or a rule's score (best_of_n)."),
    _text("pointwise_scores", "Each scorer's score, as JSON {judge fingerprint or rule:<name>: score or null}."),
    _text("role", "The candidate's part in its strategy: sample, gold, answer, corrupted, corrupted_<k> (a graded "
          "chain's k-th copy), original, revised, alternative, strong, weak, good_shots, poor_shots, fewer_shots, "
          "follow, violate, human, model, best, worst, random, and axiomatic's negatives (off_topic, truncated, "
          "unsupported_claim, false_claim, hedge)."),
    _text("parent_id", "The candidate this one was derived from (a revision's original, a corrupted copy's gold)."),
    _text("strategy_params", "The strategy's parameters, as JSON."),
    _text("notes", "What the strategy recorded while making it (critique text, edit kind, ...), as JSON."),
    _BATCH,
), id_column="candidate_id")

JUDGMENTS = Table("judgments", "One verdict per (comparison, order, judge).", (
    _id("judgment_id", "Hash of comparison, judge fingerprint and order."),
    _id("comparison_id", "Hash of the prompt and the two candidates."),
    _text("prompt_id", "The prompt of the comparison."),
    _id("candidate_x_id", "First candidate of the comparison."),
    _id("candidate_y_id", "Second candidate of the comparison."),
    _id("order", "xy: candidate x shown as A; yx: candidate y shown as A."),
    _id("judge_model", "The judge, as provider:model."),
    _id("judge_fingerprint", "Hash of the judge configuration (model, template, criteria, parameters)."),
    _text("judge_type", "pairwise, pointwise or rule."),
    _text("criteria", "What the judge was asked to prefer (the rubric's or rule's name)."),
    _text("preference", "The verdict as shown: A, B or tie (null: unparseable, failed or a rule abstaining).",
          required=True),
    _text("preferred", "The verdict in candidates: x, y or tie.", required=True),
    Column("confidence", "DOUBLE", "The judge's confidence in [0, 1] (pointwise: score gap / 9).", required=True),
    _text("confidence_word", "The judge's confidence as it wrote it, when a word (high, medium, low; its number is "
          "confidence)."),
    Column("logprob_margin", "DOUBLE", "P(A) - P(B) at the verdict's label token, from the provider's logprobs."),
    Column("label_probability", "DOUBLE", "Probability (over A and B) of the label given, from the logprobs."),
    Column("score_x", "DOUBLE", "Pointwise judges: candidate x's 1-10 score."),
    Column("score_y", "DOUBLE", "Pointwise judges: candidate y's 1-10 score."),
    _text("reasoning", "The judge's reasoning."),
    _text("parse_status", "ok, truncated, unparseable, or not_applicable (a rule abstaining).", required=True),
    _text("parse_error", "Why the output could not be read."),
    Column("attempts", "BIGINT", "Calls made for this verdict (retries of unparseable output included)."),
    _text("raw_output", "The judge's last output, verbatim."),
    _text("failed_outputs", "Outputs that could not be parsed, as a JSON list."),
    _text("served_model", "The model name the server reported."),
    Column("input_tokens", "BIGINT", "Prompt tokens of the call(s)."),
    Column("output_tokens", "BIGINT", "Completion tokens of the call(s)."),
    Column("latency_s", "DOUBLE", "Seconds the call(s) took."),
    _text("error", "The error of a call that failed after retries.", required=True),
    Column("judged_at", "TIMESTAMPTZ", "When the verdict was given.", required=True, nullable=False),
    _BATCH,
), id_column="judgment_id")

COMPARISONS = Table("comparisons", "Every judged comparison with its outcome; nothing is dropped without a trace.", (
    _id("comparison_id", "Hash of the prompt and the two candidates."),
    _text("prompt_id", "The prompt of the comparison."),
    _text("candidate_x_id", "First candidate."),
    _text("candidate_y_id", "Second candidate."),
    _id("status", "consistent, tie, inconsistent, unparseable, error, judges_disagree or no_vote (judged); "
        "construction (decided by how the candidates were made), judge_disagrees_with_construction, or a strategy's "
        "no-pair reason (no_reference, revision_identical, corruption_out_of_bounds, score_tie, ...); awaiting_label "
        "(no judge asked, nobody labelled it yet: human_ranked), human (people decided against or without the machine) "
        "or human_tie (people labelled it a tie: no pair)."),
    _text("winner_id", "The candidate the panel chose (consistent only), or the construction's."),
    _text("judge_models", "The judges, '+'-joined."),
    _text("judge_fingerprints", "The judges' fingerprints, '+'-joined."),
    _text("strategy", "The strategy that planned the comparison."),
    _text("expected_id", "The winner by construction, when the strategy knows it."),
    _text("judge_status", "What the judges' verdicts alone gave (null: no judge was asked)."),
    _text("label_source", "Where the winner comes from: construction, judge, construction+judge, human, human+judge "
          "or human+construction (people labelled it; +: the machine agreed)."),
    _text("detail", "Why a planned comparison gave no pair, when the construction says so."),
    _text("aggregation", "How the judges' verdicts were combined: unanimous, majority or weighted."),
    _text("votes", "Every judge's verdicts in both orders, its status, vote and weight, as JSON."),
    _text("vote", "The tally: weight for x, y, tie and abstaining, as JSON."),
    Column("agreement", "DOUBLE", "Share of the panel's weight that voted for the decision."),
    Column("confidence", "DOUBLE", "The decision's confidence: agreement x the mean verdict confidence of its voters "
           "(the label probability from logprobs where there is one)."),
    _text("machine_status", "The status before human labels were applied (what the judges or the construction gave)."),
    _text("machine_winner_id", "The winner before human labels: the judges' or the construction's (null: no pair)."),
    _text("machine_label_source", "label_source before human labels (judge, construction, construction+judge)."),
    _text("human_winner_id", "The people's decision: the majority of the labellers' decisive labels (null: no label, "
          "ties, or labellers split evenly)."),
    Column("n_human_labels", "INTEGER", "Labellers who labelled the comparison (0: none)."),
    _BATCH,
), id_column="comparison_id")

PREFERENCE_PAIRS = Table("preference_pairs", "(prompt, chosen, rejected) with the metadata that proves how each "
                         "pair was made.", (
    _id("pair_id", "pair- and the comparison's hash."),
    _text("prompt_id", "The prompt."),
    _text("prompt", "The prompt text (a conversation rendered as text).", required=True, nullable=False),
    _text("chosen", "The response every judge preferred in both orders.", required=True, nullable=False),
    _text("rejected", "The other response.", required=True, nullable=False),
    _text("generation_method", "How the pair was made: the strategy's method (sampling, gold_corruption, ...; "
          "llm_as_judge when pairs are built without a plan).", required=True, nullable=False),
    _text("judge_model_id", "The judges' models without provider, '+'-joined.", required=True, nullable=False),
    _text("criteria", "The judges' criteria, '+'-joined.", required=True, nullable=False),
    _text("category", "The prompt's category."),
    Column("confidence", "DOUBLE", "The panel's confidence in the pair (comparisons.confidence).", required=True),
    _text("verdict_ab", "Verdicts in the order x, y (one per judge, '|'-joined)."),
    _text("verdict_ba", "Verdicts in the order y, x (one per judge, '|'-joined)."),
    _text("reasoning", "The first judge's reasoning."),
    _text("judge_fingerprint", "The judges' fingerprints, '+'-joined.", required=True, nullable=False),
    _text("chosen_candidate_id", "Candidate id of the chosen response."),
    _text("rejected_candidate_id", "Candidate id of the rejected response."),
    _text("chosen_model", "Generator model of the chosen response."),
    _text("rejected_model", "Generator model of the rejected response."),
    _text("chosen_generator", "Generator label of the chosen response."),
    _text("rejected_generator", "Generator label of the rejected response."),
    _text("chosen_sampling", "Sampling parameters of the chosen response (JSON)."),
    _text("rejected_sampling", "Sampling parameters of the rejected response (JSON)."),
    _text("chosen_strategy", "Strategy that made the chosen response."),
    _text("rejected_strategy", "Strategy that made the rejected response."),
    Column("judged_at", "TIMESTAMPTZ", "The newest verdict behind the pair."),
    Column("generated_at", "TIMESTAMPTZ", "When the newer of the two responses was made."),
    _text("label_source", "Where the label comes from: construction, judge, or construction+judge (judges "
          "confirmed the construction); human (people labelled it), human+judge or human+construction (people agreed "
          "with the judges or the construction); human_set (a human-annotated set mixed in)."),
    _text("strategy_params", "The parameters of the strategy that made the pair, as JSON."),
    _text("judgment", "The judge's reasoning for the chosen response (the seed's `judgment`): the first reasoning of "
          "a verdict that preferred it; null when no judge decided the pair."),
    _text("critique", "The critique of the rejected response that the chosen one answers (critique_revise: the "
          "revision's notes), when the strategy made one."),
    _text("messages", "The prompt's conversation as JSON [{role, content}, ...], when it is one (the export's "
          "conversational prompt)."),
    Column("chosen_words", "BIGINT", "Whitespace-separated words of the chosen response.", optional=True),
    Column("rejected_words", "BIGINT", "Whitespace-separated words of the rejected response.", optional=True),
    _BATCH,
), id_column="pair_id")

QUARANTINE = Table("quarantine", "Every row the pipeline did not publish, with its stage and reason.", (
    _id("quarantine_id", "Hash of stage, reason and item."),
    _id("stage", "Where the row was stopped: pairs, filters, candidates, gate:<stage>, export."),
    _id("reason", "Why (a comparison status, a filter, a failed expectation, …)."),
    _text("detail", "A readable explanation."),
    _text("prompt_id", "The prompt, when the row has one."),
    _text("comparison_id", "The comparison, when the row has one."),
    _text("pair_id", "The pair, when the row has one."),
    _text("item_id", "The id of the stopped row (or the batch, for a table-level failure)."),
    _text("prompt", "The prompt text."),
    _text("response_1", "The first response involved."),
    _text("response_2", "The second response involved."),
    _text("record", "The original row, as JSON."),
    Column("quarantined_at", "TIMESTAMPTZ", "When the row was stopped.", required=True, nullable=False),
    _BATCH,
), id_column="quarantine_id")

JUDGMENT_HISTORY = Table("judgment_history", "Append-only: every verdict any judge version ever gave.", (
    _id("judgment_id", "The verdict's id in judgments."),
    _id("judge_fingerprint", "The judge version."),
    _text("comparison_id", "The comparison."),
    _text("prompt_id", "The prompt."),
    _text("category", "The prompt's category."),
    _text("candidate_x_id", "First candidate."),
    _text("candidate_y_id", "Second candidate."),
    _text("order", "xy or yx."),
    _text("judge_model", "The judge, as provider:model."),
    _text("criteria", "What the judge was asked to prefer."),
    _text("preference", "A, B or tie."),
    _text("preferred", "x, y or tie."),
    Column("confidence", "DOUBLE", "The judge's confidence."),
    _text("reasoning", "The judge's reasoning."),
    _text("raw_output", "The judge's output, verbatim."),
    _text("parse_status", "ok, truncated or unparseable."),
    _text("error", "The error of a failed call."),
    Column("judged_at", "TIMESTAMPTZ", "When the verdict was given."),
    Column("recorded_at", "TIMESTAMPTZ", "When it was added to the history."),
    _text("run_id", "The Dagster run that added it."),
    _text("batch_id", "The prompt batch."),
    Column("judge_slot", "INTEGER", "Position of the judge in the configuration (versions of one slot are compared)."),
    Column("recency_weight", "DOUBLE", "0.5 ** (days before the newest verdict / half-life), computed when the "
           "history is read (sql/table_judgment_history.sql)."),
    Column("recency_half_life_days", "DOUBLE", "The half-life (audit.recency_half_life_days) given with the append; "
           "the newest append's applies to every row."),
), id_column="judgment_id", key=("judgment_id", "judge_fingerprint"))

HUMAN_LABELS = Table("human_labels", "Human preferences from review sheets and known-answer sets.", (
    _id("label_id", "Hash of source, item and labeller."),
    _text("source", "Review sheet or known-answer set."),
    _text("comparison_id", "The comparison labelled."),
    _text("pair_id", "The pair labelled."),
    _text("prompt_id", "The prompt."),
    _text("category", "The prompt's category."),
    _text("human_preference", "chosen, rejected, tie, known, …"),
    _text("human_winner_id", "The candidate the human preferred."),
    _text("labeller", "Who labelled it."),
    _text("notes", "The labeller's notes."),
    Column("labelled_at", "TIMESTAMPTZ", "When it was labelled."),
    _text("export_id", "The review sheet's or Label Studio push's export id the label came back from."),
    _text("task_id", "The Label Studio task (and annotation: <task>/<annotation>) of a label_studio label."),
    _text("selection", "Why the item was offered: to_label, random, uncertain or uncertain_random."),
    Column("inclusion_probability", "DOUBLE", "The probability the item had of being offered (1 for to_label and "
           "targeted items): weight 1/p in the agreement estimate (docs/human-labels.md)."),
), id_column="label_id", key=("label_id",))

TABLES: dict[str, Table] = {t.name: t for t in (
    PROMPTS, CANDIDATES, JUDGMENTS, COMPARISONS, PREFERENCE_PAIRS, QUARANTINE, JUDGMENT_HISTORY, HUMAN_LABELS)}


# --------------------------------------------------------------------------- look-ups

def table(name: str) -> Table:
    try:
        return TABLES[name]
    except KeyError:
        raise KeyError(f"no declared table {name!r} (tables: {', '.join(TABLES)})") from None


def names(name: str, with_optional: bool = False) -> list[str]:
    """Column names in declared order; the optional ones (word counts, ``batch_id``) only when asked."""
    return [c.name for c in table(name).columns if with_optional or not c.optional]


def dtypes(name: str) -> dict[str, str]:
    """``{column: pandas dtype}``, every declared column."""
    return {c.name: c.dtype for c in table(name).columns}


def duckdb_types(name: str) -> dict[str, str]:
    """``{column: DuckDB type}``, every declared column."""
    return {c.name: c.kind for c in table(name).columns}


def columns(name: str) -> list[tuple[str, str, str]]:
    """(name, DuckDB type, description) of every declared column: what a column schema shows."""
    return [(c.name, c.kind, c.description) for c in table(name).columns]


# --------------------------------------------------------------------------- typed frames

def _typed(series: pd.Series, dtype: str) -> pd.Series:
    if str(series.dtype) == dtype:
        return series
    if dtype.startswith("datetime64"):
        return pd.to_datetime(series, utc=True).astype(dtype)
    if dtype == "string":
        return series.astype("string")  # every kind of missing value (None, NaN, NaT) becomes <NA>
    if dtype in ("Int64", "Int32", "float64", "boolean") and series.dtype == object:
        series = series.where(series.notna(), None)
        if dtype != "boolean":
            series = pd.to_numeric(series)
    return series.astype(dtype)


def conform(name: str, frame: pd.DataFrame, add_missing: bool = True) -> pd.DataFrame:
    """``frame`` with every declared column in its declared dtype, even when empty or all null.

    Declared columns come first, in declared order; missing non-optional ones are added (all null)
    unless ``add_missing`` is False; optional ones are typed when present. Undeclared columns are kept
    after them, as they are.
    """
    spec = table(name)
    out = {}
    for column in spec.columns:
        if column.name in frame.columns:
            try:
                out[column.name] = _typed(frame[column.name], column.dtype)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{name}.{column.name}: cannot be read as {column.kind}: {exc}") from None
        elif add_missing and not column.optional:
            out[column.name] = pd.Series(pd.array([None] * len(frame), dtype=column.dtype), index=frame.index)
    for extra in frame.columns:
        if extra not in spec.by_name:
            out[extra] = frame[extra]
    return pd.DataFrame(out, index=frame.index)


def with_batch(frame: pd.DataFrame, batch: str | None) -> pd.DataFrame:
    """``frame`` with every row tagged with its prompt batch (``BATCH_COLUMN``); as it is when ``batch`` is None."""
    return frame if batch is None else frame.assign(**{BATCH_COLUMN: batch})


def empty(name: str, with_optional: bool = False) -> pd.DataFrame:
    """A frame with no rows and every (non-optional, unless asked) column typed."""
    return conform(name, pd.DataFrame(columns=names(name, with_optional)))


def from_rows(name: str, rows: Iterable[Mapping]) -> pd.DataFrame:
    """Records (dicts) as a typed frame of the table's non-optional columns."""
    return conform(name, pd.DataFrame(list(rows), columns=names(name)))


# --------------------------------------------------------------------------- DuckDB

def ddl(name: str, schema_name: str) -> str:
    """``CREATE TABLE IF NOT EXISTS`` for the table, with every declared column and its primary key."""
    spec = table(name)
    body = [f'"{c.name}" {c.kind}' for c in spec.columns]
    if spec.key:
        body.append("PRIMARY KEY (" + ", ".join(f'"{k}"' for k in spec.key) + ")")
    return f"CREATE TABLE IF NOT EXISTS {schema_name}.{spec.name} ({', '.join(body)})"


def select_cast(name: str, source: str) -> str:
    """``SELECT CAST(c AS type) AS c, ... FROM source`` over the declared non-optional columns."""
    casts = ", ".join(f'CAST("{c.name}" AS {c.kind}) AS "{c.name}"' for c in table(name).columns if not c.optional)
    return f"SELECT {casts} FROM {source}"


# --------------------------------------------------------------------------- Great Expectations

def gx_expectations(name: str) -> list:
    """Column expectations of the table for a GX suite: every required column exists, is not null unless
    nullable, and holds values of its kind (texts are ``str``; numbers a numeric dtype). Timestamps are
    checked by existence and nulls only."""
    import great_expectations.expectations as gxe

    required = [c for c in table(name).columns if c.required]
    out: list = [gxe.ExpectColumnToExist(column=c.name) for c in required]
    out += [gxe.ExpectColumnValuesToNotBeNull(column=c.name) for c in required if not c.nullable]
    for c in required:
        if c.kind == "VARCHAR":
            out.append(gxe.ExpectColumnValuesToBeOfType(column=c.name, type_="str"))
        elif c.kind in ("BIGINT", "INTEGER"):
            out.append(gxe.ExpectColumnValuesToBeInTypeList(column=c.name, type_list=INT_TYPES))
        elif c.kind == "DOUBLE":
            out.append(gxe.ExpectColumnValuesToBeInTypeList(column=c.name, type_list=NUMERIC_TYPES))
    return out


# --------------------------------------------------------------------------- rows

def row(name: str, **values: object) -> dict[str, object]:
    """One row of table ``name``: every declared non-optional column, the values given and None for the rest.

    Every builder of a table's rows goes through here, so a new column is in every row at once, and a key the
    table does not declare (misspelt, or a column since removed) is an error instead of a silently lost value.
    """
    spec = table(name)
    unknown = [key for key in values if key not in spec.by_name]
    if unknown:
        raise KeyError(f"{name} has no column(s) {', '.join(unknown)} (columns: {', '.join(spec.by_name)})")
    return {c.name: values.get(c.name) for c in spec.columns if not c.optional or c.name in values}
