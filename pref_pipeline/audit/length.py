"""Length bias: how often the longer response was chosen, and a length-controlled view of the generators.

- ``length_bias``: the judge's length bias, the share of judge-labelled kept pairs (``label_source``
  ``judge`` or ``construction+judge``: ``metrics.judge_labelled``) of unequal length whose longer response (in
  words) was chosen, with a 95% Wilson interval, overall and by judge, strategy and category; flagged outside
  0.5 ± the band. A construction pair is left out of it: its lengths follow from how it was made (a dropped
  sentence makes the chosen longer by design), not from any judge. Beside it, the seed's figure over every kept
  pair (``pct_longer_chosen_all_pairs``: longer chosen / all pairs, a tie of length counting as not longer) and
  the figures per label source (``by_label_source``);
- ``length_controlled`` (in the spirit of AlpacaEval's length-controlled win rate): a logistic model
  of which response wins on the judge-labelled pairs, with generator strengths and the length difference as
  covariates (statsmodels); each generator's raw and length-controlled win rate, and the length effect.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from pref_pipeline.audit.queries import sql
from pref_pipeline.audit.report import ci, ci_cell, image, pct, table
from pref_pipeline.audit.section import AuditContext
from pref_pipeline.audit.stats import ratio, share_entry, wilson_interval

NAME = "length"
MIN_GROUP_PAIRS = 1  # groups are listed from this many pairs on (their intervals say how little small ones tell)
HISTOGRAM_CLIP = 300  # word differences beyond ± this are counted in the outermost bins
POPULATION = "judge-labelled pairs (label_source judge or construction+judge) of unequal length"
GROUPS = {  # audit.json key -> the SQL expression that names a pair's group
    "by_judge": "coalesce(judge_model_id, '(unknown)')",
    "by_strategy": "coalesce(least(chosen_strategy, rejected_strategy), '(unknown)') || ' vs ' || "
                   "coalesce(greatest(chosen_strategy, rejected_strategy), '(unknown)')",
    "by_category": "coalesce(category, '(unknown)')",
}


def compute(con: duckdb.DuckDBPyConnection, context: AuditContext) -> dict[str, Any]:
    band = context.band
    (n_compared, n_longer, n_equal, mean_chosen, mean_rejected, n_judged, n_pairs,
     n_longer_all) = con.execute(sql("length_bias")).fetchall()[0]
    pct_longer = ratio(n_longer, n_compared)
    # Rounded so that exactly 0.5 ± the band (e.g. 0.65, whose float difference is 0.15000000000000002) is inside it.
    flagged = pct_longer is not None and round(abs(pct_longer - 0.5), 4) > band
    groups = {
        key: [share_entry(str(g), int(k), int(n), band)
              for g, n, k in con.execute(sql("length_bias_by_group").format(group=expression)).fetchall()
              if n >= MIN_GROUP_PAIRS]
        for key, expression in GROUPS.items()
    }
    histogram = [[int(d), int(n)] for d, n in con.execute(sql("length_histogram"), {"clip": HISTOGRAM_CLIP}).fetchall()]
    by_label_source = [
        {"label_source": source, "judge_labelled": bool(judged), "n_pairs": int(n), "n_compared": int(n_unequal),
         "n_longer_chosen": int(k), "pct_longer_chosen": ratio(k, n_unequal), "ci95": wilson_interval(k, n_unequal),
         "pct_longer_chosen_all_pairs": ratio(k, n)}
        for source, judged, n, n_unequal, k in con.execute(sql("length_bias_by_label_source")).fetchall()]
    return {
        "length_bias": {
            "pct_longer_chosen": pct_longer,
            "flagged": bool(flagged),
            "ci95": wilson_interval(n_longer, n_compared),
            "band": band,
            "n_compared": int(n_compared or 0),
            "n_equal_length": int(n_equal or 0),
            "mean_chosen_words": round(float(mean_chosen), 1) if mean_chosen is not None else None,
            "mean_rejected_words": round(float(mean_rejected), 1) if mean_rejected is not None else None,
            "unit": "words",
            **groups,
            "histogram": histogram,
            "population": POPULATION,
            "n_judge_labelled": int(n_judged or 0),
            "pct_longer_chosen_all_pairs": ratio(n_longer_all, n_pairs),
            "all_pairs_ci95": wilson_interval(n_longer_all, n_pairs),
            "n_pairs": int(n_pairs or 0),
            "n_longer_chosen_all_pairs": int(n_longer_all or 0),
            "by_label_source": by_label_source,
        },
        "length_controlled": length_controlled(con.execute(sql("length_model")).fetchdf()),
    }


def flags(figures: dict[str, Any]) -> list[str]:
    lb = figures["length_bias"]
    band, share = lb["band"], lb["pct_longer_chosen"]
    out = []
    if lb["flagged"]:
        out.append(f"length bias: the longer response was chosen in {share:.0%} of judge-labelled pairs "
                   f"(outside 50% ± {band:.0%})")
    for key, label in (("by_judge", "judge"), ("by_category", "category")):
        groups = lb[key]
        if len(groups) > 1 and not lb["flagged"]:  # a pocket of bias the overall figure hides
            for entry in groups:
                low, high = entry["ci95"] or (0.0, 1.0)
                if entry["flagged"] and (low > 0.5 + band or high < 0.5 - band):
                    out.append(f"length bias in {label} {entry['group']}: longer chosen in {entry['share']:.0%} "
                               f"of {entry['n']} pairs (95% CI {low:.0%}-{high:.0%})")
    return out


# --------------------------------------------------------------------------- the report

def why_no_groups(figures: dict[str, Any]) -> str:
    kept = figures["pairs"]["kept"]
    if not kept:
        return "No pairs kept yet: the length figures are measured on kept pairs."
    judged = figures["length_bias"].get("n_judge_labelled", kept)
    if not judged:
        return ("No kept pair was labelled by a judge (every label is known by construction): the judge's length "
                "bias is measured on judge-labelled pairs.")
    which = "kept pair" if judged == kept else "judge-labelled pair"
    return f"Every {which} has responses of equal length: there is no longer response to count."


def _all_pairs(lb: dict[str, Any]) -> str:
    """The seed's figure over every kept pair, and the figures per label source."""
    if not lb.get("n_pairs"):
        return ""
    sources = table(['label source', 'pairs', 'longer chosen (of all)', 'unequal length', 'longer chosen', '95% CI',
                     'in the judge figure'],
                    [[e['label_source'], e['n_pairs'], pct(e['pct_longer_chosen_all_pairs']), e['n_compared'],
                      pct(e['pct_longer_chosen']), ci_cell(e['ci95']), 'yes' if e['judge_labelled'] else 'no']
                     for e in lb.get('by_label_source', [])], why_empty="No kept pairs.")
    return f"""
Over every kept pair, as the seed counts it (the longer response chosen, out of all {lb['n_pairs']} pairs; a tie of
length counts as not longer): **{pct(lb['pct_longer_chosen_all_pairs'])}**{ci(lb.get('all_pairs_ci95'))}. It mixes
pairs whose label is known by construction, whose lengths follow from how they were made (a dropped sentence
makes the chosen longer by design): it describes the dataset, not the judge. By where the label comes from:

{sources}
"""


