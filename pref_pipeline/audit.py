"""The audit: DuckDB SQL over the pipeline's tables, measuring the biases the judge may have.

``audit.json`` keys are a contract for other tools: ``length_bias.pct_longer_chosen``,
``length_bias.flagged``, ``position_bias.consistency_rate``, ``position_bias.first_position_win_rate``,
``pairs.kept`` and ``flags`` stay; new figures are added beside them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

LENGTH_BIAS_BAND = 0.15  # flag when the longer response wins more than 0.5 ± this
STAND_IN_MODELS = {"local:smollm2-135m"}

LENGTH_BIAS_SQL = """
WITH lengths AS (
    SELECT len(string_split(trim(chosen), ' ')) AS chosen_words,
           len(string_split(trim(rejected), ' ')) AS rejected_words
    FROM pairs
)
SELECT count(*) FILTER (WHERE chosen_words <> rejected_words) AS n_compared,
       count(*) FILTER (WHERE chosen_words > rejected_words) AS n_longer_chosen,
       count(*) FILTER (WHERE chosen_words = rejected_words) AS n_equal_length,
       avg(chosen_words) AS mean_chosen_words,
       avg(rejected_words) AS mean_rejected_words
FROM lengths
"""

# One row per (judge, comparison) that was judged in both orders and parsed both times.
POSITION_BIAS_SQL = """
WITH parsed AS (
    SELECT * FROM judgments WHERE error IS NULL AND parse_status <> 'unparseable'
),
both_orders AS (
    SELECT judge_fingerprint, comparison_id,
           max(preferred) FILTER (WHERE "order" = 'xy') AS first,
           max(preferred) FILTER (WHERE "order" = 'yx') AS second
    FROM parsed GROUP BY ALL HAVING count(*) = 2
)
SELECT (SELECT count(*) FROM both_orders) AS n_both_orders,
       (SELECT count(*) FILTER (WHERE first = second) FROM both_orders) AS n_consistent,
       (SELECT count(*) FILTER (WHERE preference <> 'tie') FROM parsed) AS n_decisive,
       (SELECT count(*) FILTER (WHERE preference = 'A') FROM parsed) AS n_first_position_wins,
       (SELECT count(*) FROM judgments) AS n_judgments,
       (SELECT count(*) FILTER (WHERE parse_status = 'unparseable') FROM judgments) AS n_unparseable,
       (SELECT count(*) FILTER (WHERE error IS NOT NULL) FROM judgments) AS n_errors,
       (SELECT coalesce(sum(attempts - 1), 0) FROM judgments WHERE attempts > 1) AS n_parse_retries
"""

STATUS_SQL = "SELECT status, count(*) AS n FROM comparisons GROUP BY status ORDER BY n DESC, status"


def _ratio(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def compute_audit(pairs: pd.DataFrame, judgments: pd.DataFrame, comparisons: pd.DataFrame) -> dict[str, Any]:
    """Every audit figure from the three tables, as a JSON-ready dict."""
    con = duckdb.connect()
    try:
        con.register("pairs", pairs)
        con.register("judgments", judgments)
        con.register("comparisons", comparisons)
        length = con.execute(LENGTH_BIAS_SQL).fetchone()
        position = con.execute(POSITION_BIAS_SQL).fetchone()
        statuses = dict(con.execute(STATUS_SQL).fetchall())
    finally:
        con.close()

    n_compared, n_longer, n_equal, mean_chosen, mean_rejected = length
    pct_longer = _ratio(n_longer, n_compared)
    # Rounded so that exactly 0.5 ± the band (e.g. 0.65, whose float difference is 0.15000000000000002) is inside it.
    length_flagged = pct_longer is not None and round(abs(pct_longer - 0.5), 4) > LENGTH_BIAS_BAND
    n_both, n_consistent, n_decisive, n_first_wins, n_judgments, n_unparseable, n_errors, n_retries = position
    consistency = _ratio(n_consistent, n_both)

    flags = []
    if length_flagged:
        flags.append(f"length bias: the longer response was chosen in {pct_longer:.0%} of pairs (outside 50% ± {LENGTH_BIAS_BAND:.0%})")
    if consistency is not None and consistency < 0.5:
        flags.append(f"position bias: only {consistency:.0%} of comparisons got the same verdict in both orders")
    if n_unparseable:
        flags.append(f"{n_unparseable} of {n_judgments} judge outputs could not be parsed after retries")
    stand_ins = sorted(STAND_IN_MODELS & set(judgments.get("judge_model", pd.Series(dtype=str)).unique()))
    if stand_ins:
        flags.append(f"judge {', '.join(stand_ins)} is an offline stand-in whose verdicts are near chance: "
                     "do not train on this data; configure a capable judge")

    return {
        "pairs": {
            "kept": int(len(pairs)),
            "comparisons": int(len(comparisons)),
            "by_status": {k: int(v) for k, v in statuses.items()},
        },
        "length_bias": {
            "pct_longer_chosen": pct_longer,
            "flagged": bool(length_flagged),
            "band": LENGTH_BIAS_BAND,
            "n_compared": int(n_compared),
            "n_equal_length": int(n_equal),
            "mean_chosen_words": round(float(mean_chosen), 1) if mean_chosen is not None else None,
            "mean_rejected_words": round(float(mean_rejected), 1) if mean_rejected is not None else None,
            "unit": "words",
        },
        "position_bias": {
            "consistency_rate": consistency,
            "first_position_win_rate": _ratio(n_first_wins, n_decisive),
            "n_both_orders": int(n_both),
        },
        "judging": {
            "judgments": int(n_judgments),
            "unparseable": int(n_unparseable),
            "errors": int(n_errors),
            "parse_retries": int(n_retries),
        },
        "flags": flags,
    }


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def render_markdown(audit: dict[str, Any]) -> str:
    """A report a person who did not build the pipeline can read."""
    lb, pb, pairs, judging = audit["length_bias"], audit["position_bias"], audit["pairs"], audit["judging"]
    statuses = "\n".join(f"| {status} | {n} |" for status, n in pairs["by_status"].items()) or "| (none) | 0 |"
    flags = "\n".join(f"- ⚠ {flag}" for flag in audit["flags"]) or "- none"
    return f"""# Preference data audit

**{pairs['kept']} pairs kept** from {pairs['comparisons']} comparisons.

## Warnings
{flags}

## Length bias
Share of kept pairs where the longer response (in words) was chosen: **{_pct(lb['pct_longer_chosen'])}**
over {lb['n_compared']} pairs of unequal length ({lb['n_equal_length']} of equal length left out).
An unbiased judge sits near 50%; beyond 50% ± {lb['band']:.0%} the report flags it.
Mean length: chosen {lb['mean_chosen_words']} words, rejected {lb['mean_rejected_words']} words.

## Position bias
Each pair is judged twice, with the responses swapped. Same verdict in both orders:
**{_pct(pb['consistency_rate'])}** of {pb['n_both_orders']} comparisons. The response shown first won
{_pct(pb['first_position_win_rate'])} of decisive verdicts (an unbiased judge: about 50%).

## Comparisons by outcome
| status | comparisons |
|---|---|
{statuses}

## Judge calls
{judging['judgments']} verdicts, {judging['unparseable']} unparseable after retries,
{judging['parse_retries']} retries for unparseable output, {judging['errors']} failed calls.
"""


def write_report(audit: dict[str, Any], folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    json_path, md_path = folder / "audit.json", folder / "audit.md"
    json_path.write_text(json.dumps(audit, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    md_path.write_text(render_markdown(audit), encoding="utf-8")
    return json_path, md_path
