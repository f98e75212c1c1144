"""Quality gates: Great Expectations (GX Core 1.x) suites, one per stage, run on in-memory DataFrames.

Stages: ``prompts``, ``candidates``, ``judgments`` and ``preference_pairs``. Each suite checks the
schema and types, required values, allowed values and ranges, unique ids and a minimum row count;
the ``preference_pairs`` suite adds the dataset-level bounds: the position-consistency rate of the
judgments behind the batch above ``gates.min_position_consistency`` and the judge's length bias, the share of
judge-labelled pairs of unequal length where the longer response won (the audit's
``length_bias.pct_longer_chosen``: construction pairs are left out, their lengths follow from how they were
made), within ``0.5 ± gates.max_length_bias`` (both off unless configured).

GX is imported lazily (it costs ~3.5 s) and one ephemeral context is reused per process, so a gate
needs no project folder. A result lists each failed expectation with sample offending values and
the ids of the offending rows, which the Dagster layer shows in the UI and puts in quarantine.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from pref_pipeline import schema
from pref_pipeline.config import GatesSpec
from pref_pipeline.metrics import SAME_BOTH_ORDERS, judge_labelled, longer_chosen, order_consistency
from pref_pipeline.quarantine import TO_LABEL_COMMAND
from pref_pipeline.runner import freeze_heap

STAGES = ("prompts", "candidates", "judgments", "preference_pairs")
ID_COLUMNS = {stage: schema.table(stage).id_column for stage in STAGES}  # the id a failure names a row by
VERDICTS = ["A", "B", "tie"]
PREFERRED = ["x", "y", "tie"]
ORDERS = ["xy", "yx"]
PARSE_STATUSES = ["ok", "truncated", "unparseable", "not_applicable"]  # not_applicable: a rule judge abstaining
# 1 when the longer response was chosen, 0 when the shorter, null when equal or not judge-labelled
LONGER_CHOSEN = "_longer_chosen"
SAMPLE_VALUES = 5
SAMPLE_IDS = 50


@dataclass(frozen=True)
class GateResult:
    name: str
    success: bool
    evaluated: int
    failures: list[dict[str, Any]] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)  # dataset-level figures the bounds were tested on
    awaiting_label: int = 0  # set when nothing was gated because every comparison waits for people

    def summary(self) -> str:
        if self.awaiting_label:
            return (f"{self.name}: waiting: all {self.awaiting_label} comparison(s) await human labels, nothing to "
                    f"gate yet (`{TO_LABEL_COMMAND}` writes them to label)")
        if self.success:
            return f"{self.name}: all {self.evaluated} expectations passed"
        names = ", ".join(f["expectation"] + (f"({f['column']})" if f.get("column") else "") for f in self.failures)
        return f"{self.name}: {len(self.failures)} of {self.evaluated} expectations failed: {names}"

    def failing_ids(self) -> dict[str, list[str]]:
        """``{row id: [failed expectation, ...]}`` for the rows that row-level expectations named."""
        out: dict[str, list[str]] = {}
        for failure in self.failures:
            for row_id in failure.get("row_ids") or []:
                out.setdefault(str(row_id), []).append(failure["label"])
        return out

    def table_level_failures(self) -> list[dict[str, Any]]:
        return [f for f in self.failures if not f.get("row_ids")]

    def table_level_summary(self) -> str:
        """The table-level failures (row count, dataset bounds) in one line, with observed and expected values."""
        return "; ".join(_describe(f) for f in self.table_level_failures())


# --------------------------------------------------------------------------- GX plumbing

_lock = threading.Lock()
_state: dict[str, Any] = {}


def _context():
    """One ephemeral GX context and one whole-frame batch definition per process (creating them costs little,
    importing GX a lot)."""
    if "context" not in _state:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False)  # no tqdm noise in run logs
        frames = context.data_sources.add_pandas("pref_pipeline_frames").add_dataframe_asset("frame")
        _state["gx"] = gx
        _state["context"] = context
        _state["batches"] = frames.add_batch_definition_whole_dataframe("whole_frame")
        freeze_heap()  # GX's import leaves ~300,000 long-lived objects
    return _state["gx"], _state["context"], _state["batches"]


def _gxe():
    import great_expectations.expectations as gxe

    return gxe


def _plain(value: Any) -> Any:
    """JSON-friendly values for metadata (numpy scalars, timestamps, NaN)."""
    try:
        return json.loads(json.dumps(value, default=str))
    except (TypeError, ValueError):
        return str(value)


def run_suite(name: str, frame: pd.DataFrame, expectations: list, id_column: str | None = None) -> GateResult:
    """Validate ``frame`` against ``expectations``; row-level failures carry the offending rows' ids.

    The suite is validated on a batch of the frame directly (``Batch.validate``): nothing is registered in
    the context or kept in its results store, which cost as much as validating a small batch.
    """
    gx, _, batches = _context()
    result_format: dict[str, Any] = {"result_format": "COMPLETE", "partial_unexpected_count": SAMPLE_VALUES}
    if id_column and id_column in frame.columns:
        result_format["unexpected_index_column_names"] = [id_column]
    with _lock:
        batch = batches.get_batch(batch_parameters={"dataframe": frame.reset_index(drop=True)})
        # Pass or fail first (GX computes no unexpected-value lists or row indices: about a third of a passing
        # gate's time), then the failed expectations again for what the report and the quarantine need.
        result = batch.validate(gx.ExpectationSuite(name=name, expectations=expectations),
                                result_format="BOOLEAN_ONLY")
        failed = [item.expectation_config.to_domain_obj() for item in result.results if not item.success]
        details_of = batch.validate(gx.ExpectationSuite(name=name, expectations=failed),
                                    result_format=result_format).results if failed else []
    failures = []
    for item in details_of:
        config = item.expectation_config
        details = item.result or {}
        column = config.kwargs.get("column") or ",".join(config.kwargs.get("column_list") or [])
        row_ids = []
        if id_column:
            for entry in details.get("unexpected_index_list") or []:
                if isinstance(entry, dict) and entry.get(id_column) is not None:
                    row_ids.append(str(entry[id_column]))
        exception = item.exception_info or {}
        failures.append({
            "expectation": config.type,
            "column": column,
            "label": config.type + (f"({column})" if column else ""),
            "kwargs": _plain({k: v for k, v in config.kwargs.items() if k not in ("column", "column_list", "batch_id")}),
            "unexpected_count": details.get("unexpected_count"),
            "observed_value": _plain(details.get("observed_value")),
            "sample": [str(v)[:80] for v in (details.get("partial_unexpected_list") or [])[:SAMPLE_VALUES]],
            "row_ids": sorted(set(row_ids))[:SAMPLE_IDS * 20],
            "exception": exception.get("exception_message") if isinstance(exception, dict) else None,
        })
    return GateResult(name, bool(result.success), len(result.results), failures)


def _merge(name: str, results: list[GateResult], figures: dict[str, Any]) -> GateResult:
    return GateResult(name, all(r.success for r in results), sum(r.evaluated for r in results),
                      [f for r in results for f in r.failures], figures)


# --------------------------------------------------------------------------- suites

def prompt_expectations(spec: GatesSpec) -> list:
    gxe = _gxe()
    return [
        gxe.ExpectTableRowCountToBeBetween(min_value=spec.min_prompts),
        *schema.gx_expectations("prompts"),
        gxe.ExpectColumnValuesToBeUnique(column="prompt_id"),
        gxe.ExpectColumnValuesToMatchRegex(column="prompt", regex=r"\S"),  # not empty or whitespace
    ]


def candidate_expectations(spec: GatesSpec) -> list:
    gxe = _gxe()
    return [
        gxe.ExpectTableRowCountToBeBetween(min_value=spec.min_candidates),
        *schema.gx_expectations("candidates"),
        gxe.ExpectColumnValuesToBeUnique(column="candidate_id"),
        # A successful call has a text; a failed one keeps its error instead.
        gxe.ExpectColumnValuesToNotBeNull(column="text", row_condition="error.isnull()", condition_parser="pandas"),
        gxe.ExpectColumnValuesToBeBetween(column="candidate_index", min_value=0),
    ]


def judgment_expectations(spec: GatesSpec) -> list:
    gxe = _gxe()
    return [
        gxe.ExpectTableRowCountToBeBetween(min_value=spec.min_judgments),
        *schema.gx_expectations("judgments"),
        gxe.ExpectColumnValuesToBeUnique(column="judgment_id"),
        gxe.ExpectColumnValuesToBeInSet(column="order", value_set=ORDERS),
        gxe.ExpectColumnValuesToBeInSet(column="preference", value_set=VERDICTS),  # nulls: unparseable or failed
        gxe.ExpectColumnValuesToBeInSet(column="preferred", value_set=PREFERRED),
        gxe.ExpectColumnValuesToBeInSet(column="parse_status", value_set=PARSE_STATUSES),
        # A verdict read as parsed must have a label: "ok" never hides a missing verdict.
        gxe.ExpectColumnValuesToNotBeNull(column="preference", row_condition='parse_status=="ok"',
                                          condition_parser="pandas"),
        gxe.ExpectColumnValuesToBeBetween(column="confidence", min_value=0, max_value=1),
    ]


def pair_expectations(min_pairs: int = 1) -> list:
    """What every published pair must satisfy (row level and row count)."""
    gxe = _gxe()
    # Required columns, not null, of their type (the texts are strings; the confidence a number, and a
    # "0.8" read from a bad file is not): from the table's declaration.
    expectations: list = [gxe.ExpectTableRowCountToBeBetween(min_value=min_pairs), *schema.gx_expectations(
        "preference_pairs")]
    expectations += [
        gxe.ExpectColumnValuesToBeUnique(column="pair_id"),
        # GX tests this row by row (DataFrame.nunique(axis=1), ~0.1 ms a row); only rows whose two texts are
        # equal can fail it, so only those are handed to it.
        gxe.ExpectSelectColumnValuesToBeUniqueWithinRecord(column_list=["chosen", "rejected"],
                                                           row_condition="chosen == rejected",
                                                           condition_parser="pandas"),
        gxe.ExpectColumnValuesToMatchRegex(column="chosen", regex=r"\S"),
        gxe.ExpectColumnValuesToMatchRegex(column="rejected", regex=r"\S"),
        gxe.ExpectColumnValuesToBeBetween(column="confidence", min_value=0, max_value=1, mostly=1.0),
        gxe.ExpectColumnValuesToMatchRegex(column="verdict_ab", regex=r"^(?:A|B)(?:\|(?:A|B))*$"),
        gxe.ExpectColumnValuesToMatchRegex(column="verdict_ba", regex=r"^(?:A|B)(?:\|(?:A|B))*$"),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["chosen_candidate_id", "rejected_candidate_id"]),
    ]
    return expectations


# --------------------------------------------------------------------------- dataset-level figures

def _bound(value: float) -> float:
    return round(value, 6)


# --------------------------------------------------------------------------- entry points

def validate_prompts(prompts: pd.DataFrame, spec: GatesSpec | None = None) -> GateResult:
    return run_suite("prompts", prompts, prompt_expectations(spec or GatesSpec()), ID_COLUMNS["prompts"])


def validate_candidates(candidates: pd.DataFrame, spec: GatesSpec | None = None) -> GateResult:
    return run_suite("candidates", candidates, candidate_expectations(spec or GatesSpec()), ID_COLUMNS["candidates"])


def validate_judgments(judgments: pd.DataFrame, spec: GatesSpec | None = None) -> GateResult:
    return run_suite("judgments", judgments, judgment_expectations(spec or GatesSpec()), ID_COLUMNS["judgments"])


def waiting_for_labels(awaiting: int) -> GateResult:
    """The pairs gate of a batch whose comparisons all wait for people: it passes, saying so. Nothing is decided,
    so nothing can be wrong yet; once people label, the next run of the batch gates the pairs as usual."""
    return GateResult("preference_pairs", True, 0, figures={"awaiting_label": awaiting}, awaiting_label=awaiting)


def validate_pairs(pairs: pd.DataFrame, spec: GatesSpec | None = None,
                   judgments: pd.DataFrame | None = None) -> GateResult:
    """The pair suite, plus the dataset-level bounds the configuration turns on (``None``: the defaults).

    The position-consistency bound needs the batch's ``judgments``; without them it is not tested.
    """
    spec = spec or GatesSpec()
    gxe = _gxe()
    figures: dict[str, Any] = {}
    expectations = pair_expectations(spec.min_pairs)
    frame = pairs
    if spec.max_length_bias is not None and len(pairs) and {"chosen", "rejected"} <= set(pairs.columns):
        flags = longer_chosen(pairs).where(judge_labelled(pairs))  # the judge's bias: as the audit's headline
        figures["length_bias"] = {"pct_longer_chosen": None if flags.notna().sum() == 0 else round(float(flags.mean()), 4),
                                  "n_compared": int(flags.notna().sum()), "max_length_bias": spec.max_length_bias,
                                  "population": "judge-labelled pairs of unequal length"}
        # No judge-labelled pair of unequal length (all by construction, or all of equal length): no evidence
        # either way, nothing to bound.
        if flags.notna().any():
            frame = pairs.assign(**{LONGER_CHOSEN: flags})
            expectations.append(gxe.ExpectColumnMeanToBeBetween(
                column=LONGER_CHOSEN, min_value=_bound(0.5 - spec.max_length_bias),
                max_value=_bound(0.5 + spec.max_length_bias)))
    results = [run_suite("preference_pairs", frame, expectations, ID_COLUMNS["preference_pairs"])]
    if spec.min_position_consistency is not None and judgments is not None:
        consistency = order_consistency(judgments)
        n = len(consistency)
        figures["position_consistency"] = {
            "rate": round(float(consistency[SAME_BOTH_ORDERS].mean()), 4) if n else None,
            "n_both_orders": n, "min_position_consistency": spec.min_position_consistency}
        # With no comparison judged in both orders the mean is undefined and the bound fails: nothing shows consistency.
        results.append(run_suite("preference_pairs_position_consistency", consistency, [
            gxe.ExpectColumnMeanToBeBetween(column=SAME_BOTH_ORDERS, min_value=_bound(spec.min_position_consistency),
                                            max_value=1.0)]))
    return _merge("preference_pairs", results, figures)


def _describe(failure: dict[str, Any]) -> str:
    observed = failure.get("observed_value")
    bounds = {k: v for k, v in (failure.get("kwargs") or {}).items() if k in ("min_value", "max_value") and v is not None}
    text = failure["label"]
    if observed is not None:
        text += f" observed {observed}"
    if bounds:
        text += " expected " + ", ".join(f"{k}={v}" for k, v in bounds.items())
    return text


def describe_failures(result: GateResult) -> list[str]:
    """One readable line per failed expectation."""
    lines = []
    for failure in result.failures:
        line = _describe(failure)
        if failure.get("unexpected_count"):
            line += f": {failure['unexpected_count']} row(s), e.g. {', '.join(failure['sample'][:3])}"
        if failure.get("exception"):
            line += f" (error: {failure['exception']})"
        lines.append(line)
    return lines
