"""Label Studio as the annotation tool, against a real server the session starts (tests/fakes/label_studio.py):
push blinded pairwise tasks, annotate through the API and through the web page in Chromium, pull the labels."""

from __future__ import annotations

import json
import re
import time

import pandas as pd
import pytest

from pref_pipeline import schema, store, table_files
from pref_pipeline.cli import main
from pref_pipeline.paths import SCHEMA, Home
from tests.helpers import (CHROMIUM, CHROMIUM_ARGS, CONVERSATION, UI_ARTIFACTS, free_port, good_side,
                           write_review_tables)

pytestmark = pytest.mark.slow


@pytest.fixture
def stored(home, monkeypatch, label_studio_server) -> Home:
    """A home with comparisons awaiting labels and judged ones, and the test server in the environment."""
    stored = Home.from_env().ensure()
    write_review_tables(stored)
    monkeypatch.setenv("LABEL_STUDIO_URL", label_studio_server.url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", label_studio_server.token)
    return stored


@pytest.fixture
def project(request) -> str:
    """A project title of this test's own (the server is shared by the session)."""
    return request.node.name.removeprefix("test_")[:50]  # Label Studio allows 50 characters


def project_tasks(server, title: str) -> tuple[int, dict[str, dict]]:
    """The project's id and its tasks by comparison_id."""
    [found] = [p for p in server.api("GET", "/api/projects", params={"title": title}).json()["results"]
               if p["title"] == title]
    tasks = server.api("GET", "/api/tasks", params={"project": found["id"], "fields": "all"}).json()["tasks"]
    return found["id"], {t["data"]["comparison_id"]: t for t in tasks}


def stored_labels(home: Home) -> pd.DataFrame:
    with table_files.connect(home) as con:
        if not table_files.table_exists(con, "human_labels"):
            return pd.DataFrame(columns=schema.names("human_labels"))
        return con.execute(f"SELECT * FROM {SCHEMA}.human_labels ORDER BY comparison_id").df()


def utc(value) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def label_files(home: Home) -> list:
    folder = home.tables / store.HUMAN_LABELS_TABLE
    return sorted(str(p) for p in folder.rglob("*.parquet")) if folder.exists() else []


def test_push_annotate_and_pull_through_the_api(stored, project, label_studio_server, capsys):
    server = label_studio_server
    assert main(["review", "push", "--to-label", "--project", project]) == 0
    assert "sent 4 task(s)" in capsys.readouterr().out
    assert main(["review", "push", "--to-label", "--project", project]) == 0  # found by title, nothing sent twice
    assert "sent 0 task(s) (comparisons awaiting labels); 4 already there" in capsys.readouterr().out
    project_id, tasks = project_tasks(server, project)
    assert sorted(tasks) == ["cmp-w0", "cmp-w1", "cmp-w2", "cmp-w3"]
    for task in tasks.values():  # blinded: the task says nothing about which candidate is which
        assert set(task["data"]) == {"conversation", "response_a", "response_b", "comparison_id", "export_id"}
        assert "c-w" not in json.dumps(task["data"])
    assert tasks["cmp-w0"]["data"]["conversation"] == CONVERSATION  # the whole conversation
    assert tasks["cmp-w1"]["data"]["conversation"] == [{"role": "user", "content": "Question w1?"}]
    orders = {good_side(t["data"]["response_a"], t["data"]["response_b"]) for t in tasks.values()}
    assert orders == {"A", "B"}  # random order
    [key_file] = (stored.root / "reviews" / "label_studio").glob(f"*-project-{project_id}.json")
    assert set(json.loads(key_file.read_text())["comparisons"]) == set(tasks)

    def good(cmp: str) -> str:
        return good_side(tasks[cmp]["data"]["response_a"], tasks[cmp]["data"]["response_b"])

    w0 = server.annotate(tasks["cmp-w0"]["id"], good("cmp-w0"), "clearer")
    retracted = server.annotate(tasks["cmp-w1"]["id"], good("cmp-w1"))
    server.api("DELETE", f"/api/annotations/{retracted['id']}")  # a deleted annotation is not a label
    w1 = server.annotate(tasks["cmp-w1"]["id"], "tie")
    server.annotate(tasks["cmp-w2"]["id"], "", cancelled=True)  # skipped
    server.annotate(tasks["cmp-w3"]["id"], good("cmp-w3"))
    server.api("DELETE", f"/api/tasks/{tasks['cmp-w3']['id']}")  # a deleted task is not a label

    assert main(["review", "pull", "--project", project]) == 0
    assert "pulled 2 new label(s) (tie 1, x 1)" in capsys.readouterr().out
    labels = stored_labels(stored)
    assert labels["comparison_id"].tolist() == ["cmp-w0", "cmp-w1"]
    first, tie = labels.to_dict(orient="records")
    assert first["human_winner_id"] == "c-w0-x" and first["human_preference"] == "x" and first["notes"] == "clearer"
    assert pd.isna(tie["human_winner_id"]) and tie["human_preference"] == "tie"
    assert (labels["source"] == "label_studio").all() and (labels["labeller"] == server.email).all()
    assert first["task_id"] == f"{tasks['cmp-w0']['id']}/{w0['id']}" and tie["task_id"].endswith(f"/{w1['id']}")
    assert utc(first["labelled_at"]) == utc(w0["updated_at"])  # the annotation's time, not the pull's
    assert first["label_id"] == store.label_id("label_studio", "cmp-w0", server.email)
    assert (labels["selection"] == "to_label").all() and (labels["inclusion_probability"] == 1).all()

    files = label_files(stored)
    assert main(["review", "pull", "--project", project]) == 0  # twice: nothing added twice
    assert "pulled 0 new label(s) (none) from project" in capsys.readouterr().out
    assert label_files(stored) == files and len(stored_labels(stored)) == 2


def test_an_uncertain_sample_keeps_its_inclusion_probabilities(stored, project, label_studio_server, capsys):
    assert main(["review", "push", "--sample", "4", "--strategy", "uncertain", "--project", project]) == 0
    _, tasks = project_tasks(label_studio_server, project)
    assert {"cmp-j1", "cmp-j2", "cmp-j3"} < set(tasks) and len(tasks) == 4
    for task in tasks.values():
        label_studio_server.annotate(task["id"], good_side(task["data"]["response_a"], task["data"]["response_b"]))
    assert main(["review", "pull", "--project", project]) == 0
    labels = stored_labels(stored).set_index("comparison_id")
    assert labels.loc[["cmp-j1", "cmp-j2", "cmp-j3"], "inclusion_probability"].tolist() == [1.0, 1.0, 1.0]
    [drawn] = labels[labels["selection"] == "uncertain_random"].to_dict(orient="records")
    assert drawn["inclusion_probability"] == pytest.approx(1 / 3)
    assert drawn["human_preference"] == "chosen"  # relative to its stored pair (x was chosen)
    assert (labels["human_winner_id"] == labels.index.str.replace("cmp-", "c-") + "-x").all()


def test_a_server_down_a_refused_key_or_an_unknown_comparison_is_a_clear_error(stored, project, label_studio_server,
                                                                              monkeypatch, capsys):
    server = label_studio_server
    down = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("LABEL_STUDIO_URL", down)
    for command in (["push", "--to-label"], ["pull"]):
        assert main(["review", *command, "--project", project]) == 2
        assert f"Label Studio at {down} cannot be reached" in capsys.readouterr().err
    monkeypatch.setenv("LABEL_STUDIO_URL", server.url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "not-the-token")
    assert main(["review", "push", "--to-label", "--project", project]) == 2
    assert "refused the API key (HTTP 401" in capsys.readouterr().err
    assert not (stored.root / "reviews" / "label_studio").exists()

    monkeypatch.setenv("LABEL_STUDIO_API_KEY", server.token)
    assert main(["review", "push", "--to-label", "--project", project]) == 0
    project_id, tasks = project_tasks(server, project)
    server.annotate(tasks["cmp-w0"]["id"], "A")
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "not-the-token")
    assert main(["review", "pull", "--project", project]) == 2
    assert "refused the API key" in capsys.readouterr().err
    # A task someone imported by hand, for a comparison this home never stored: refused by task, nothing stored.
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", server.token)
    server.api("POST", f"/api/projects/{project_id}/import", json=[{"data": {
        "conversation": [{"role": "user", "content": "?"}], "response_a": "a", "response_b": "b",
        "comparison_id": "cmp-gone", "export_id": "x"}}])
    _, tasks = project_tasks(server, project)
    server.annotate(tasks["cmp-gone"]["id"], "B")
    capsys.readouterr()
    assert main(["review", "pull", "--project", project]) == 2
    err = capsys.readouterr().err
    assert f"task {tasks['cmp-gone']['id']} (annotation" in err and "'cmp-gone' is not in the local key" in err
    assert stored_labels(stored).empty


