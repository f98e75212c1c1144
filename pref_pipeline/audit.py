"""The audit: DuckDB SQL over the pipeline's tables, measuring the biases the judge may have.

``audit.json`` keys are a contract for other tools: ``length_bias.pct_longer_chosen``,
``length_bias.flagged``, ``position_bias.consistency_rate``, ``position_bias.first_position_win_rate``,
``pairs.kept``, ``pairs.quarantined`` and ``flags`` stay; new figures are added beside them.

Two ways in: ``compute_audit(pairs, judgments, comparisons, ...)`` on DataFrames, and
``audit_database(path)`` over the stored tables of a pipeline database (attached read-only, so
nothing is loaded into pandas but the small aggregates). Both run the same SQL.

Figures:

- length bias: share of kept pairs whose longer response (in words) was chosen, with a 95% Wilson
  interval, overall and by judge, strategy and category; flagged outside 0.5 ± the band;
- a length-controlled view (in the spirit of AlpacaEval's length-controlled win rate): a logistic
  model of which response wins, with generator strengths and the length difference as covariates
  (statsmodels); each generator's raw and length-controlled win rate, and the length effect;
- position bias: same verdict in both orders, and the first-shown response's win rate, by judge;
- agreement: Cohen's kappa between judges on the same verdicts; judge vs human labels;
- drift: flip rate between judge versions on the same comparisons, by category; each version's
  figures by week (from ``judgment_history``).
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from pref_pipeline import store

LENGTH_BIAS_BAND = 0.15  # flag when the longer response wins more than 0.5 ± this
STAND_IN_MODELS = {"local:smollm2-135m"}
Z95 = 1.959963984540054
MIN_GROUP_PAIRS = 1  # groups are listed from this many pairs on (their intervals say how little small ones tell)
DRIFT_FLAG_RATE = 0.2  # flag a judge change that flips at least this share ...
DRIFT_FLAG_MIN = 10  # ... of at least this many shared verdicts
HISTOGRAM_CLIP = 300  # word differences beyond ± this are counted in the outermost bins

# Columns each relation needs; a frame or table missing some gets them as NULL (old tables, hand-made tests).
PAIRS_SCHEMA = {
    "pair_id": "VARCHAR", "prompt_id": "VARCHAR", "chosen": "VARCHAR", "rejected": "VARCHAR",
    "judge_model_id": "VARCHAR", "category": "VARCHAR", "confidence": "DOUBLE", "judge_fingerprint": "VARCHAR",
    "chosen_candidate_id": "VARCHAR", "rejected_candidate_id": "VARCHAR", "chosen_generator": "VARCHAR",
    "rejected_generator": "VARCHAR", "chosen_strategy": "VARCHAR", "rejected_strategy": "VARCHAR",
    "judged_at": "TIMESTAMPTZ",
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
}
QUARANTINE_SCHEMA = {"quarantine_id": "VARCHAR", "stage": "VARCHAR", "reason": "VARCHAR", "item_id": "VARCHAR",
                     "pair_id": "VARCHAR"}
# The stored tables' own column types (store.py creates them); the audit reads the columns it needs.
HISTORY_SCHEMA = store.HISTORY_COLUMNS
HUMAN_SCHEMA = store.HUMAN_LABEL_COLUMNS
RELATIONS = {
    "pairs": PAIRS_SCHEMA, "judgments": JUDGMENTS_SCHEMA, "comparisons": COMPARISONS_SCHEMA,
    "quarantine": QUARANTINE_SCHEMA, "judgment_history": HISTORY_SCHEMA, "human_labels": HUMAN_SCHEMA,
}
# Stored table behind each relation in a pipeline database (schema "pref").
STORED_TABLES = {"pairs": "preference_pairs", "judgments": "judgments", "comparisons": "comparisons",
                 "quarantine": "quarantine", "judgment_history": "judgment_history", "human_labels": "human_labels"}
# Quarantine stages that stand for a comparison that did not end up as a published pair.
PAIR_STAGES = ("pairs", "filters", "gate:preference_pairs", "export")

# --------------------------------------------------------------------------- SQL

WORDS_MACRO = r"""
CREATE OR REPLACE TEMP MACRO words(s) AS
    CASE WHEN s IS NULL OR trim(s) = '' THEN 0 ELSE len(string_split_regex(trim(s), '\s+')) END
"""

# The pairs that are in the dataset: stored pairs minus those of batches whose gate failed, with
# their word counts (stored by the pipeline; counted here for tables that lack them), without the texts.
KEPT_PAIRS_TABLE = """
CREATE OR REPLACE TEMP TABLE kept_pairs AS
SELECT p.pair_id, p.category, p.judge_model_id, p.chosen_strategy, p.rejected_strategy, p.chosen_generator,
       p.rejected_generator, p.chosen_candidate_id, p.rejected_candidate_id,
       {chosen_words} AS chosen_words, {rejected_words} AS rejected_words
FROM pairs p ANTI JOIN (
    SELECT item_id FROM quarantine WHERE stage = 'gate:preference_pairs' AND item_id IS NOT NULL) g
ON g.item_id = p.pair_id
"""

LENGTH_BIAS_SQL = """
SELECT count(*) FILTER (WHERE chosen_words <> rejected_words) AS n_compared,
       count(*) FILTER (WHERE chosen_words > rejected_words) AS n_longer_chosen,
       count(*) FILTER (WHERE chosen_words = rejected_words) AS n_equal_length,
       avg(chosen_words) AS mean_chosen_words,
       avg(rejected_words) AS mean_rejected_words,
       count(*) AS n_pairs
FROM kept_pairs
"""

LENGTH_BIAS_BY_SQL = """
SELECT {key} AS grp,
       count(*) FILTER (WHERE chosen_words <> rejected_words) AS n_compared,
       count(*) FILTER (WHERE chosen_words > rejected_words) AS n_longer_chosen
