"""The human review round trip: a stratified sheet of 20 pairs out, labels in, agreement figures in the audit."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from pref_pipeline.audit import audit_home, render_markdown
from pref_pipeline.cli import main
from pref_pipeline import schema, store, table_files
from pref_pipeline.paths import SCHEMA, Home
from pref_pipeline.audit.stats import kappa_from_labels
from pref_pipeline.review import SHEET_COLUMNS, allocate, import_sheet, key_path, select_items, weighted_agreement
from tests.helpers import AWAITING, CONVERSATION, good_side, write_review_tables

SIZES = {"factual": 15, "coding": 10, "advice": 5}


def stored_pairs() -> pd.DataFrame:
    rows, i = [], 0
    for category, n in SIZES.items():
        for _ in range(n):
            rows.append({"pair_id": f"pair-{i:02d}", "prompt_id": f"p{i}", "prompt": f"Question {i}?", "category": category,
                         "chosen": f"A good answer {i}.", "rejected": f"Meh {i}.", "judge_model_id": "judge-1",
                         "confidence": 0.8, "chosen_candidate_id": f"c{i}-x", "rejected_candidate_id": f"c{i}-y",
                         "batch_id": "b1"})
            i += 1
    # Five more pairs of a batch whose gate failed: stored, quarantined, never offered for review.
    for j in range(5):
        rows.append({**rows[0], "pair_id": f"pair-bad-{j}", "chosen_candidate_id": f"bad{j}-x",
                     "rejected_candidate_id": f"bad{j}-y", "batch_id": "b2"})
    return pd.DataFrame(rows)


@pytest.fixture
def database(home) -> Home:
    stored = Home.from_env().ensure()
    pairs = stored_pairs()
    comparisons = pd.DataFrame({
        "comparison_id": "cmp-" + pairs["pair_id"].str.removeprefix("pair-"), "prompt_id": pairs["prompt_id"],
        "candidate_x_id": pairs["chosen_candidate_id"], "candidate_y_id": pairs["rejected_candidate_id"],
        "status": "consistent", "winner_id": pairs["chosen_candidate_id"], "batch_id": pairs["batch_id"]})
    quarantine = pd.DataFrame({"quarantine_id": [f"q{j}" for j in range(5)], "stage": "gate:preference_pairs",
                               "reason": "batch_rejected", "item_id": [f"pair-bad-{j}" for j in range(5)]})
    for name, frame in (("preference_pairs", pairs), ("comparisons", comparisons), ("quarantine", quarantine)):
        table_files.write_part(stored, name, None, schema.conform(name, frame))
    return stored


def test_allocation_is_proportional_with_at_least_one_per_category():
    # 20 of 30: 20*15/30 = 10, 20*10/30 = 6.67, 20*5/30 = 3.33 -> 10, 7, 3 by largest remainder.
    assert allocate(SIZES, 20) == {"factual": 10, "coding": 7, "advice": 3}
    # 4 of 30: one each first, the fourth to the largest spare (factual: 14 of 27 -> quota 0.52).
    assert allocate(SIZES, 4) == {"factual": 2, "coding": 1, "advice": 1}
    assert allocate(SIZES, 100) == SIZES  # never more than there is


def test_review_round_trip_reaches_the_agreement_figures(database, tmp_path, capsys):
    sheet_path = tmp_path / "sheet.csv"
    assert main(["review", "export", "--out", str(sheet_path)]) == 0  # default size: audit.review_sample_size
    assert "20 pairs" in capsys.readouterr().out
    sheet = pd.read_csv(sheet_path, dtype=str, keep_default_na=False)
    assert list(sheet.columns) == SHEET_COLUMNS
    assert len(sheet) == 20 and sheet["comparison_id"].is_unique and sheet["export_id"].nunique() == 1
    assert sheet["category"].value_counts().to_dict() == {"factual": 10, "coding": 7, "advice": 3}
    assert not sheet["comparison_id"].str.startswith("cmp-bad").any()  # gate-failed pairs are not in the dataset
    assert (sheet["human_preference"] == "").all()
    # Blinded: nothing on the sheet says which response the judge chose; the key beside it does.
    assert not {"chosen", "rejected", "judge_model_id", "confidence"} & set(sheet.columns)
    key_file = pd.read_csv(key_path(sheet_path), dtype=str).set_index("comparison_id")
    assert set(key_file["export_id"]) == set(sheet["export_id"])  # the key names its export
    key = key_file["response_a_is"]
    pairs = stored_pairs().set_index("pair_id")
    for r in sheet.itertuples():
        pair = pairs.loc["pair-" + r.comparison_id.removeprefix("cmp-")]
        chosen, rejected = pair["chosen"], pair["rejected"]
        assert (r.response_a, r.response_b) == ((chosen, rejected) if key[r.comparison_id] == "chosen" else (rejected, chosen))
        assert key_file.loc[r.comparison_id, "response_a_id"] == pair[f"{key[r.comparison_id]}_candidate_id"]
    # Random within each category: an item's inclusion probability is its category's share drawn.
    assert key_file["inclusion_probability"].astype(float).round(4).tolist() == [
        {"factual": round(10 / 15, 4), "coding": 0.7, "advice": 0.6}[c] for c in sheet["category"]]
    assert set(key) == {"chosen", "rejected"}  # random order: the chosen response is sometimes A, sometimes B
    # The same seed draws the same sample; another seed another one.
    again = tmp_path / "again.csv"
    main(["review", "export", "--out", str(again)])
    assert pd.read_csv(again)["comparison_id"].tolist() == sheet["comparison_id"].tolist()
    main(["review", "export", "--out", str(again), "--seed", "7"])
    assert pd.read_csv(again)["comparison_id"].tolist() != sheet["comparison_id"].tolist()

    # A reviewer disagrees on 3 factual pairs and 1 coding pair and calls one coding pair a tie.
    labels = []
    seen = {"factual": 0, "coding": 0}
    for category in sheet["category"]:
        k = seen.get(category, 0)
        seen[category] = k + 1
        if category == "factual" and k < 3:
            labels.append("rejected")
        elif category == "coding" and k == 0:
            labels.append("tie")
        elif category == "coding" and k == 1:
            labels.append("Rejected ")  # case and spaces are forgiven
        else:
            labels.append("chosen")
    def blind(label: str, pair_id: str) -> str:  # what the reviewer writes for the response they mean
        if label.strip().lower() == "tie":
            return "tie"
        return "A" if (label.strip().lower() == key[pair_id]) else " b"  # case and spaces are forgiven

    sheet["human_preference"] = [blind(label, p) for label, p in zip(labels, sheet["comparison_id"])]
    sheet["labeller"] = "ana"
    sheet.to_csv(sheet_path, index=False)
    assert main(["review", "import", str(sheet_path)]) == 0
    assert "imported 20 label(s) (chosen 15, rejected 4, tie 1)" in capsys.readouterr().out

    human = audit_home(database)["agreement"]["human"]
    # 19 decisive labels on kept pairs, 15 of them agree with the judge.
    assert (human["n_labels"], human["n_human_ties"], human["n_compared"]) == (20, 1, 19)
    assert human["agreement_rate"] == round(15 / 19, 4)
    # factual 7 of 10, coding 5 of 6 (the tie left out), advice 3 of 3: the worst first.
    assert [(c["category"], c["n"], c["agreement_rate"]) for c in human["by_category"]] == [
        ("factual", 10, 0.7), ("coding", 6, round(5 / 6, 4)), ("advice", 3, 1.0)]
    assert human["most_divergent_category"] == "factual"
    assert human["by_source"][0]["source"] == "review"
    markdown = render_markdown(audit_home(database))
    assert "With human labels (20 labels, 1 of them ties)" in markdown and "**factual**" in markdown

    # Importing the same sheet again replaces the labels (same labeller), it does not double them.
    assert main(["review", "import", str(sheet_path)]) == 0
    assert audit_home(database)["agreement"]["human"]["n_labels"] == 20

    # A second reviewer fills a copy (same key): their agreement with the first is reported as kappa.
    second = tmp_path / "sheet-ben.csv"
    key_path(second).write_text(key_path(sheet_path).read_text())
    ben = sheet.assign(labeller="ben")
    ben["human_preference"] = [blind("chosen", p) for p in ben["comparison_id"]]  # ben agrees with the judge everywhere
    ben.to_csv(second, index=False)
    capsys.readouterr()
    assert main(["review", "import", str(second)]) == 0
    out = capsys.readouterr().out
    expected = kappa_from_labels([lab.strip().lower() for lab in labels], ["chosen"] * 20)
    assert "reviewers ana and ben: 20 shared comparison(s), agree on 75%" in out
    assert f"Cohen's kappa {expected:.2f}" in out


def test_a_bad_sheet_is_refused_whole(database, tmp_path, capsys):
    sheet_path = tmp_path / "sheet.csv"
    main(["review", "export", "--out", str(sheet_path), "-n", "3"])
    sheet = pd.read_csv(sheet_path, dtype=str, keep_default_na=False)
    sheet["human_preference"] = ["A", "maybe", "b"]
    sheet.loc[2, "comparison_id"] = "cmp-unknown"
    sheet.to_csv(sheet_path, index=False)
    capsys.readouterr()
    assert main(["review", "import", str(sheet_path)]) == 2
    err = capsys.readouterr().err
    assert "line 3: human_preference 'maybe'" in err and "line 4: 'cmp-unknown' is not in the sheet's key" in err
    with table_files.connect(database) as con:
        stored = table_files.table_exists(con, "human_labels")
        count = con.execute(f"SELECT count(*) FROM {SCHEMA}.human_labels").fetchall()[0][0] if stored else 0
    assert count == 0
    assert json.loads(json.dumps(audit_home(database)["agreement"]["human"]))["n_labels"] == 0


# --------------------------------------------------------------------------- choosing comparisons; the sheet by comparison

@pytest.fixture
def review_home(home) -> Home:
    stored = Home.from_env().ensure()
    write_review_tables(stored)
    return stored


def stored_labels(home: Home) -> pd.DataFrame:
    with table_files.connect(home) as con:
        if not table_files.table_exists(con, "human_labels"):
            return pd.DataFrame(columns=schema.names("human_labels"))
        return con.execute(f"SELECT * FROM {SCHEMA}.human_labels ORDER BY comparison_id").df()


def test_to_label_chooses_the_comparisons_awaiting_people(review_home):
    items = select_items(review_home, to_label=True)
    assert items["comparison_id"].tolist() == list(AWAITING)
    assert (items["selection"] == "to_label").all() and (items["inclusion_probability"] == 1).all()
    assert items["chosen_candidate_id"].isna().all()  # no pair yet
    w0 = items.iloc[0]
    assert json.loads(w0["messages"]) == CONVERSATION and w0["text_x"] == "Good answer w0."


def test_uncertain_takes_disagreement_inconsistency_low_confidence_and_a_random_share(review_home):
    items = select_items(review_home, sample=4, strategy="uncertain", seed=3)
    # 4 x 0.25 = 1 drawn at random; the other 3 the most uncertain: disagreement, inconsistency, lowest confidence.
    targeted = items[items["selection"] == "uncertain"]
    assert targeted["comparison_id"].tolist() == ["cmp-j1", "cmp-j2", "cmp-j3"]
    assert (targeted["inclusion_probability"] == 1).all()
    [drawn] = items[items["selection"] == "uncertain_random"].to_dict(orient="records")
    assert drawn["comparison_id"] in ("cmp-j0", "cmp-j4", "cmp-j5") and drawn["inclusion_probability"] == 1 / 3
    assert not set(items["comparison_id"]) & set(AWAITING)  # nobody judged those: nothing to be uncertain about
    # The agreement estimate weights each item by 1 / p: the random item stands for the 3 not targeted.
    assert weighted_agreement(items["inclusion_probability"], [False, False, True, True]) == 4 / 6
    with pytest.raises(ValueError, match="unknown review strategy"):
        select_items(review_home, sample=2, strategy="hardest")


def test_to_label_sheet_round_trip(review_home, tmp_path, capsys):
    sheet_path = tmp_path / "to-label.csv"
    assert main(["review", "export", "--to-label", "--out", str(sheet_path)]) == 0
    assert "4 comparisons" in capsys.readouterr().out
    sheet = pd.read_csv(sheet_path, dtype=str, keep_default_na=False)
    assert sheet["comparison_id"].tolist() == list(AWAITING)
    assert not {"candidate_x_id", "response_a_id", "chosen"} & set(sheet.columns)  # the key is elsewhere
    # A reviewer prefers the good response, calls cmp-w2 a tie, leaves cmp-w3 blank.
    sheet["human_preference"] = [good_side(a, b) for a, b in zip(sheet["response_a"], sheet["response_b"])]
    sheet.loc[2, "human_preference"] = "tie"
    sheet.loc[3, "human_preference"] = ""
    sheet.loc[0, "notes"] = "clearer"
    sheet["labeller"] = "ana"
    sheet.to_csv(sheet_path, index=False)
    assert main(["review", "import", str(sheet_path)]) == 0
    assert "imported 3 label(s) (tie 1, x 2); 1 blank row(s) skipped" in capsys.readouterr().out
    labels = stored_labels(review_home)
    assert labels["comparison_id"].tolist() == ["cmp-w0", "cmp-w1", "cmp-w2"]
    assert labels["human_winner_id"].tolist()[:2] == ["c-w0-x", "c-w1-x"] and pd.isna(labels["human_winner_id"][2])
    assert (labels["source"] == "review").all() and (labels["labeller"] == "ana").all()
    assert labels["pair_id"].tolist() == ["pair-w0", "pair-w1", "pair-w2"]
    assert set(labels["export_id"]) == set(sheet["export_id"]) and (labels["selection"] == "to_label").all()
    assert labels["notes"][0] == "clearer" and labels["labelled_at"].notna().all()
    assert labels["label_id"][0] == store.label_id("review", "cmp-w0", "ana")


def test_a_sheet_without_its_key_or_with_another_exports_key_is_refused(review_home, tmp_path, capsys):
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    for path in (first, second):
        assert main(["review", "export", "--to-label", "--out", str(path)]) == 0
    sheet = pd.read_csv(first, dtype=str, keep_default_na=False)
    sheet["human_preference"] = "A"
    sheet.to_csv(first, index=False)
    saved = key_path(first).read_text()
    key_path(first).unlink()
    capsys.readouterr()
    assert main(["review", "import", str(first)]) == 2
    assert f"needs its key file {key_path(first)}, which is missing" in capsys.readouterr().err
    key_path(first).write_text(key_path(second).read_text())  # the key of the other export
    assert main(["review", "import", str(first)]) == 2
    err = capsys.readouterr().err
    assert "line 2: export id" in err and "belongs to another export" in err and "line 5:" in err
    # Labels for an id that is not a stored comparison, even with a key that lists it: refused, by line.
    key_path(first).write_text(saved.replace("cmp-w3", "cmp-gone"))
    sheet.loc[3, "comparison_id"] = "cmp-gone"
    sheet.to_csv(first, index=False)
    assert main(["review", "import", str(first)]) == 2
    assert "line 5: 'cmp-gone' is not a stored comparison (unknown id)" in capsys.readouterr().err
    assert stored_labels(review_home).empty  # nothing half-imported


def test_the_first_versions_unblinded_sheet_is_still_read(review_home, tmp_path):
    path = tmp_path / "old.csv"
    pd.DataFrame({"pair_id": ["pair-j0", "pair-j3"], "human_preference": ["chosen", "rejected"],
                  "labeller": "old"}).to_csv(path, index=False)
    assert import_sheet(review_home, path).imported == 2
    labels = stored_labels(review_home)
    assert labels["human_winner_id"].tolist() == ["c-j0-x", "c-j3-y"]
    assert labels["human_preference"].tolist() == ["chosen", "rejected"]


def test_an_uncertain_sheet_keys_each_item_with_its_inclusion_probability(review_home, tmp_path, capsys):
    path = tmp_path / "uncertain.csv"
    assert main(["review", "export", "--sample", "4", "--strategy", "uncertain", "--out", str(path)]) == 0
    assert "4 comparisons" in capsys.readouterr().out
    key = pd.read_csv(key_path(path)).set_index("comparison_id")
    assert key.loc[["cmp-j1", "cmp-j2", "cmp-j3"], "selection"].eq("uncertain").all()
    [drawn] = key[key["selection"] == "uncertain_random"]["inclusion_probability"].tolist()
    assert drawn == pytest.approx(1 / 3)
    sheet = pd.read_csv(path, dtype=str, keep_default_na=False)
    sheet["human_preference"] = [good_side(a, b) for a, b in zip(sheet["response_a"], sheet["response_b"])]
    sheet.to_csv(path, index=False)
    assert main(["review", "import", str(path), "--labeller", "ana"]) == 0
    labels = stored_labels(review_home)
    assert sorted(labels["inclusion_probability"].round(4)) == [round(1 / 3, 4), 1.0, 1.0, 1.0]
    assert (labels["human_winner_id"] == labels["comparison_id"].str.replace("cmp-", "c-") + "-x").all()

    # The audit weighs each label by 1 / its inclusion probability. Of the four, two had a pair: the targeted j3
    # (p = 1) and the random one (p = 1/3). A person overrules j3 and agrees with the random one: raw agreement
    # 1/2; weighted (1 * 0 + 3 * 1) / (1 + 3) = 3/4, the random one standing for the three it was drawn from.
    flip = {"A": "B", "B": "A"}
    sheet["human_preference"] = [flip[good_side(a, b)] if c == "cmp-j3" else good_side(a, b)
                                 for c, a, b in zip(sheet["comparison_id"], sheet["response_a"], sheet["response_b"])]
    sheet.to_csv(path, index=False)
    assert main(["review", "import", str(path), "--labeller", "ana"]) == 0
    human = audit_home(review_home)["agreement"]["human"]
    assert (human["n_compared"], human["agreement_rate"], human["agreement_rate_weighted"]) == (2, 0.5, 0.75)


def test_a_sheet_that_names_no_response_or_labels_twice_is_refused(review_home, tmp_path, capsys):
    path = tmp_path / "old.csv"  # the unblinded format says chosen / rejected: no pair, nothing to name
    pd.DataFrame({"pair_id": ["pair-w0", "pair-j0", "pair-j0"], "human_preference": ["chosen", "tie", "rejected"],
                  "labeller": "ana"}).to_csv(path, index=False)
    assert main(["review", "import", str(path)]) == 2
    err = capsys.readouterr().err
    assert "line 2: 'pair-w0' has no stored pair, so 'chosen' names no response" in err
    assert "line 4: 'pair-j0' is labelled again by ana (first on line 3)" in err
    assert stored_labels(review_home).empty
