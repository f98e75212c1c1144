"""What the tests share: paths, prompt files, the configuration builder, LLM call settings and Dagster runs in
the test's home (over the fake server or the in-process fake), free ports, hand-made tables, the browser.

Test modules import from here, from ``tests.fakes`` and from the helper modules ``tests.cli_runs`` (the CLI in
its own process) and ``tests.dagster_dev`` (a webserver and its GraphQL API), never from one another or from
``conftest`` (which keeps only fixtures).
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pytest

if TYPE_CHECKING:
    import dagster as dg

    from pref_pipeline.config import PipelineConfig
    from pref_pipeline.providers.client import CallSettings
    from tests.fakes.in_process import FakeLLM

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PROVIDER_KEYS = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL")
SAMPLE_PROMPTS = [
    {"id": "p1", "category": "factual", "prompt": "What causes the seasons on Earth?"},
    {"id": "p2", "category": "coding", "prompt": "What is the difference between a list and a tuple in Python?"},
    {"id": "p3", "category": "advice", "prompt": "How can I prepare for a job interview in one evening?"},
]


# --------------------------------------------------------------------------- the home and files

def use_home(monkeypatch: pytest.MonkeyPatch, root: Path) -> Path:
    """Point PREF_PIPELINE_HOME at ``root``, with no DAGSTER_HOME and no provider keys or URLs from the machine."""
    monkeypatch.setenv("PREF_PIPELINE_HOME", str(root))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    for key in PROVIDER_KEYS:
        monkeypatch.delenv(key, raising=False)
    return root


def write_prompts(path: Path, rows: Sequence[dict]) -> Path:
    """A JSON Lines prompt file, one row a line."""
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def free_port() -> int:
    """A port nothing listens on now (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------- configuration

def two_generators(temperatures: tuple[float | None, float | None] = (0.2, 1.0), **fields: Any) -> list[dict]:
    """``openai:gen-a`` and ``openai:gen-b`` at the two temperatures (None: not set), ``fields`` added to both."""
    return [{"model": f"openai:{name}", **({"temperature": t} if t is not None else {}), **fields}
            for name, t in zip(("gen-a", "gen-b"), temperatures)]


GENERATORS = tuple(two_generators())
JUDGES = ({"model": "openai:judge-1"},)


def strong_and_weak(provider: str = "openai") -> list[dict]:
    """Two generators of one provider, at most 200 tokens each: ``gen-strong`` and ``gen-weak``, told apart by
    temperature (0.2, 1.0), or for Anthropic (whose API takes no sampling parameters) by system prompt."""
    sampling = [{"temperature": 0.2}, {"temperature": 1.0}] if provider == "openai" else [
        {"system_prompt": "Answer thoroughly."}, {"system_prompt": "Answer briefly."}]
    return [{"model": f"{provider}:gen-strong", "max_tokens": 200, **sampling[0]},
            {"model": f"{provider}:gen-weak", "max_tokens": 200, **sampling[1]}]


def config_dict(prompt_files: Sequence[Path | str] = (), base_url: str | None = None, *,
                generators: Sequence[dict] = GENERATORS, judges: Sequence[dict] = JUDGES, **extra: Any) -> dict:
    """A pipeline configuration as its YAML file holds it: prompts from ``prompt_files``, the ``generators`` and
    ``judges`` entries with ``base_url`` added to each one that names a model (a rule judge does not), then
    ``extra`` keys. Without ``base_url`` (the in-process fake) the entries stay as given."""

    def at(entry: dict) -> dict:
        return {"base_url": base_url, **entry} if base_url and "model" in entry else dict(entry)

    config: dict[str, Any] = {"prompts": [{"path": str(p)} for p in prompt_files]} if prompt_files else {}
    return {**config, "generators": [at(g) for g in generators], "judges": [at(j) for j in judges], **extra}


def pipeline_config(prompts_file: Path | str | None, base_url: str | None = None, **keys: Any) -> PipelineConfig:
    """``config_dict`` for one prompt file (or none), parsed: see ``config_dict`` for the keys."""
    from pref_pipeline.config import parse_config

    return parse_config(config_dict([prompts_file] if prompts_file else [], base_url, **keys))


def write_config_file(path: Path, prompt_files: Sequence[Path | str], base_url: str | None = None, **keys: Any) -> Path:
    """``config_dict`` written as a YAML file at ``path`` (what ``--config`` and ``PREF_PIPELINE_CONFIG`` read)."""
    import yaml

    path.write_text(yaml.safe_dump(config_dict(prompt_files, base_url, **keys), sort_keys=False), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- LLM calls and Dagster runs in the test's home

def calls(fake: FakeLLM | None = None) -> CallSettings:
    """The LLM call settings of a run in the test's home (its response cache and provider-batch folder); with
    ``fake``, its providers are the in-process fake's instead of the SDKs."""
    from pref_pipeline.paths import Home
    from pref_pipeline.providers.client import CallSettings

    settings = CallSettings.under(Home.from_env().ensure())
    return replace(settings, provider_factory=fake.provider) if fake is not None else settings


def generate(prompts: pd.DataFrame, config: PipelineConfig, fake: FakeLLM | None = None):
    """``generate_candidates`` in the test's home: the ``Generated`` (candidates and usage)."""
    from pref_pipeline.generation import generate_candidates

    return generate_candidates(prompts, config, calls(fake))


def judge(prompts: pd.DataFrame, candidates: pd.DataFrame, config: PipelineConfig, fake: FakeLLM | None = None):
    """``judge_comparisons`` in the test's home: the ``Judged`` (judgments and usage)."""
    from pref_pipeline.judgments import judge_comparisons

    return judge_comparisons(prompts, candidates, config, calls(fake))


def resources(fake: FakeLLM | None = None, *, progress: bool = False) -> dict:
    """The pipeline's Dagster resources for the test's home; with ``fake``, the ``llm`` resource answers from the
    in-process fake (``InProcessLLMCalls``: the same cache and budgets, no SDK, no HTTP)."""
    from assets.resources import pipeline_resources
    from pref_pipeline.paths import Home

    found = pipeline_resources(Home.from_env().ensure(), progress=progress)
    if fake is not None:
        from tests.fakes.in_process import InProcessLLMCalls

        found["llm"] = InProcessLLMCalls(home=found["home"], progress=progress, fake=fake)
    return found


def definitions(config: PipelineConfig, fake: FakeLLM | None = None) -> dg.Definitions:
    """The code location's definitions (``build_definitions``) for the test's home; with ``fake``, their resources
    are ``resources(fake)``, so the jobs they resolve run with the in-process fake as the models."""
    import dagster as dg

    from pref_pipeline.definitions import build_definitions
    from pref_pipeline.paths import Home

    built = build_definitions(config, Home.from_env())
    if fake is None:
        return built
    return dg.Definitions(assets=built.assets, asset_checks=built.asset_checks, jobs=built.jobs, sensors=built.sensors,
                          schedules=built.schedules, executor=built.executor, resources=resources(fake))


def materialize(config: PipelineConfig, batch: str = "prompts", *, instance: dg.DagsterInstance | None = None,
                fake: FakeLLM | None = None) -> dg.ExecuteInProcessResult:
    """One prompt batch (partition) through every pipeline asset with ``dagster.materialize``, errors returned in
    the result (``instance``: an ephemeral one unless given)."""
    import dagster as dg

    from assets import build_pipeline_assets
    from assets.partitions import PROMPT_BATCHES

    instance = instance or dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(PROMPT_BATCHES.name, [batch])
    return dg.materialize(build_pipeline_assets(config), resources=resources(fake), instance=instance,
                          partition_key=batch, raise_on_error=False)


def table_rows(name: str) -> list[dict]:
    """Every row of a pipeline table in the test's home."""
    from pref_pipeline.paths import SCHEMA, Home
    from pref_pipeline.table_files import connect

    with connect(Home.from_env()) as con:
        frame = con.execute(f"select * from {SCHEMA}.{name}").fetchdf()
    return frame.to_dict(orient="records")


# --------------------------------------------------------------------------- hand-made tables whose answers are known

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
JUDGE = "openai:gpt-4o"
JUDGE_2 = "anthropic:claude-x"
FP = {JUDGE: "fp-gpt", JUDGE_2: "fp-claude", "local:smollm2-135m": "fp-local"}
CANDIDATE_TEXTS = {
    "c1": ("p1", "The Moon.", "openai:gen-small", "small"),
    "c2": ("p1", "Mostly the gravity of the Moon, and a little the Sun's.", "openai:gen-big", "big"),
    "c3": ("p1", "Wind.", "openai:gen-small", "small"),
    "c4": ("p2", "Old pond, frog jumps in.", "openai:gen-small", "small"),
    "c5": ("p2", "An autumn haiku about leaves.", "openai:gen-big", "big"),
}


def prompts_frame() -> pd.DataFrame:
    from pref_pipeline.sources import PROMPT_COLUMNS

    return pd.DataFrame([
        {"prompt_id": "p1", "prompt": "What causes tides?", "category": "factual", "reference": None, "source": "t"},
        {"prompt_id": "p2", "prompt": "Write a haiku.", "category": "creative", "reference": None, "source": "t"},
    ], columns=PROMPT_COLUMNS)


def candidates_frame() -> pd.DataFrame:
    from pref_pipeline.generation import CANDIDATE_COLUMNS

    rows = []
    for index, (cid, (pid, text, model, label)) in enumerate(CANDIDATE_TEXTS.items()):
        rows.append({
            "candidate_id": cid, "prompt_id": pid, "candidate_index": index, "text": text, "strategy": "sampling",
            "generator_model": model, "generator_label": label, "sampling": json.dumps({"seed": index}),
            "system_prompt": None, "served_model": model.split(":", 1)[1], "input_tokens": 5, "output_tokens": 9,
            "finish_reason": "stop", "latency_s": 0.1, "error": None, "created_at": T0 + timedelta(minutes=index),
        })
    return pd.DataFrame(rows, columns=CANDIDATE_COLUMNS)


def judgment(cmp: str, order: str, preference: str | None, *, x: str = "c1", y: str = "c2", prompt: str = "p1",
             judge: str = JUDGE, status: str | None = None, error: str | None = None, confidence: float | None = 0.8,
             attempts: int = 1, reasoning: str = "because", criteria: str = "helpfulness_and_clarity",
             minute: int = 0) -> dict:
    """One judgments row: ``preference`` is the label shown (A, B, tie, or None when unparseable)."""
    if preference in ("A", "B"):
        preferred = ("x" if preference == "A" else "y") if order == "xy" else ("y" if preference == "A" else "x")
    else:
        preferred = preference  # "tie" or None
    if status is None:
        status = None if error else ("unparseable" if preference is None else "ok")
    return {
        "judgment_id": f"j-{cmp}-{order}-{judge}", "comparison_id": cmp, "prompt_id": prompt, "candidate_x_id": x,
        "candidate_y_id": y, "order": order, "judge_model": judge, "judge_fingerprint": FP[judge],
        "criteria": criteria, "preference": preference, "preferred": preferred,
        "confidence": confidence if preference is not None else None, "reasoning": reasoning if preference else None,
        "parse_status": status, "parse_error": "no verdict" if status == "unparseable" else None,
        "attempts": attempts, "raw_output": "raw", "failed_outputs": "[]", "served_model": judge.split(":")[1],
        "input_tokens": 10, "output_tokens": 5, "latency_s": 0.2, "error": error,
        "judged_at": T0 + timedelta(hours=1, minutes=minute),
    }


def judgments_frame(rows: list[dict]) -> pd.DataFrame:
    from pref_pipeline.judgments import JUDGMENT_COLUMNS

    return pd.DataFrame(rows, columns=JUDGMENT_COLUMNS)


def empty_judgments() -> pd.DataFrame:
    return judgments_frame([])


def empty_comparisons() -> pd.DataFrame:
    from pref_pipeline.pairs import COMPARISON_COLUMNS

    return pd.DataFrame(columns=COMPARISON_COLUMNS)


def known_judgments(judge: str = JUDGE) -> pd.DataFrame:
    """Five comparisons of one judge: consistent, inconsistent, a tie both ways, one order unparseable after
    its retries, and both orders failed."""
    rows = [
        judgment("cmp-1", "xy", "A", judge=judge), judgment("cmp-1", "yx", "B", judge=judge),  # consistent (x)
        judgment("cmp-2", "xy", "A", judge=judge), judgment("cmp-2", "yx", "A", judge=judge),  # inconsistent
        judgment("cmp-3", "xy", "tie", judge=judge), judgment("cmp-3", "yx", "tie", judge=judge),  # same both orders
        judgment("cmp-4", "xy", "A", judge=judge, attempts=2),
        judgment("cmp-4", "yx", None, judge=judge, attempts=3),  # unparseable after 2 retries
        judgment("cmp-5", "xy", None, judge=judge, error="ProviderError: 503", attempts=0),
        judgment("cmp-5", "yx", None, judge=judge, error="ProviderError: 503", attempts=0),
    ]
    return judgments_frame(rows)


def shown_label(order: str, preferred: str) -> str:
    """The label a judge writes for ``preferred`` (x, y or tie) when the order is xy (x shown as A) or yx."""
    if preferred == "tie":
        return "tie"
    return "A" if (order == "xy") == (preferred == "x") else "B"


# A judgment history of three judge versions: v1 then v2 in slot 0, another judge in slot 1.
V1, V2, OTHER = "fp-v1", "fp-v2", "fp-other"
MODELS = {V1: "openai:judge-v1", V2: "openai:judge-v2", OTHER: "anthropic:other"}
SLOTS = {V1: 0, V2: 0, OTHER: 1}
CATEGORY = {"cmp-1": "factual", "cmp-2": "factual", "cmp-3": "creative", "cmp-4": "creative", "cmp-5": "creative"}


def day(d: int) -> datetime:
    return datetime(2024, 5, d, 12, 0, tzinfo=timezone.utc)


# (fingerprint, comparison, preferred in xy, preferred in yx (None: unparseable), day of May 2024)
HISTORY = [
    (V1, "cmp-1", "x", "x", 7), (V1, "cmp-2", "y", "y", 7),  # week of Mon 6 May
    (V1, "cmp-3", "x", "y", 14), (V1, "cmp-4", "y", "y", 14),  # week of Mon 13 May
    (OTHER, "cmp-1", "y", "y", 8),  # another judge (slot 1): never compared with slot 0's versions
    (V2, "cmp-1", "y", "y", 21), (V2, "cmp-2", "y", "y", 21), (V2, "cmp-3", "y", "y", 21),  # week of Mon 20 May
    (V2, "cmp-4", "y", None, 21), (V2, "cmp-5", "x", "x", 21),
]


def history_frame() -> pd.DataFrame:
    rows = []
    for fp, cmp, xy, yx, d in HISTORY:
        for order, preferred in (("xy", xy), ("yx", yx)):
            rows.append({
                "judgment_id": f"j-{cmp}-{order}", "judge_fingerprint": fp, "comparison_id": cmp,
                "category": CATEGORY[cmp], "order": order, "judge_model": MODELS[fp],
                "preference": None if preferred is None else shown_label(order, preferred), "preferred": preferred,
                "parse_status": "unparseable" if preferred is None else "ok", "error": None, "judged_at": day(d),
                "run_id": fp, "judge_slot": SLOTS[fp], "recency_weight": 1.0 if fp == V2 else 0.5})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- the UI in a headless Chromium

UI_ARTIFACTS = ROOT / "test-artifacts" / "ui"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Flags for a closed network, as root, without a display (docs/testing.md).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update"]


# The lineage's "Materialize all…" button: "Materialize all (13)…" when the graph also shows an asset it cannot
# materialize (judge_calibration, recorded by its job).
MATERIALIZE_ALL = re.compile(r"Materialize all")


def write_ui_config(path: Path, prompts: Path, base_url: str, judge: str = "judge") -> Path:
    """The configuration the UI tests give ``dagster dev``: two generators and one judge on the fake server."""
    return write_config_file(path, [prompts], base_url, generators=two_generators((0.2, 0.9)),
                             judges=[{"model": f"openai:{judge}"}])


def visit(page, url: str, ready_text: str) -> str:
    """Open a page, dismiss the one-time newsletter dialog, wait for the text; return the page text."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.goto(url)
    try:
        page.get_by_text(ready_text).first.wait_for(timeout=60_000)
    except PlaywrightTimeout:  # keep what the page showed instead, for whoever reads the failure
        page.screenshot(path=str(UI_ARTIFACTS / f"failed-{url.rsplit('/', 1)[-1].split('?')[0]}.png"), full_page=True)
        (UI_ARTIFACTS / "failed-page.txt").write_text(page.inner_text("body"))
        raise
    try:  # shown once per browser profile, a moment after the page loads
        page.get_by_role("button", name="Skip").click(timeout=4_000)
    except PlaywrightTimeout:
        pass
    return page.inner_text("body")


# --------------------------------------------------------------------------- tables for human review

# Comparisons waiting for people (human_ranked): x is the good response ("Good ..."), y the poor one.
AWAITING = ("cmp-w0", "cmp-w1", "cmp-w2", "cmp-w3")
# Judged comparisons: (id, status, agreement, confidence, has a pair). Uncertainty, highest first: j1 (the judges
# disagreed), j2 (inconsistent), then the lowest confidence: j3 (0.4), j5 (0.6), j0 (0.9), j4 (0.95).
JUDGED = (("cmp-j0", "consistent", 1.0, 0.9, True), ("cmp-j1", "judges_disagree", 0.5, 0.3, False),
          ("cmp-j2", "inconsistent", None, 0.2, False), ("cmp-j3", "consistent", 1.0, 0.4, True),
          ("cmp-j4", "consistent", 1.0, 0.95, True), ("cmp-j5", "consistent", 1.0, 0.6, True))
CONVERSATION = [{"role": "user", "content": "I need a name for a cat."}, {"role": "assistant", "content": "Grey?"},
                {"role": "user", "content": "Something with more character, please."}]


def write_review_tables(home) -> None:
    """Store prompts, candidates, comparisons and pairs as the pipeline would (table_files.write_part): the
    comparisons in AWAITING (status awaiting_label, strategy human_ranked, batch b2; cmp-w0's prompt is the
    conversation CONVERSATION) and those in JUDGED (batch b1, pairs where said, x chosen)."""
    from pref_pipeline import schema, table_files

    now = datetime(2026, 12, 1, tzinfo=timezone.utc)
    prompts, candidates, comparisons, pairs = [], [], [], []
    ids = [(c, "b2", None) for c in AWAITING] + [(c[0], "b1", c) for c in JUDGED]
    for number, (comparison_id, batch, judged) in enumerate(ids):
        key = comparison_id.removeprefix("cmp-")
        prompt_id = f"p-{key}"
        messages = json.dumps(CONVERSATION) if comparison_id == "cmp-w0" else None
        text = (f"User: {CONVERSATION[0]['content']}\nAssistant: Grey?\nUser: {CONVERSATION[2]['content']}"
                if messages else f"Question {key}?")
        prompts.append({"prompt_id": prompt_id, "prompt": text, "category": ("factual", "coding")[number % 2],
                        "source": "test", "messages": messages, "batch_id": batch})
        for side, words in (("x", "Good answer"), ("y", "Poor answer")):
            candidates.append({"candidate_id": f"c-{key}-{side}", "prompt_id": prompt_id, "candidate_index": 0,
                               "text": f"{words} {key}.", "strategy": "human_ranked" if judged is None else "sampling",
                               "generator_model": "openai:gen", "generator_label": "gen", "sampling": "{}",
                               "error": None, "created_at": now, "batch_id": batch})
        status, agreement, confidence, has_pair = judged[1:] if judged else ("awaiting_label", None, None, False)
        comparisons.append({"comparison_id": comparison_id, "prompt_id": prompt_id, "candidate_x_id": f"c-{key}-x",
                            "candidate_y_id": f"c-{key}-y", "status": status, "agreement": agreement,
                            "confidence": confidence, "winner_id": f"c-{key}-x" if has_pair else None,
                            "strategy": "human_ranked" if judged is None else "sampling", "batch_id": batch})
        if has_pair:
            pairs.append({"pair_id": f"pair-{key}", "prompt_id": prompt_id, "prompt": text, "chosen": f"Good answer {key}.",
                          "rejected": f"Poor answer {key}.", "generation_method": "sampling", "judge_model_id": "judge",
                          "criteria": "helpful", "category": prompts[-1]["category"], "confidence": confidence,
                          "judge_fingerprint": "f1", "chosen_candidate_id": f"c-{key}-x",
                          "rejected_candidate_id": f"c-{key}-y", "label_source": "judge", "batch_id": batch})
    for name, rows in (("prompts", prompts), ("candidates", candidates), ("comparisons", comparisons),
                       ("preference_pairs", pairs)):
        table_files.write_part(home, name, None, schema.conform(name, pd.DataFrame(rows)))


def good_side(response_a: str, response_b: str) -> str:
    """What a test's reviewer answers: the response that starts with "Good" (A or B), else tie."""
    return "A" if response_a.startswith("Good") else "B" if response_b.startswith("Good") else "tie"