FROM kept_pairs GROUP BY ALL ORDER BY n_compared DESC, grp
"""
LENGTH_GROUPS = {
    "by_judge": "coalesce(judge_model_id, '(unknown)')",
    "by_strategy": "coalesce(least(chosen_strategy, rejected_strategy), '(unknown)') || ' vs ' || "
                   "coalesce(greatest(chosen_strategy, rejected_strategy), '(unknown)')",
    "by_category": "coalesce(category, '(unknown)')",
}

LENGTH_HISTOGRAM_SQL = f"""
SELECT greatest(least(chosen_words - rejected_words, {HISTOGRAM_CLIP}), -{HISTOGRAM_CLIP}) AS diff, count(*) AS n
FROM kept_pairs GROUP BY 1 ORDER BY 1
"""

# One row per kept pair, oriented so that side "a" is the candidate with the smaller id: a_won is then
# not constant, which a logistic model needs; the model is antisymmetric, so the orientation does not matter.
LENGTH_MODEL_SQL = """
SELECT CASE WHEN chosen_candidate_id <= rejected_candidate_id THEN 1 ELSE 0 END AS a_won,
       CASE WHEN chosen_candidate_id <= rejected_candidate_id THEN chosen_words - rejected_words
            ELSE rejected_words - chosen_words END AS diff,
       CASE WHEN chosen_candidate_id <= rejected_candidate_id THEN coalesce(chosen_generator, '?')
            ELSE coalesce(rejected_generator, '?') END AS a_gen,
       CASE WHEN chosen_candidate_id <= rejected_candidate_id THEN coalesce(rejected_generator, '?')
            ELSE coalesce(chosen_generator, '?') END AS b_gen
FROM kept_pairs
WHERE chosen_candidate_id IS NOT NULL AND rejected_candidate_id IS NOT NULL
"""

# Verdicts that count: parsed, not failed.
PARSED_VIEW = """
CREATE OR REPLACE TEMP VIEW parsed AS
SELECT * FROM judgments WHERE error IS NULL AND coalesce(parse_status, 'ok') <> 'unparseable' AND preferred IS NOT NULL
"""

BOTH_ORDERS_VIEW = """
CREATE OR REPLACE TEMP VIEW both_orders AS
SELECT judge_fingerprint, any_value(judge_model) AS judge_model, comparison_id,
       max(preferred) FILTER (WHERE "order" = 'xy') AS first, max(preferred) FILTER (WHERE "order" = 'yx') AS second
FROM parsed GROUP BY judge_fingerprint, comparison_id
HAVING count(*) FILTER (WHERE "order" = 'xy') = 1 AND count(*) FILTER (WHERE "order" = 'yx') = 1
"""

POSITION_BIAS_SQL = """
SELECT (SELECT count(*) FROM both_orders) AS n_both_orders,
       (SELECT count(*) FILTER (WHERE first = second) FROM both_orders) AS n_consistent,
       (SELECT count(*) FILTER (WHERE preference IN ('A', 'B')) FROM parsed) AS n_decisive,
       (SELECT count(*) FILTER (WHERE preference = 'A') FROM parsed) AS n_first_position_wins,
       (SELECT count(*) FROM judgments) AS n_judgments,
       (SELECT count(*) FILTER (WHERE parse_status = 'unparseable') FROM judgments) AS n_unparseable,
       (SELECT count(*) FILTER (WHERE error IS NOT NULL) FROM judgments) AS n_errors,
       (SELECT coalesce(sum(attempts - 1), 0) FROM judgments WHERE attempts > 1) AS n_parse_retries
"""

POSITION_BY_JUDGE_SQL = """
WITH decisive AS (
    SELECT judge_fingerprint, any_value(judge_model) AS judge_model,
           count(*) FILTER (WHERE preference IN ('A', 'B')) AS n_decisive,
           count(*) FILTER (WHERE preference = 'A') AS n_first_wins,
           count(*) FILTER (WHERE preference = 'tie') AS n_ties
    FROM parsed GROUP BY judge_fingerprint
), consistency AS (
    SELECT judge_fingerprint, count(*) AS n_both_orders, count(*) FILTER (WHERE first = second) AS n_consistent
    FROM both_orders GROUP BY judge_fingerprint
)
SELECT d.judge_fingerprint, d.judge_model, d.n_decisive, d.n_first_wins, d.n_ties,
       coalesce(c.n_both_orders, 0) AS n_both_orders, coalesce(c.n_consistent, 0) AS n_consistent
FROM decisive d LEFT JOIN consistency c USING (judge_fingerprint)
ORDER BY d.judge_model, d.judge_fingerprint
"""

STATUS_SQL = "SELECT status, count(*) AS n FROM comparisons GROUP BY status ORDER BY n DESC, status"

QUARANTINE_SQL = """
SELECT stage, reason, count(*) AS n FROM quarantine GROUP BY ALL ORDER BY n DESC, stage, reason
"""

# Cohen's kappa between every two judges on the same (comparison, order) verdicts (x, y or tie).
KAPPA_SQL = """
WITH v AS (SELECT judge_fingerprint AS fp, comparison_id, "order", preferred FROM parsed),
joined AS (
    SELECT a.fp AS fa, b.fp AS fb, a.preferred AS la, b.preferred AS lb
    FROM v a JOIN v b ON a.comparison_id = b.comparison_id AND a."order" = b."order" AND a.fp < b.fp
),
totals AS (SELECT fa, fb, count(*) AS n, count(*) FILTER (WHERE la = lb) AS n_agree FROM joined GROUP BY fa, fb),
ma AS (SELECT fa, fb, la AS k, count(*) AS c FROM joined GROUP BY ALL),
mb AS (SELECT fa, fb, lb AS k, count(*) AS c FROM joined GROUP BY ALL),
chance AS (
    SELECT ma.fa, ma.fb, sum(ma.c * mb.c) AS s FROM ma JOIN mb ON ma.fa = mb.fa AND ma.fb = mb.fb AND ma.k = mb.k
    GROUP BY ALL
)
SELECT t.fa, t.fb, t.n, t.n_agree, coalesce(c.s, 0) AS chance_products,
       (SELECT any_value(judge_model) FROM parsed WHERE judge_fingerprint = t.fa) AS model_a,
       (SELECT any_value(judge_model) FROM parsed WHERE judge_fingerprint = t.fb) AS model_b