def test_one_task_annotated_in_the_web_page(stored, project, label_studio_server, capsys):
    from playwright.sync_api import sync_playwright

    server = label_studio_server
    assert main(["review", "push", "--to-label", "--project", project]) == 0
    project_id, tasks = project_tasks(server, project)
    task = tasks["cmp-w1"]
    choice = good_side(task["data"]["response_a"], task["data"]["response_b"])
    UI_ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(f"{server.url}/user/login/")
            page.fill("input[name=email]", server.email)
            page.fill("input[name=password]", server.password)
            page.locator("button[type=submit], input[type=submit]").first.click()
            page.wait_for_url(lambda url: "/user/login" not in url, timeout=60_000)
            page.goto(f"{server.url}/projects/{project_id}/data?task={task['id']}")
            page.get_by_text("Which response is better?").wait_for(timeout=90_000)
            page.get_by_text("Good answer w1.").first.wait_for(timeout=30_000)
            page.screenshot(path=str(UI_ARTIFACTS / "label-studio-1-task.png"), full_page=True)
            page.get_by_role("radio", name=re.compile(f"^{choice}")).check()  # the label reads e.g. "A" + hotkey "1"
            page.get_by_role("button", name="Submit").click()
            deadline = time.monotonic() + 30
            while not server.api("GET", f"/api/tasks/{task['id']}/annotations").json():
                assert time.monotonic() < deadline, "the page's Submit made no annotation"
                time.sleep(0.5)
            page.screenshot(path=str(UI_ARTIFACTS / "label-studio-2-submitted.png"), full_page=True)
        except Exception:
            page.screenshot(path=str(UI_ARTIFACTS / "label-studio-failed.png"), full_page=True)
            raise
        finally:
            browser.close()
    assert main(["review", "pull", "--project", project]) == 0
    [label] = stored_labels(stored).to_dict(orient="records")
    assert (label["comparison_id"], label["human_winner_id"], label["labeller"]) == ("cmp-w1", "c-w1-x", server.email)
