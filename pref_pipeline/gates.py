"""Quality gates: Great Expectations (GX Core 1.x) suites run on in-memory DataFrames.

GX is imported lazily (it costs seconds) and run in an ephemeral context, so a gate needs no
project folder. A gate result lists each failed expectation with sample offending values, which the
Dagster layer shows in the UI.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

REQUIRED_PAIR_COLUMNS = [
    "pair_id", "prompt", "chosen", "rejected", "generation_method", "judge_model_id", "criteria", "judge_fingerprint",
]


@dataclass(frozen=True)
class GateResult:
    name: str
    success: bool
    evaluated: int
    failures: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> str:
        if self.success:
            return f"{self.name}: all {self.evaluated} expectations passed"
        names = ", ".join(f["expectation"] + (f"({f['column']})" if f.get("column") else "") for f in self.failures)
        return f"{self.name}: {len(self.failures)} of {self.evaluated} expectations failed: {names}"


def pair_expectations(min_pairs: int = 1) -> list:
    """What every published pair must satisfy."""
    import great_expectations.expectations as gxe

    expectations: list = [gxe.ExpectTableRowCountToBeBetween(min_value=min_pairs)]
    for column in REQUIRED_PAIR_COLUMNS:
        expectations.append(gxe.ExpectColumnToExist(column=column))
        expectations.append(gxe.ExpectColumnValuesToNotBeNull(column=column))
    expectations += [
        gxe.ExpectColumnValuesToBeUnique(column="pair_id"),
        gxe.ExpectSelectColumnValuesToBeUniqueWithinRecord(column_list=["chosen", "rejected"]),
        gxe.ExpectColumnValuesToBeBetween(column="confidence", min_value=0, max_value=1, mostly=1.0),
    ]
    return expectations


def run_suite(name: str, frame: pd.DataFrame, expectations: list) -> GateResult:
    """Validate ``frame`` against the expectations in a throwaway GX context."""
    import great_expectations as gx

    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)  # no tqdm noise in run logs
    batch = (
        context.data_sources.add_pandas(f"{name}_source")
        .add_dataframe_asset(f"{name}_frame")
        .add_batch_definition_whole_dataframe(f"{name}_batch")
    )
    suite = context.suites.add(gx.ExpectationSuite(name=name, expectations=expectations))
    validation = context.validation_definitions.add(gx.ValidationDefinition(name=f"{name}_validation", data=batch, suite=suite))
    result = validation.run(batch_parameters={"dataframe": frame}, result_format="SUMMARY")
    failures = []
    for item in result.results:
        if item.success:
            continue
        config = item.expectation_config
        details = item.result or {}
        failures.append({
            "expectation": config.type,
            "column": config.kwargs.get("column") or ",".join(config.kwargs.get("column_list") or []),
            "unexpected_count": details.get("unexpected_count"),
            "observed_value": details.get("observed_value"),
            "sample": [str(v)[:80] for v in (details.get("partial_unexpected_list") or [])[:5]],
            "exception": (item.exception_info or {}).get("exception_message") if isinstance(item.exception_info, dict) else None,
        })
    return GateResult(name, bool(result.success), len(result.results), failures)


def validate_pairs(pairs: pd.DataFrame, min_pairs: int = 1) -> GateResult:
    return run_suite("preference_pairs", pairs, pair_expectations(min_pairs))