FROM totals t LEFT JOIN chance c ON t.fa = c.fa AND t.fb = c.fb
ORDER BY t.fa, t.fb
"""

# Human labels against the judge's final outcome of the comparison (a kept pair or not).
HUMAN_OUTCOME_SQL = """
SELECT h.source, coalesce(h.category, '(unknown)') AS category, h.human_winner_id, h.human_preference,
       c.status, c.winner_id
FROM human_labels h LEFT JOIN comparisons c ON c.comparison_id = h.comparison_id
"""

# Human labels against every single verdict (each judge, each order).
HUMAN_VERDICT_SQL = """
SELECT j.judge_fingerprint, any_value(j.judge_model) AS judge_model,
       count(*) AS n,
       count(*) FILTER (WHERE h.human_winner_id IS NOT NULL) AS n_decisive,
       count(*) FILTER (WHERE h.human_winner_id IS NOT NULL AND
           h.human_winner_id = CASE j.preferred WHEN 'x' THEN j.candidate_x_id WHEN 'y' THEN j.candidate_y_id END)
           AS n_agree,
       list(CASE WHEN h.human_winner_id IS NULL THEN 'tie' WHEN h.human_winner_id = j.candidate_x_id THEN 'x'
                 WHEN h.human_winner_id = j.candidate_y_id THEN 'y' END) AS human_labels,
       list(j.preferred) AS judge_labels
FROM human_labels h JOIN parsed j ON j.comparison_id = h.comparison_id
GROUP BY j.judge_fingerprint ORDER BY judge_model, j.judge_fingerprint
"""

VERSIONS_SQL = """
WITH v AS (SELECT * FROM judgment_history),
consistency AS (
    SELECT judge_fingerprint, count(*) AS n_both, count(*) FILTER (WHERE first = second) AS n_same FROM (
        SELECT judge_fingerprint, comparison_id,
               max(preferred) FILTER (WHERE "order" = 'xy') AS first, max(preferred) FILTER (WHERE "order" = 'yx') AS second
        FROM v WHERE preferred IS NOT NULL AND error IS NULL GROUP BY ALL
        HAVING count(*) FILTER (WHERE "order" = 'xy') = 1 AND count(*) FILTER (WHERE "order" = 'yx') = 1)
    GROUP BY judge_fingerprint
)
SELECT v.judge_fingerprint, any_value(v.judge_model) AS judge_model, min(v.judged_at) AS first_seen,
       max(v.judged_at) AS last_seen, count(*) AS n,
       count(*) FILTER (WHERE v.preference IN ('A', 'B')) AS n_decisive,
       count(*) FILTER (WHERE v.preference = 'A') AS n_first_wins,
       any_value(c.n_both) AS n_both, any_value(c.n_same) AS n_same, avg(v.recency_weight) AS mean_recency_weight
FROM v LEFT JOIN consistency c USING (judge_fingerprint)
GROUP BY v.judge_fingerprint ORDER BY first_seen, v.judge_fingerprint
"""

# Flip rate between consecutive versions of a judge: a judge is a slot of the configuration's judge list
# (``judge_slot``; the judge model where it is unknown), each of its fingerprints a version, ordered by
# first verdict. The same (comparison, order) judged by a version and the one before it either keeps or
# flips its verdict.
FLIPS_SQL = """
WITH versions AS (
    SELECT judge_fingerprint AS fp, coalesce(CAST(any_value(judge_slot) AS VARCHAR), any_value(judge_model)) AS slot,
           min(judged_at) AS t
    FROM judgment_history GROUP BY judge_fingerprint
),
steps AS (SELECT fp, lag(fp) OVER (PARTITION BY slot ORDER BY t, fp) AS previous FROM versions),
v AS (
    SELECT judge_fingerprint AS fp, comparison_id, "order", preferred, coalesce(category, '(unknown)') AS category
    FROM judgment_history WHERE preferred IS NOT NULL AND error IS NULL
)
SELECT s.previous AS old_fp, s.fp AS new_fp, n.category, count(*) AS n,
       sum((o.preferred <> n.preferred)::INTEGER) AS n_flipped
FROM steps s
JOIN v o ON o.fp = s.previous
JOIN v n ON n.fp = s.fp AND n.comparison_id = o.comparison_id AND n."order" = o."order"
WHERE s.previous IS NOT NULL
GROUP BY ALL ORDER BY old_fp, new_fp, n.category
"""

WEEKLY_SQL = """
SELECT judge_fingerprint, any_value(judge_model) AS judge_model, date_trunc('week', judged_at) AS week,
       count(*) AS n, count(*) FILTER (WHERE preference IN ('A', 'B')) AS n_decisive,
       count(*) FILTER (WHERE preference = 'A') AS n_first_wins,
       count(*) FILTER (WHERE parse_status = 'unparseable') AS n_unparseable
FROM judgment_history GROUP BY judge_fingerprint, week ORDER BY week, judge_model, judge_fingerprint
"""


# --------------------------------------------------------------------------- small statistics

def _ratio(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval for a proportion (95% by default); None when n is 0."""
    if not n:
        return None
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)


def cohens_kappa(n: int, n_agree: int, chance_products: float) -> float | None:
    """Kappa from the count of items, the count where both raters agree, and sum_k n_a(k) * n_b(k)."""
    if not n:
        return None
    observed = n_agree / n
    expected = chance_products / (n * n)
    if expected >= 1.0:
        return None  # both raters gave one and the same label throughout: kappa is undefined
    return round((observed - expected) / (1 - expected), 4)


def kappa_from_labels(a: list, b: list) -> float | None:
    """Cohen's kappa of two equal-length label lists."""
    n = len(a)
    if not n:
        return None
    agree = sum(x == y for x, y in zip(a, b))
    ca, cb = pd.Series(a).value_counts(), pd.Series(b).value_counts()
    chance = float(sum(ca.get(k, 0) * cb.get(k, 0) for k in set(ca.index) | set(cb.index)))
    return cohens_kappa(n, agree, chance)


