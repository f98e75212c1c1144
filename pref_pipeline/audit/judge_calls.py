"""The judge calls: verdicts, unparseable outputs, retries, failed calls, and the judges that gave them."""

from __future__ import annotations

from typing import Any

import duckdb

from pref_pipeline.audit.queries import sql
from pref_pipeline.audit.section import AuditContext

NAME = "judge_calls"
STAND_IN_MODELS = {"local:smollm2-135m"}  # offline defaults whose verdicts are near chance


def compute(con: duckdb.DuckDBPyConnection, context: AuditContext) -> dict[str, Any]:
    n_judgments, n_unparseable, n_errors, n_retries, models = con.execute(sql("judging")).fetchall()[0]
    return {
        "judging": {
            "judgments": int(n_judgments),
            "unparseable": int(n_unparseable),
            "errors": int(n_errors),
            "parse_retries": int(n_retries),
        },
        "judge_models": list(models or []),  # every judge model with a verdict, failed or not
    }


def flags(figures: dict[str, Any]) -> list[str]:
    stand_ins = sorted(STAND_IN_MODELS & set(figures.get("judge_models") or []))
    if not stand_ins:
        return []
    return [(f"judge {', '.join(stand_ins)} is an offline stand-in whose verdicts are near chance: "
             "do not train on this data; configure a capable judge")]


def render(figures: dict[str, Any], images: dict[str, str]) -> str:
    judging = figures["judging"]
    return f"""## Judge calls
{judging['judgments']} verdicts, {judging['unparseable']} unparseable after retries,
{judging['parse_retries']} retries for unparseable output, {judging['errors']} failed calls.
"""