def render(figures: dict[str, Any], images: dict[str, str]) -> str:
    lb = figures["length_bias"]
    why = why_no_groups(figures)

    def group_rows(key: str) -> list[list[Any]]:
        return [[e["group"], e["n"], pct(e["share"]), ci_cell(e["ci95"]), "⚠" if e.get("flagged") else ""]
                for e in lb.get(key, [])]

    mean_length = (f"Mean length of the judge-labelled pairs: chosen {lb['mean_chosen_words']} words, rejected "
                   f"{lb['mean_rejected_words']} words."
                   if lb["mean_chosen_words"] is not None else "Mean length: n/a (no judge-labelled pairs).")
    if any(lb.get(key) for key in GROUPS):
        groups = f"""By judge:

{table(['judge', 'pairs', 'longer chosen', '95% CI', ''], group_rows('by_judge'), why_empty=why)}

By generation strategy (chosen vs rejected):

{table(['strategies', 'pairs', 'longer chosen', '95% CI', ''], group_rows('by_strategy'), why_empty=why)}

By prompt category:

{table(['category', 'pairs', 'longer chosen', '95% CI', ''], group_rows('by_category'), why_empty=why)}"""
    else:  # every grouping is empty for the same reason: say it once
        groups = f"By judge, strategy and category: _{why}_"
    n_judged = lb.get("n_judge_labelled", lb["n_compared"] + lb["n_equal_length"])
    length_bias = f"""## Length bias
The judge's length bias: share of the judge-labelled kept pairs (`label_source` judge or construction+judge) where
the longer response (in words) was chosen: **{pct(lb['pct_longer_chosen'])}**{ci(lb.get('ci95'))}
over {lb['n_compared']} pairs of unequal length ({lb['n_equal_length']} of equal length left out;
{max(0, lb.get('n_pairs', n_judged) - n_judged)} pairs labelled by construction are not in it).
An unbiased judge sits near 50%; beyond 50% ± {lb['band']:.0%} the report flags it. The interval says how
much of a figure could be chance: on a few pairs it is wide.
{mean_length}
{_all_pairs(lb)}
{image(images, 'length_difference', 'length difference histogram')}
{groups}
{image(images, 'length_by_category', 'length bias by category')}"""
    return "\n".join([length_bias, "## Length-controlled view", _render_controlled(figures.get("length_controlled") or {})])