def _share_entry(group: str, successes: int, n: int, band: float | None = None) -> dict[str, Any]:
    share = _ratio(successes, n)
    entry = {"group": group, "n": int(n), "share": share, "ci95": wilson_interval(successes, n)}
    if band is not None:
        entry["flagged"] = bool(share is not None and round(abs(share - 0.5), 4) > band)
    return entry


# --------------------------------------------------------------------------- the length-controlled model

def length_controlled(model_rows: pd.DataFrame) -> dict[str, Any]:
    """Raw vs length-controlled win rates per generator, and the length effect, from a logistic model.

    P(a wins) = sigmoid(theta[gen_a] - theta[gen_b] + beta * tanh(diff / sd)), with one generator's
    theta fixed at 0 and diff = words(a) - words(b). The length-controlled win rate of a generator is
    its mean predicted win probability against the opponents it met with the length term set to 0
    (AlpacaEval's construction, adapted to pairs without a fixed baseline). Fitted by maximum
    likelihood (statsmodels Logit); when length (or a generator) separates the outcomes perfectly,
    the likelihood has no maximum and a lightly L2-penalised fit is used instead (no intervals).
    """
    method = ("logistic regression (statsmodels): P(a wins) = sigmoid(theta[gen_a] - theta[gen_b] + "
              "beta * tanh(word difference / sd))")
    n = len(model_rows)
    out: dict[str, Any] = {"method": method, "n_pairs": int(n), "status": "ok"}
    if n < 10:
        out["status"] = "too few pairs (need 10)"
        return out
    diff = model_rows["diff"].to_numpy(dtype="float64")
    sd = float(np.sqrt(np.mean(diff ** 2)))  # scale around 0: the model has no intercept
    if sd == 0:
        out["status"] = "every pair has responses of equal length"
        return out
    y = model_rows["a_won"].to_numpy(dtype="float64")
    generators = pd.concat([model_rows["a_gen"], model_rows["b_gen"]]).value_counts()
    names = list(generators.index)  # most frequent first: the reference (theta = 0)
    columns = {"length": np.tanh(diff / sd)}
    a_gen, b_gen = model_rows["a_gen"].to_numpy(), model_rows["b_gen"].to_numpy()
    for name in names[1:]:
        columns[f"gen:{name}"] = (a_gen == name).astype("float64") - (b_gen == name).astype("float64")
    X = pd.DataFrame(columns)
    X = X.loc[:, (X != 0).any(axis=0)]  # a generator never met by another has no identifiable strength
    params, ci, p_value, separation = _fit_logit(y, X)
    beta = float(params["length"])
    out.update({
        "length_scale_words": round(sd, 2),
        "length_coef": round(beta, 4),
        "length_coef_ci95": ci,
        "p_value": p_value,
        "p_longer_wins_1sd": round(float(_sigmoid(beta * math.tanh(1.0))), 4),
        "separation": separation,
    })
    theta = {name: float(params.get(f"gen:{name}", 0.0)) for name in names}
    by_generator = []
    for name in names:
        mask_a, mask_b = (a_gen == name) & (b_gen != name), (b_gen == name) & (a_gen != name)
        met = int(mask_a.sum() + mask_b.sum())
        if not met:
            continue
        won = int(y[mask_a].sum() + (1 - y[mask_b]).sum())
        opponents = np.concatenate([b_gen[mask_a], a_gen[mask_b]])
        strengths = np.array([theta[o] for o in opponents])
        lc = float(np.mean(_sigmoid(theta[name] - strengths)))
        by_generator.append({"generator": name, "n": met, "win_rate": _ratio(won, met),
                             "win_rate_ci95": wilson_interval(won, met), "lc_win_rate": round(lc, 4)})
    out["by_generator"] = by_generator
    return out


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _fit_logit(y: np.ndarray, X: pd.DataFrame) -> tuple[pd.Series, list | None, float | None, bool]:
    import statsmodels.api as sm
    from statsmodels.tools.sm_exceptions import ConvergenceWarning, PerfectSeparationWarning

    separation = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PerfectSeparationWarning)
            warnings.simplefilter("error", ConvergenceWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            result = sm.Logit(y, X).fit(disp=0, method="newton", maxiter=50)
        if not result.mle_retvals.get("converged", True) or not np.all(np.isfinite(result.bse)) or \
                float(np.max(np.abs(result.params))) > 20:
            raise ValueError("no finite maximum")
        ci = result.conf_int().loc["length"]
        return result.params, [round(float(ci.iloc[0]), 4), round(float(ci.iloc[1]), 4)], \
            float(f"{result.pvalues['length']:.3g}"), separation
    except Exception:  # noqa: BLE001 - separation shows up as a warning, an error or an infinite estimate
        separation = True
    penalised = sm.GLM(y, X, family=sm.families.Binomial()).fit_regularized(alpha=1.0 / len(y), L1_wt=0.0)
    return pd.Series(penalised.params, index=X.columns), None, None, separation


# --------------------------------------------------------------------------- setting up relations

def _conform(con: duckdb.DuckDBPyConnection, name: str, source: str | None) -> set[str]:
    """A temp view ``name`` over ``source`` with every column of the schema (missing ones NULL, typed).

    Returns the columns the source really has.
    """
    schema = RELATIONS[name]
    if source is None:
        body = ", ".join(f'CAST(NULL AS {kind}) AS "{column}"' for column, kind in schema.items())
        con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT {body} WHERE false")
        return set()
    present = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
    extra = [f'CAST(NULL AS {kind}) AS "{column}"' for column, kind in schema.items() if column not in present]
    casts = [f'TRY_CAST("{c}" AS {kind}) AS "{c}"' if kind != "VARCHAR" else f'CAST("{c}" AS VARCHAR) AS "{c}"'
             for c, kind in schema.items() if c in present]
    others = [f'"{c}"' for c in present if c not in schema]
    con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT {', '.join(casts + extra + others)} FROM {source}")
    return present


def compute_audit(pairs: pd.DataFrame, judgments: pd.DataFrame, comparisons: pd.DataFrame, *,
                  quarantine: pd.DataFrame | None = None, judgment_history: pd.DataFrame | None = None,
                  human_labels: pd.DataFrame | None = None, band: float = LENGTH_BIAS_BAND) -> dict[str, Any]:
    """Every audit figure from DataFrames, as a JSON-ready dict."""
    frames = {"pairs": pairs, "judgments": judgments, "comparisons": comparisons, "quarantine": quarantine,
              "judgment_history": judgment_history, "human_labels": human_labels}
    con = duckdb.connect()
    try:
        present = {}
        for name, frame in frames.items():
            if frame is None:
                present[name] = _conform(con, name, None)
                continue
            con.register(f"{name}_frame", _null_columns_as_text(frame))
            present[name] = _conform(con, name, f"{name}_frame")
        return audit_connection(con, band, stored_word_counts=_has_word_counts(present["pairs"]))
    finally:
        con.close()


def _null_columns_as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """All-null object columns would be DuckDB's NULL type; make them text so casts and comparisons work."""
    empty = [c for c in frame.columns if frame[c].dtype == object and frame[c].isna().all()]
    return frame.astype({c: "string" for c in empty}) if empty else frame


def audit_database(database: Path | str, band: float = LENGTH_BIAS_BAND, schema: str = "pref",
                   memory_limit: str | None = "1GB") -> dict[str, Any]:
    """Every audit figure over the stored tables of a pipeline database, attached read-only."""
    from pref_pipeline.store import _locked

    @_locked
    def run() -> dict[str, Any]:
        con = duckdb.connect()
        try:
            if memory_limit:
                con.execute(f"SET memory_limit = '{memory_limit}'")
            con.execute(f"ATTACH '{Path(database)}' AS stored (READ_ONLY)")
            present = {r[0] for r in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_catalog = 'stored' AND table_schema = ?",
                [schema]).fetchall()}
            columns = {name: _conform(con, name, f"stored.{schema}.{table}" if table in present else None)
                       for name, table in STORED_TABLES.items()}
            return audit_connection(con, band, stored_word_counts=_has_word_counts(columns["pairs"]))
        finally:
            con.close()

    return run()


