"""The audit package: its statistics against published values, one word count, sections that plug in,
and a report that says why a figure is missing instead of showing an empty table."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pandas as pd
import pytest

from pref_pipeline import audit
from pref_pipeline.audit import (
    cohens_kappa,
    compute_audit,
    headline_figures,
    kappa_from_labels,
    render_markdown,
    wilson_interval,
)
from pref_pipeline.metrics import word_count
from pref_pipeline.pairs import PAIR_COLUMNS
from tests.helpers import JUDGE, ROOT, empty_comparisons, empty_judgments, history_frame, known_judgments

NO_PAIRS = pd.DataFrame(columns=["chosen", "rejected"])


# --------------------------------------------------------------------------- statistics (statsmodels)

@pytest.mark.parametrize(("successes", "n", "expected"), [
    # Wilson 95%: centre (p + z²/2n) / (1 + z²/n), half-width z·sqrt(p(1-p)/n + z²/4n²) / (1 + z²/n), z = 1.95996.
    (3, 6, (0.1876, 0.8124)),  # p = 0.5: centre 0.5, half-width 1.96·sqrt(0.04167 + 0.02668) / 1.64025 = 0.3124
    (0, 10, (0.0, 0.2775)),  # the upper end z²/n / (1 + z²/n) = 0.38415 / 1.38415
    (20, 20, (0.8389, 1.0)),  # 1 / (1 + z²/n) = 1 / 1.19207
    (13, 20, (0.4329, 0.8188)),
])
def test_wilson_interval_matches_published_values(successes, n, expected):
    assert wilson_interval(successes, n) == expected


def test_wilson_interval_without_data_is_none():
    assert wilson_interval(0, 0) is None


@pytest.mark.parametrize(("table", "expected"), [
    # Wikipedia's worked examples of Cohen's kappa (rater A in rows, B in columns).
    ([[20, 5], [10, 15]], 0.4),  # p_o 0.7, p_e 0.5
    ([[45, 15], [25, 15]], 0.1304),  # p_o 0.6, p_e 0.54
    ([[25, 35], [5, 35]], 0.2593),  # p_o 0.6, p_e 0.46
    ([[10, 0], [0, 10]], 1.0),
    ([[0, 10], [10, 0]], -1.0),
])
def test_cohens_kappa_matches_published_values(table, expected):
    assert cohens_kappa(table) == expected


@pytest.mark.parametrize("table", [[[0, 0], [0, 0]], [[7]], [[7, 0], [0, 0]]])
def test_cohens_kappa_is_none_without_data_or_when_both_raters_never_vary(table):
    assert cohens_kappa(table) is None


def test_kappa_from_labels():
    """x x x x x x y y y y against x x x x y y y y y tie: p_o 0.7, p_e (6·4 + 4·5) / 100 = 0.44, kappa 0.26 / 0.56."""
    first = ["x"] * 6 + ["y"] * 4
    second = ["x"] * 4 + ["y"] * 5 + ["tie"]
    assert kappa_from_labels(first, second) == round(0.26 / 0.56, 4)
    assert kappa_from_labels([], []) is None
    with pytest.raises(ValueError):
        kappa_from_labels(["x"], [])


# --------------------------------------------------------------------------- one word count

def test_words_are_counted_by_the_metric_when_the_pairs_lack_stored_counts():
    """Tabs, newlines and no-break spaces separate words as ``metrics.word_count`` says (4 vs 2, and 3 vs 1)."""
    chosen = ["one\ttwo\nthree  four", "a\u00a0b c"]
    rejected = ["five six", "seven"]
    lb = compute_audit(pd.DataFrame({"chosen": chosen, "rejected": rejected}), empty_judgments(),
                       empty_comparisons())["length_bias"]
    assert [word_count(t) for t in chosen] == [4, 3]
    assert lb["mean_chosen_words"] == 3.5 and lb["mean_rejected_words"] == 1.5
    assert lb["histogram"] == [[2, 2]]


def test_stored_word_counts_are_read_instead_of_the_texts():
    pairs = pd.DataFrame({"chosen": ["short", "short"], "rejected": ["a b c", "a b c"],
                          "chosen_words": [9, 9], "rejected_words": [3, 3]})
    lb = compute_audit(pairs, empty_judgments(), empty_comparisons())["length_bias"]
    assert (lb["pct_longer_chosen"], lb["mean_chosen_words"]) == (1.0, 9.0)


# --------------------------------------------------------------------------- why a figure is missing

def test_an_empty_audit_says_why_each_table_is_empty():
    markdown = render_markdown(compute_audit(pd.DataFrame(columns=PAIR_COLUMNS), empty_judgments(),
                                             empty_comparisons()))
    assert "(none)" not in markdown
    assert "_No pairs kept yet: the length figures are measured on kept pairs._" in markdown
    assert "_No parsed verdict yet: position bias is measured on judged comparisons._" in markdown
    assert "_No parsed verdict yet: kappa compares two judges' verdicts._" in markdown
    assert "_Nothing in `judgment_history` yet: drift is measured on the verdicts recorded there._" in markdown
    assert "_No comparison judged yet._" in markdown
    assert "_The quarantine table is empty: nothing was set aside._" in markdown


def test_one_judge_and_one_version_say_what_kappa_and_drift_need():
    history = history_frame()
    one_version = history[history["judge_fingerprint"] != "fp-v2"]  # v1 and another judge: no judge changed
    figures = compute_audit(NO_PAIRS, known_judgments(JUDGE), empty_comparisons(), judgment_history=one_version)
    assert figures["agreement"]["n_judges"] == 1 and figures["agreement"]["judge_vs_judge"] == []
    markdown = render_markdown(figures)
    assert "_One judge only: kappa needs two judges (or two versions of one) that judged the same comparisons" in markdown
    assert "_No judge change recorded yet: drift needs two versions of a judge" in markdown
    assert "(none)" not in markdown


def test_versions_without_shared_comparisons_say_so():
    history = history_frame()
    v2_alone = history["judge_fingerprint"] == "fp-v2"
    history.loc[v2_alone, "comparison_id"] = history.loc[v2_alone, "comparison_id"] + "-new"
    markdown = render_markdown(compute_audit(NO_PAIRS, empty_judgments(), empty_comparisons(), judgment_history=history))
    assert "_The versions of each judge share no judged comparison (in the same order)" in markdown


def test_equal_length_pairs_and_a_single_generator_say_so():
    pairs = pd.DataFrame({"chosen": ["a b"] * 12, "rejected": ["c d"] * 12,
                          "chosen_candidate_id": [f"c{i}" for i in range(12)],
                          "rejected_candidate_id": [f"d{i}" for i in range(12)]})
    markdown = render_markdown(compute_audit(pairs, empty_judgments(), empty_comparisons()))
    assert "_Every kept pair has responses of equal length: there is no longer response to count._" in markdown
    assert "Not computed: every pair has responses of equal length." in markdown


# --------------------------------------------------------------------------- figures for asset metadata

def test_headline_figures_name_each_judge_and_its_latest_change():
    many = pd.concat([history_frame().assign(comparison_id=lambda f, i=i: f["comparison_id"] + f"-{i}")
                      for i in range(10)], ignore_index=True)
    figures = compute_audit(NO_PAIRS, known_judgments(JUDGE), empty_comparisons(), judgment_history=many)
    headline = headline_figures(figures)
    assert headline["position_bias.consistency_rate"] == figures["position_bias"]["consistency_rate"]
    assert headline[f"position_bias.consistency_rate.{JUDGE}"] == figures["position_bias"]["by_judge"][0][
        "consistency_rate"]
    [change] = figures["drift"]["transitions"]
    assert change["slot"] == "0"
    assert headline["drift.latest_flip_rate.openai:judge-v2"] == change["flip_rate"] == round(30 / 70, 4)
    assert all(isinstance(v, (int, float, bool)) or v is None for v in headline.values())


# --------------------------------------------------------------------------- sections plug in

class CountingSection:
    """A section as a next issue would add one: a module with these four names."""

    NAME = "counting"

    @staticmethod
    def compute(con, context):
        return {"counting": {"judgments": con.execute("SELECT count(*) FROM judgments").fetchall()[0][0]}}

    @staticmethod
    def flags(figures):
        return [f"counted {figures['counting']['judgments']} judgments"]

    @staticmethod
    def render(figures, images):
        return f"## Counting\n{figures['counting']['judgments']} judgments.\n"


def test_a_new_section_is_one_more_entry(monkeypatch):
    monkeypatch.setattr(audit, "SECTIONS", [*audit.SECTIONS, CountingSection])
    figures = compute_audit(NO_PAIRS, known_judgments(), empty_comparisons())
    assert figures["counting"] == {"judgments": 10}
    assert figures["flags"][-1] == "counted 10 judgments"  # after the built-in sections' warnings
    assert render_markdown(figures).endswith("## Counting\n10 judgments.\n")


def test_flags_keep_their_order_across_sections():
    figures = compute_audit(pd.DataFrame({"chosen": ["a b c"] * 4, "rejected": ["a"] * 4}),
                            known_judgments("local:smollm2-135m"), empty_comparisons())
    assert [f.split(" ")[0] for f in figures["flags"]] == ["length", "1", "judge"]  # length, unparseable, stand-in


def test_the_sql_files_are_package_data():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "pref_pipeline.audit" in project["packages"]
    assert project["package-data"]["pref_pipeline.audit"] == ["sql/*.sql"]
    shipped = {p.stem for p in (ROOT / "pref_pipeline" / "audit" / "sql").glob("*.sql")}
    used = set()
    for module in Path(audit.__file__).parent.glob("*.py"):
        text = module.read_text()
        used |= {part.split('")')[0] for part in text.split('sql("')[1:]}
    used |= set(audit.SHARED_VIEWS)
    assert used == shipped  # every query used is shipped, and nothing shipped is dead


def test_the_latest_flip_rate_is_filed_under_the_judge_in_use_after_a_switch_back():
    """A -> B -> A: the fingerprints are two versions, one transition A -> B; the latest change is back to A (used
    last), so its flip rate is filed under A, not under B, the judge no longer in use."""
    from pref_pipeline.audit.headline import latest_flip_rates

    drift = {"versions": [
        {"judge_fingerprint": "fa", "judge_model": "openai:judge-a", "slot": "0", "last_seen": "2026-01-03T00:00:00"},
        {"judge_fingerprint": "fb", "judge_model": "openai:judge-b", "slot": "0", "last_seen": "2026-01-02T00:00:00"},
    ], "transitions": [{"from": "fa", "to": "fb", "to_model": "openai:judge-b", "flip_rate": 0.25, "slot": "0"}]}
    assert latest_flip_rates(drift) == {"drift.latest_flip_rate.openai:judge-a": 0.25}
    drift["versions"][1]["last_seen"] = "2026-01-04T00:00:00"  # B in use last: filed under B
    assert latest_flip_rates(drift) == {"drift.latest_flip_rate.openai:judge-b": 0.25}