def _render_controlled(lc: dict[str, Any]) -> str:
    if lc.get("status") != "ok":
        return f"Not computed: {lc.get('status', 'no data')}.\n"
    effect = ("length alone separates the verdicts perfectly (the longer, or the shorter, always wins): "
              "the effect is estimated with a small penalty and has no interval"
              if lc.get("separation") else
              f"length coefficient {lc['length_coef']} (95% CI {lc['length_coef_ci95'][0]} to "
              f"{lc['length_coef_ci95'][1]}, p = {lc['p_value']})")
    generators = table(['generator', 'pairs vs other generators', 'raw win rate', 'length-controlled'],
                       [[g['generator'], g['n'], pct(g['win_rate']), pct(g['lc_win_rate'])]
                        for g in lc.get('by_generator', [])],
                       why_empty="No pair sets two different generators against each other: a win rate needs "
                                 "a generator to meet another one.")
    return f"""A logistic model predicts which response the judges chose from the generators' strengths and the length
difference (tanh of the difference over {lc['length_scale_words']} words), fitted on {lc['n_pairs']} judge-labelled pairs
(pairs labelled by construction are left out: how they were made decides their winner).
Other things equal, a response {lc['length_scale_words']} words longer wins **{pct(lc['p_longer_wins_1sd'])}** of
the time (50% = length does not matter); {effect}.
The length-controlled win rate is what each generator would win with the length effect removed: when it
is far below the raw win rate, the generator wins by writing more, not better.

{generators}
"""


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
    out: dict[str, Any] = {"method": method, "n_pairs": int(n), "status": "ok",
                           "population": "judge-labelled pairs (label_source judge or construction+judge)"}
    if n < 10:
        out["status"] = "too few pairs (need 10 judge-labelled)"
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
    params, interval, p_value, separation = _fit_logit(y, X)
    beta = float(params["length"])
    out.update({
        "length_scale_words": round(sd, 2),
        "length_coef": round(beta, 4),
        "length_coef_ci95": interval,
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
        by_generator.append({"generator": name, "n": met, "win_rate": ratio(won, met),
                             "win_rate_ci95": wilson_interval(won, met), "lc_win_rate": round(lc, 4)})
    out["by_generator"] = by_generator
    return out


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# What the fit imports (lazily: a process that never audits does not pay for statsmodels).
FIT_MODULES = ("statsmodels.discrete.discrete_model", "statsmodels.genmod.generalized_linear_model",
               "statsmodels.genmod.families")


def _fit_logit(y: np.ndarray, X: pd.DataFrame) -> tuple[pd.Series, list | None, float | None, bool]:
    # The two model modules, not ``statsmodels.api`` (which imports every model: ~0.15 s more per process).
    from statsmodels.discrete.discrete_model import Logit
    from statsmodels.genmod.families import Binomial
    from statsmodels.genmod.generalized_linear_model import GLM
    from statsmodels.tools.sm_exceptions import (
        ConvergenceWarning,
        PerfectSeparationWarning,
    )

    separation = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PerfectSeparationWarning)
            warnings.simplefilter("error", ConvergenceWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            result = Logit(y, X).fit(disp=0, method="newton", maxiter=50)
        if not result.mle_retvals.get("converged", True) or not np.all(np.isfinite(result.bse)) or \
                float(np.max(np.abs(result.params))) > 20:
            raise ValueError("no finite maximum")
        interval = result.conf_int().loc["length"]
        return result.params, [round(float(interval.iloc[0]), 4), round(float(interval.iloc[1]), 4)], \
            float(f"{result.pvalues['length']:.3g}"), separation
    except Exception:  # noqa: BLE001 - separation shows up as a warning, an error or an infinite estimate
        separation = True
    penalised = GLM(y, X, family=Binomial()).fit_regularized(alpha=1.0 / len(y), L1_wt=0.0)
    return pd.Series(penalised.params, index=X.columns), None, None, separation