# --------------------------------------------------------------------------- the audit

def _has_word_counts(columns: set[str]) -> bool:
    return {"chosen_words", "rejected_words"} <= columns


def audit_connection(con: duckdb.DuckDBPyConnection, band: float = LENGTH_BIAS_BAND,
                     stored_word_counts: bool = False) -> dict[str, Any]:
    """Every figure, from a connection with the relations of ``RELATIONS`` in place.

    ``stored_word_counts``: the pairs carry ``chosen_words``/``rejected_words`` (the pipeline stores
    them), so the texts need not be read; otherwise words are counted here.
    """
    con.execute(WORDS_MACRO)
    if stored_word_counts:
        counts = {"chosen_words": "CAST(p.chosen_words AS BIGINT)", "rejected_words": "CAST(p.rejected_words AS BIGINT)"}
    else:
        counts = {"chosen_words": "words(p.chosen)", "rejected_words": "words(p.rejected)"}
    con.execute(KEPT_PAIRS_TABLE.format(**counts))
    con.execute(PARSED_VIEW)
    con.execute(BOTH_ORDERS_VIEW)

    n_compared, n_longer, n_equal, mean_chosen, mean_rejected, n_kept = con.execute(LENGTH_BIAS_SQL).fetchall()[0]
    pct_longer = _ratio(n_longer, n_compared)
    # Rounded so that exactly 0.5 ± the band (e.g. 0.65, whose float difference is 0.15000000000000002) is inside it.
    length_flagged = pct_longer is not None and round(abs(pct_longer - 0.5), 4) > band
    interval = wilson_interval(n_longer, n_compared)
    length_groups = {
        key: [_share_entry(str(g), int(k), int(n), band) for g, n, k in con.execute(LENGTH_BIAS_BY_SQL.format(key=sql)).fetchall()
              if n >= MIN_GROUP_PAIRS]
        for key, sql in LENGTH_GROUPS.items()
    }
    histogram = [[int(d), int(n)] for d, n in con.execute(LENGTH_HISTOGRAM_SQL).fetchall()]
    lc = length_controlled(con.execute(LENGTH_MODEL_SQL).fetchdf())

    position = con.execute(POSITION_BIAS_SQL).fetchall()[0]
    n_both, n_consistent, n_decisive, n_first_wins, n_judgments, n_unparseable, n_errors, n_retries = position
    consistency = _ratio(n_consistent, n_both)
    by_judge = []
    for fp, model, n_dec, n_first, n_ties, n_bo, n_cons in con.execute(POSITION_BY_JUDGE_SQL).fetchall():
        by_judge.append({
            "judge_model": model, "judge_fingerprint": fp, "n_both_orders": int(n_bo),
            "consistency_rate": _ratio(n_cons, n_bo), "consistency_ci95": wilson_interval(n_cons, n_bo),
            "n_decisive": int(n_dec), "first_position_win_rate": _ratio(n_first, n_dec),
            "first_position_ci95": wilson_interval(n_first, n_dec), "n_ties": int(n_ties),
        })

    statuses = {k: int(v) for k, v in con.execute(STATUS_SQL).fetchall()}
    quarantine_rows = con.execute(QUARANTINE_SQL).fetchall()
    quarantined_pairs = sum(int(n) for stage, _, n in quarantine_rows if stage in PAIR_STAGES)
    gate_failed = sum(int(n) for stage, _, n in quarantine_rows if stage == "gate:preference_pairs")
    left_out_by_export = sum(int(n) for stage, _, n in quarantine_rows if stage == "export")

    agreement = _agreement(con)
    drift = _drift(con)

    flags = []
    if length_flagged:
        flags.append(f"length bias: the longer response was chosen in {pct_longer:.0%} of pairs (outside 50% ± {band:.0%})")
    for key, label in (("by_judge", "judge"), ("by_category", "category")):
        groups = length_groups[key]
        if len(groups) > 1 and not length_flagged:  # a pocket of bias the overall figure hides
            for entry in groups:
                low, high = entry["ci95"] or (0.0, 1.0)
                if entry["flagged"] and (low > 0.5 + band or high < 0.5 - band):
                    flags.append(f"length bias in {label} {entry['group']}: longer chosen in {entry['share']:.0%} "
                                 f"of {entry['n']} pairs (95% CI {low:.0%}-{high:.0%})")
    if consistency is not None and consistency < 0.5:
        flags.append(f"position bias: only {consistency:.0%} of comparisons got the same verdict in both orders")
    if n_unparseable:
        flags.append(f"{n_unparseable} of {n_judgments} judge outputs could not be parsed after retries")
    for pair in agreement["judge_vs_judge"]:
        if pair["kappa"] is not None and pair["n"] >= 20 and pair["kappa"] < 0.2:
            flags.append(f"judges {pair['judge_a']} and {pair['judge_b']} barely agree (kappa {pair['kappa']:.2f} "
                         f"on {pair['n']} verdicts)")
    human = agreement["human"]
    if human["agreement_rate"] is not None and human["n_compared"] >= 10 and human["agreement_rate"] < 0.6:
        flags.append(f"judge agrees with human labels on only {human['agreement_rate']:.0%} of "
                     f"{human['n_compared']} labelled comparisons")
    for change in drift["transitions"]:
        if change["n"] >= DRIFT_FLAG_MIN and change["flip_rate"] is not None and change["flip_rate"] >= DRIFT_FLAG_RATE:
            flags.append(f"judge change {change['from_model']} ({change['from']}) -> {change['to_model']} "
                         f"({change['to']}) flipped {change['flip_rate']:.0%} of {change['n']} shared verdicts")
    if gate_failed:
        flags.append(f"{gate_failed} pair(s) of batches that failed the gate are left out of the figures and the export")
    judge_models = {r[0] for r in con.execute("SELECT DISTINCT judge_model FROM judgments").fetchall()}
    stand_ins = sorted(STAND_IN_MODELS & judge_models)
    if stand_ins:
        flags.append(f"judge {', '.join(stand_ins)} is an offline stand-in whose verdicts are near chance: "
                     "do not train on this data; configure a capable judge")

    return {
        "pairs": {
            "kept": int(n_kept),
            "quarantined": int(quarantined_pairs),
            "left_out_by_export": int(left_out_by_export),  # e.g. length rebalancing: kept, audited, not published
            "comparisons": int(sum(statuses.values())),
            "by_status": statuses,
        },
        "length_bias": {
            "pct_longer_chosen": pct_longer,
            "flagged": bool(length_flagged),
            "ci95": interval,
            "band": band,
            "n_compared": int(n_compared or 0),
            "n_equal_length": int(n_equal or 0),
            "mean_chosen_words": round(float(mean_chosen), 1) if mean_chosen is not None else None,
            "mean_rejected_words": round(float(mean_rejected), 1) if mean_rejected is not None else None,
            "unit": "words",
            **length_groups,
            "histogram": histogram,
        },
        "length_controlled": lc,
        "position_bias": {
            "consistency_rate": consistency,
            "consistency_ci95": wilson_interval(n_consistent, n_both),
            "first_position_win_rate": _ratio(n_first_wins, n_decisive),
            "first_position_ci95": wilson_interval(n_first_wins, n_decisive),
            "n_both_orders": int(n_both),
            "by_judge": by_judge,
        },
        "agreement": agreement,
        "drift": drift,
        "quarantine": {
            "total": int(sum(int(n) for _, _, n in quarantine_rows)),
            "by_reason": [{"stage": s, "reason": r, "n": int(n)} for s, r, n in quarantine_rows],
        },
        "judging": {
            "judgments": int(n_judgments),
            "unparseable": int(n_unparseable),
            "errors": int(n_errors),
            "parse_retries": int(n_retries),
        },
        "flags": flags,
    }


