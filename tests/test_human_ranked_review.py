"""``human_ranked`` end to end through what people actually use: the run waits, the comparisons go out for
labelling (the CSV sheet, or Label Studio), people label them by a rule the test knows, the labels come back,
and the next run of the batch makes exactly the labelled pairs, each once, right, ``label_source: human``.

The rule: the person prefers the response whose text sorts first; equal texts are a tie.
"""

from __future__ import annotations

import csv

import pytest

from pref_pipeline.cli import main
from pref_pipeline.ids import pair_id_of
from pref_pipeline.quarantine import AWAITING_LABEL
from tests.fakes.in_process import FakeLLM
from tests.helpers import materialize, pipeline_config, read_jsonl, table_rows


def rule(response_a: str, response_b: str) -> str:
    """The test's reviewer: A or B, whichever text sorts first; tie when they are equal."""
    return "tie" if response_a == response_b else "A" if response_a < response_b else "B"


def expected_pairs(comparisons: list[dict], labelled: set[str]) -> dict[str, str]:
    """pair_id -> the candidate the rule picks, for the labelled comparisons that are not ties."""
    texts = {c["candidate_id"]: c["text"] for c in table_rows("candidates")}
    out = {}
    for c in comparisons:
        x, y = c["candidate_x_id"], c["candidate_y_id"]
        if c["comparison_id"] in labelled and texts[x] != texts[y]:
            out[pair_id_of(c["comparison_id"])] = x if texts[x] < texts[y] else y
    return out


def first_run(prompts_file):
    fake = FakeLLM()
    config = pipeline_config(prompts_file, strategies=[{"method": "human_ranked"}], candidates_per_prompt=3)
    assert materialize(config, fake=fake).success  # every comparison waits: not a failed gate
    comparisons = table_rows("comparisons")
    assert len(comparisons) == 9 and {c["status"] for c in comparisons} == {AWAITING_LABEL}
    assert table_rows("preference_pairs") == []
    return fake, config, comparisons


def assert_pairs_are_the_labels(comparisons: list[dict], labelled: set[str]) -> None:
    expected = expected_pairs(comparisons, labelled)
    assert len(expected) >= len(labelled) - 1  # the rule decides (the fake's samples differ)
    pairs = table_rows("preference_pairs")
    assert sorted(p["pair_id"] for p in pairs) == sorted(expected)  # exactly the labelled ones, each once
    for pair in pairs:
        assert pair["chosen_candidate_id"] == expected[pair["pair_id"]]  # right
        assert pair["label_source"] == "human" and pair["generation_method"] == "human_ranked"
    waiting = {c["comparison_id"] for c in table_rows("comparisons") if c["status"] == AWAITING_LABEL}
    assert waiting == {c["comparison_id"] for c in comparisons} - labelled  # the rest still wait


def test_human_ranked_through_the_csv_sheet(home, prompts_file, tmp_path, capsys):
    fake, config, comparisons = first_run(prompts_file)
    sheet = tmp_path / "to-label.csv"
    assert main(["review", "export", "--to-label", "--out", str(sheet)]) == 0
    assert f"review sheet: {sheet} (9 " in capsys.readouterr().out
    with sheet.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["comparison_id"] for r in rows} == {c["comparison_id"] for c in comparisons}
    # People label seven of the nine; two stay blank (they keep waiting).
    for row in rows[:7]:
        row["human_preference"], row["labeller"] = rule(row["response_a"], row["response_b"]), "ana"
    with sheet.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert main(["review", "import", str(sheet)]) == 0
    assert "imported 7 label(s)" in capsys.readouterr().out

    fake.reset()
    assert materialize(config, fake=fake).success
    assert not fake.requests  # labels make pairs without asking anyone
    labelled = {r["comparison_id"] for r in rows[:7]}
    assert_pairs_are_the_labels(comparisons, labelled)
    exported = read_jsonl(home / "exports" / "preference_pairs.jsonl")
    assert sorted(r["pair_id"] for r in exported) == sorted(expected_pairs(comparisons, labelled))

    assert main(["review", "import", str(sheet)]) == 0  # imported again: the same labels, no pair twice
    assert materialize(config, fake=fake).success
    assert_pairs_are_the_labels(comparisons, labelled)


@pytest.mark.slow
def test_human_ranked_through_label_studio(home, prompts_file, monkeypatch, label_studio_server, capsys):
    server = label_studio_server
    monkeypatch.setenv("LABEL_STUDIO_URL", server.url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", server.token)
    fake, config, comparisons = first_run(prompts_file)
    project = "human_ranked end to end"
    assert main(["review", "push", "--to-label", "--project", project]) == 0
    assert "sent 9 task(s)" in capsys.readouterr().out
    [found] = [p for p in server.api("GET", "/api/projects", params={"title": project}).json()["results"]
               if p["title"] == project]
    tasks = server.api("GET", "/api/tasks", params={"project": found["id"], "fields": "all"}).json()["tasks"]
    assert len(tasks) == 9
    labelled = set()
    for task in tasks[:6]:  # people annotate six; one more is skipped (not a label)
        server.annotate(task["id"], rule(task["data"]["response_a"], task["data"]["response_b"]))
        labelled.add(task["data"]["comparison_id"])
    server.annotate(tasks[6]["id"], "", cancelled=True)
    assert main(["review", "pull", "--project", project]) == 0
    assert "pulled 6 new label(s)" in capsys.readouterr().out

    fake.reset()
    assert materialize(config, fake=fake).success and not fake.requests
    assert_pairs_are_the_labels(comparisons, labelled)
    assert main(["review", "pull", "--project", project]) == 0  # pulled twice: nothing added twice
    assert "pulled 0 new label(s)" in capsys.readouterr().out
    assert materialize(config, fake=fake).success
    assert_pairs_are_the_labels(comparisons, labelled)