def _agreement(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    judge_vs_judge = []
    for fa, fb, n, n_agree, chance, model_a, model_b in con.execute(KAPPA_SQL).fetchall():
        judge_vs_judge.append({"judge_a": model_a, "fingerprint_a": fa, "judge_b": model_b, "fingerprint_b": fb,
                               "n": int(n), "observed_agreement": _ratio(n_agree, n),
                               "kappa": cohens_kappa(int(n), int(n_agree), float(chance))})

    outcome = con.execute(HUMAN_OUTCOME_SQL).fetchdf()
    decisive = outcome[outcome["human_winner_id"].notna()]
    judged = decisive[decisive["status"] == "consistent"]
    agree = judged["winner_id"] == judged["human_winner_id"]

    def rows_by(column: str) -> list[dict[str, Any]]:
        out = []
        for key, group in judged.assign(agree=agree).groupby(column, sort=True):
            out.append({column: key, **_share_entry(str(key), int(group["agree"].sum()), len(group))})
        for entry in out:
            entry.pop("group")
            entry["agreement_rate"] = entry.pop("share")
        return sorted(out, key=lambda e: (e["agreement_rate"] if e["agreement_rate"] is not None else 1.0, -e["n"]))

    by_category = rows_by("category")
    verdicts = []
    for fp, model, n, n_dec, n_agree, human_labels, judge_labels in con.execute(HUMAN_VERDICT_SQL).fetchall():
        verdicts.append({"judge_model": model, "judge_fingerprint": fp, "n": int(n), "n_decisive": int(n_dec),
                         "accuracy": _ratio(n_agree, n_dec), "accuracy_ci95": wilson_interval(n_agree, n_dec),
                         "kappa": kappa_from_labels(list(human_labels), list(judge_labels))})
    human = {
        "n_labels": int(len(outcome)),
        "n_human_ties": int(outcome["human_winner_id"].isna().sum()),
        "n_compared": int(len(judged)),  # decisive human label and a pair from the judge
        "n_judge_undecided": int(len(decisive) - len(judged)),  # decisive human label, no pair (tie, inconsistent...)
        "agreement_rate": _ratio(int(agree.sum()), len(judged)),
        "agreement_ci95": wilson_interval(int(agree.sum()), len(judged)),
        "by_category": by_category,
        "most_divergent_category": by_category[0]["category"] if by_category else None,
        "by_source": rows_by("source"),
        "per_verdict": verdicts,
    }
    return {"judge_vs_judge": judge_vs_judge, "human": human}


def _drift(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    versions = []
    models = {}
    for fp, model, first, last, n, n_dec, n_first, n_both, n_same, weight in con.execute(VERSIONS_SQL).fetchall():
        models[fp] = model
        versions.append({"judge_fingerprint": fp, "judge_model": model, "first_seen": _iso(first),
                         "last_seen": _iso(last), "n": int(n), "first_position_win_rate": _ratio(n_first, n_dec),
                         "consistency_rate": _ratio(int(n_same or 0), int(n_both or 0)),
                         "n_both_orders": int(n_both or 0),
                         "mean_recency_weight": None if weight is None else round(float(weight), 4)})
    flips = con.execute(FLIPS_SQL).fetchdf()
    transitions = []
    for (old, new), group in flips.groupby(["old_fp", "new_fp"], sort=False):
        n, n_flipped = int(group["n"].sum()), int(group["n_flipped"].sum())
        transitions.append({
            "from": old, "from_model": models.get(old), "to": new, "to_model": models.get(new), "n": n,
            "flip_rate": _ratio(n_flipped, n), "flip_ci95": wilson_interval(n_flipped, n),
            "by_category": [{"category": c, "n": int(k), "flip_rate": _ratio(int(f), int(k))}
                            for c, k, f in zip(group["category"], group["n"], group["n_flipped"])],
        })
    weekly = []
    for fp, model, week, n, n_dec, n_first, n_unparseable in con.execute(WEEKLY_SQL).fetchall():
        weekly.append({"judge_fingerprint": fp, "judge_model": model, "week": _iso(week)[:10] if week else None,
                       "n": int(n), "first_position_win_rate": _ratio(n_first, n_dec),
                       "unparseable_rate": _ratio(n_unparseable, n)})
    return {"versions": versions, "transitions": transitions, "weekly": weekly}


def _iso(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return pd.Timestamp(value).isoformat()


# --------------------------------------------------------------------------- the report

def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _ci(interval: list | tuple | None) -> str:
    return "" if not interval else f" (95% CI {interval[0]:.0%}–{interval[1]:.0%})"


def _table(header: list[str], rows: list[list[Any]]) -> str:
    if not rows:
        return "_(none)_"
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _left_out(pairs: dict[str, Any]) -> str:
    n = pairs.get("left_out_by_export") or 0
    return (f" Of the kept pairs, {n} were left out of the published files by the export's length rebalancing "
            "(the figures below are measured before it)." if n else "")


def render_markdown(audit: dict[str, Any], images: dict[str, str] | None = None) -> str:
    """A report a person who did not build the pipeline can read.

    ``images`` maps plot names (``length_difference``, ``length_by_category``, ``position``, ``drift``)
    to an image reference (a file name, or a ``data:`` URI for the Dagster UI).
    """
    images = images or {}
    lb, pb, pairs, judging = audit["length_bias"], audit["position_bias"], audit["pairs"], audit["judging"]
    lc = audit.get("length_controlled") or {}
    agreement = audit.get("agreement") or {"judge_vs_judge": [], "human": {}}
    drift = audit.get("drift") or {"versions": [], "transitions": [], "weekly": []}
    quarantine = audit.get("quarantine") or {"total": 0, "by_reason": []}
    statuses = "\n".join(f"| {status} | {n} |" for status, n in pairs["by_status"].items()) or "| (none) | 0 |"
    flags = "\n".join(f"- ⚠ {flag}" for flag in audit["flags"]) or "- none"

    def image(name: str, alt: str) -> str:
        return f"\n![{alt}]({images[name]})\n" if name in images else ""

    def group_rows(key: str) -> list[list[Any]]:
        return [[e["group"], e["n"], _pct(e["share"]), _ci(e["ci95"]).strip(" ()").replace("95% CI ", ""),
                 "⚠" if e.get("flagged") else ""] for e in lb.get(key, [])]

    parts = [f"""# Preference data audit

**{pairs['kept']} pairs kept** from {pairs['comparisons']} comparisons; {pairs.get('quarantined', 0)} comparisons or
pairs quarantined (see below: nothing is dropped without a reason).{_left_out(pairs)}

## Warnings
{flags}

## Length bias
Share of kept pairs where the longer response (in words) was chosen: **{_pct(lb['pct_longer_chosen'])}**{_ci(lb.get('ci95'))}
over {lb['n_compared']} pairs of unequal length ({lb['n_equal_length']} of equal length left out).
An unbiased judge sits near 50%; beyond 50% ± {lb['band']:.0%} the report flags it. The interval says how
much of a figure could be chance: on a few pairs it is wide.
Mean length: chosen {lb['mean_chosen_words']} words, rejected {lb['mean_rejected_words']} words.
{image('length_difference', 'length difference histogram')}
By judge:

{_table(['judge', 'pairs', 'longer chosen', '95% CI', ''], group_rows('by_judge'))}

By generation strategy (chosen vs rejected):

{_table(['strategies', 'pairs', 'longer chosen', '95% CI', ''], group_rows('by_strategy'))}

By prompt category:

{_table(['category', 'pairs', 'longer chosen', '95% CI', ''], group_rows('by_category'))}
{image('length_by_category', 'length bias by category')}"""]

    parts.append("## Length-controlled view")
    if lc.get("status") == "ok":
        effect = ("length alone separates the verdicts perfectly (the longer, or the shorter, always wins): "
                  "the effect is estimated with a small penalty and has no interval"
                  if lc.get("separation") else
                  f"length coefficient {lc['length_coef']} (95% CI {lc['length_coef_ci95'][0]} to "
                  f"{lc['length_coef_ci95'][1]}, p = {lc['p_value']})")
        parts.append(f"""A logistic model predicts which response wins from the generators' strengths and the length
difference (tanh of the difference over {lc['length_scale_words']} words), fitted on {lc['n_pairs']} pairs.
Other things equal, a response {lc['length_scale_words']} words longer wins **{_pct(lc['p_longer_wins_1sd'])}** of
the time (50% = length does not matter); {effect}.
The length-controlled win rate is what each generator would win with the length effect removed: when it
is far below the raw win rate, the generator wins by writing more, not better.

{_table(['generator', 'pairs vs other generators', 'raw win rate', 'length-controlled'],
        [[g['generator'], g['n'], _pct(g['win_rate']), _pct(g['lc_win_rate'])] for g in lc.get('by_generator', [])])}
""")
    else:
        parts.append(f"Not computed: {lc.get('status', 'no data')}.\n")

    parts.append(f"""## Position bias
Each pair is judged twice, with the responses swapped. Same verdict in both orders:
**{_pct(pb['consistency_rate'])}**{_ci(pb.get('consistency_ci95'))} of {pb['n_both_orders']} comparisons. The response shown
first won {_pct(pb['first_position_win_rate'])}{_ci(pb.get('first_position_ci95'))} of decisive verdicts (an unbiased judge: about 50%).
{image('position', 'position bias by judge')}
{_table(['judge', 'fingerprint', 'both orders', 'same verdict', 'first shown wins', 'ties'],
        [[j['judge_model'], j['judge_fingerprint'], j['n_both_orders'], _pct(j['consistency_rate']),
          _pct(j['first_position_win_rate']), j['n_ties']] for j in pb.get('by_judge', [])])}
""")

    human = agreement.get("human") or {}
    parts.append("## Agreement\nBetween judges (Cohen's kappa on the same verdicts; 1 = always agree, 0 = chance level):\n")
    parts.append(_table(["judge A", "judge B", "verdicts", "agree", "kappa"],
                        [[p["judge_a"], p["judge_b"], p["n"], _pct(p["observed_agreement"]), p["kappa"]]
                         for p in agreement.get("judge_vs_judge", [])]) + "\n")
    if human.get("n_labels"):
        parts.append(f"""
With human labels ({human['n_labels']} labels, {human['n_human_ties']} of them ties): the judge's pair matches the
human choice in **{_pct(human['agreement_rate'])}**{_ci(human.get('agreement_ci95'))} of {human['n_compared']} comparisons;
on {human['n_judge_undecided']} more the human chose but the judge gave no pair. Most divergent category:
**{human.get('most_divergent_category') or 'n/a'}**.

{_table(['category', 'labelled pairs', 'judge agrees', '95% CI'],
        [[c['category'], c['n'], _pct(c['agreement_rate']), _ci(c['ci95']).strip(' ()').replace('95% CI ', '')]
         for c in human.get('by_category', [])])}

Every single verdict (each order) against the human label:

{_table(['judge', 'fingerprint', 'verdicts', 'accuracy', 'kappa'],
        [[v['judge_model'], v['judge_fingerprint'], v['n_decisive'], _pct(v['accuracy']), v['kappa']]
         for v in human.get('per_verdict', [])])}
""")
    else:
        parts.append("\nNo human labels yet: `pref-pipeline review export` writes a sheet to label, "
                     "`pref-pipeline review import FILE` reads it back.\n")

    parts.append(f"""## Drift
Every verdict any judge version gave is kept in `judgment_history`. A new version (another model, prompt
or sampling: a new fingerprint) that judged the same comparisons as an older one shows how many verdicts
it flipped.
{image('drift', 'judge versions')}
{_table(['fingerprint', 'judge', 'first seen', 'verdicts', 'same verdict both orders', 'first shown wins'],
        [[v['judge_fingerprint'], v['judge_model'], (v['first_seen'] or '')[:16], v['n'], _pct(v['consistency_rate']),
          _pct(v['first_position_win_rate'])] for v in drift['versions']])}

Flips between versions:

{_table(['from', 'to', 'shared verdicts', 'flipped', 'by category'],
        [[f"{t['from_model']} ({t['from']})", f"{t['to_model']} ({t['to']})", t['n'], _pct(t['flip_rate']),
          ", ".join(f"{c['category']} {_pct(c['flip_rate'])}" for c in t['by_category'])]
         for t in drift['transitions']])}

By week:

{_table(['week', 'judge', 'fingerprint', 'verdicts', 'first shown wins', 'unparseable'],
        [[w['week'], w['judge_model'], w['judge_fingerprint'], w['n'], _pct(w['first_position_win_rate']),
          _pct(w['unparseable_rate'])] for w in drift['weekly']])}
""")

    parts.append(f"""## Comparisons by outcome
| status | comparisons |
|---|---|
{statuses}

## Quarantine
{quarantine['total']} rows in the `quarantine` table, each with its stage and reason:

{_table(['stage', 'reason', 'rows'], [[q['stage'], q['reason'], q['n']] for q in quarantine['by_reason']])}

## Judge calls
{judging['judgments']} verdicts, {judging['unparseable']} unparseable after retries,
{judging['parse_retries']} retries for unparseable output, {judging['errors']} failed calls.
""")
    return "\n".join(parts)


def write_report(audit: dict[str, Any], folder: Path, plots: bool = False) -> tuple[Path, Path]:
    """``audit.json`` and ``audit.md`` (and, with ``plots``, PNG plots the Markdown links to)."""
    folder.mkdir(parents=True, exist_ok=True)
    json_path, md_path = folder / "audit.json", folder / "audit.md"
    images: dict[str, str] = {}
    if plots:
        from pref_pipeline.plots import make_plots

        images = {name: path.name for name, path in make_plots(audit, folder).items()}
    json_path.write_text(json.dumps(audit, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    md_path.write_text(render_markdown(audit, images), encoding="utf-8")
    return json_path, md_path


from pref_pipeline.metrics import longer_chosen_share  # noqa: E402,F401  (moved; re-exported)
