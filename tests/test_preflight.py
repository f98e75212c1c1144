"""The preflight: every problem found before the first paid call, each saying what to fix."""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pref_pipeline.cli import main
from pref_pipeline.config import ConfigError, parse_config
from pref_pipeline.paths import Home
from pref_pipeline.preflight import check_ready, key_problems, preflight
from tests.fakes import FakeLLMServer
from tests.helpers import free_port

NO_KEYS: dict[str, str] = {}


class HangingServer:
    """Accepts TCP connections and never answers: a server that hangs."""

    def __enter__(self) -> HangingServer:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.sock.close()


class ModelListServer:
    """Answers GET /v1/models with a fixed status and counts the requests (and the keys sent)."""

    def __init__(self, status: int = 200):
        self.status, self.gets, self.auth = status, [], []

    def __enter__(self) -> ModelListServer:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the http.server interface
                outer.gets.append(self.path)
                outer.auth.append(self.headers.get("Authorization") or self.headers.get("x-api-key"))
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"data": []}')

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.root = f"http://127.0.0.1:{self.httpd.server_port}"
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def config_for(prompts_file: Path, **models) -> object:
    base = {"prompts": [{"path": str(prompts_file)}]}
    return parse_config({**base, **models})


def openai_models(url: str, **extra) -> dict:
    return {"generators": [{"model": "openai:gen", "base_url": url, **extra}],
            "judges": [{"model": "openai:judge", "base_url": url, **extra}]}


# --------------------------------------------------------------------------- files

def test_a_ready_config_has_no_problem(prompts_file):
    with FakeLLMServer() as server:
        assert preflight(config_for(prompts_file, **openai_models(server.openai_base_url)), environ=NO_KEYS) == []


def test_missing_prompt_path_and_folder_name_the_key(tmp_path, prompts_file):
    config = parse_config({"prompts": [{"path": str(prompts_file)}, {"path": str(tmp_path / "gone.jsonl")}],
                           "prompt_folder": str(tmp_path / "no-such-folder"),
                           "generators": [{"model": "local:/models/absent.gguf"}]})
    problems = preflight(config, will_call=False, environ=NO_KEYS)
    assert f"prompts[1].path: file not found: {tmp_path / 'gone.jsonl'}" in problems
    assert f"prompt_folder: not a folder: {tmp_path / 'no-such-folder'}" in problems
    assert any(p.startswith("generators[0].model: local:/models/absent.gguf: not a bundled model") for p in problems)


def test_unknown_suffix_names_the_format_key(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("What?\n")
    problems = preflight(parse_config({"prompts": [{"path": str(path)}]}), will_call=False, environ=NO_KEYS)
    assert problems == ["prompts[0].path: cannot tell the format of 'prompts.txt' from its suffix; "
                        "set prompts[0].format (jsonl, csv or parquet)"]


def test_bad_prompt_rows_are_problems_and_warnings_are_notes(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok"}\n{"prompt": 1}\n{oops\n')
    problems = preflight(parse_config({"prompts": [{"path": str(bad)}]}), will_call=False, environ=NO_KEYS)
    assert len(problems) == 1 and f"{bad}:2:" in problems[0] and f"{bad}:3:" in problems[0]
    notes = check_ready(parse_config({"prompts": [{"path": str(bad), "on_bad_rows": "skip"}]}), will_call=False,
                        environ=NO_KEYS)
    assert notes == [f"prompt batch 'bad': {bad}: set aside 2 bad row(s) (on_bad_rows: skip); 1 good row(s) go on"]


# --------------------------------------------------------------------------- keys

def test_missing_keys_name_the_variable_and_the_models(prompts_file):
    config = config_for(prompts_file, generators=[{"model": "openai:gpt-4.1-mini"}, {"model": "anthropic:claude-x"}],
                        judges=[{"model": "anthropic:claude-y"}])
    problems = preflight(config, environ=NO_KEYS)
    assert problems == [
        "generators[0] (openai:gpt-4.1-mini): OPENAI_API_KEY is not set; export it in the environment that runs "
        "the pipeline (keys are read from there only), or give base_url for a keyless compatible server",
        "generators[1] (anthropic:claude-x), judges[0] (anthropic:claude-y): ANTHROPIC_API_KEY is not set; export "
        "it in the environment that runs the pipeline (keys are read from there only), or give base_url for a "
        "keyless compatible server",
    ]  # hosted endpoints without a key are not probed: no network needed to say this
    assert "OPENAI_API_KEY is empty" in preflight(config, environ={"OPENAI_API_KEY": ""})[0]


def test_keyless_local_servers_need_no_key(prompts_file):
    """As the providers do: a base_url (or OPENAI_BASE_URL / ANTHROPIC_BASE_URL) gets a placeholder key."""
    with ModelListServer() as server:
        config = config_for(prompts_file, generators=[{"model": "openai:gen", "base_url": f"{server.root}/v1"}],
                            judges=[{"model": "anthropic:judge", "base_url": server.root}])
        assert preflight(config, environ=NO_KEYS) == []
        assert sorted(server.gets) == ["/v1/models", "/v1/models"]
        env_only = config_for(prompts_file, generators=[{"model": "openai:gen"}], judges=[{"model": "anthropic:j"}])
        assert preflight(env_only, environ={"OPENAI_BASE_URL": f"{server.root}/v1", "ANTHROPIC_BASE_URL": server.root}) == []
    # The anthropic SDK also authenticates with ANTHROPIC_AUTH_TOKEN.
    assert key_problems(env_only, {"OPENAI_API_KEY": "k", "ANTHROPIC_AUTH_TOKEN": "token"}) == []


def test_keys_are_sent_only_as_the_sdk_would_and_never_shown(prompts_file):
    secret = "sk-test-PREFLIGHT-0123456789"
    with ModelListServer(status=401) as server:
        config = config_for(prompts_file, **openai_models(f"{server.root}/v1"))
        problems = preflight(config, environ={"OPENAI_API_KEY": secret})
        assert server.auth == [f"Bearer {secret}"]  # one probe for the shared endpoint
        assert problems == [f"{server.root}/v1 refused the key in OPENAI_API_KEY (HTTP 401) for generators[0], "
                            "judges[0]: check the key"]
        assert secret not in " ".join(problems)
        asks = preflight(config, environ=NO_KEYS)
        assert asks == [f"{server.root}/v1 asks for a key (HTTP 401) for generators[0], judges[0]: set OPENAI_API_KEY"]


# --------------------------------------------------------------------------- endpoints

def test_each_distinct_endpoint_is_probed_once(prompts_file):
    with ModelListServer() as first, ModelListServer(status=404) as second:
        config = config_for(prompts_file, generators=[
            {"model": "openai:a", "base_url": f"{first.root}/v1"}, {"model": "openai:b", "base_url": f"{first.root}/v1/"},
            {"model": "openai:c", "base_url": f"{second.root}/v1"}], judges=[{"model": "openai:j", "base_url": f"{first.root}/v1"}])
        assert preflight(config, environ=NO_KEYS) == []  # a 404 (no model list) still shows the server is there
        assert first.gets == ["/v1/models"] and second.gets == ["/v1/models"]


def test_unreachable_base_url(prompts_file):
    url = f"http://127.0.0.1:{free_port()}/v1"
    problems = preflight(config_for(prompts_file, **openai_models(url)), environ=NO_KEYS)
    assert problems == [f"cannot reach {url} (connection refused) for generators[0], judges[0]: check base_url"]


def test_hanging_base_url_is_bounded_by_timeout_s(prompts_file):
    with HangingServer() as server:
        config = config_for(prompts_file, generators=[{"model": "openai:gen", "base_url": server.url, "timeout_s": 0.5}],
                            judges=[{"model": "openai:judge", "base_url": server.url, "timeout_s": 5}])
        started = time.monotonic()
        problems = preflight(config, environ=NO_KEYS)
        assert time.monotonic() - started < 3
    assert problems == [f"no answer from {server.url} within 0.5 s (timeout_s) for generators[0], judges[0]: "
                        "check base_url and that the server is up"]


def test_check_ready_lists_every_problem(tmp_path, prompts_file):
    url = f"http://127.0.0.1:{free_port()}/v1"
    config = parse_config({"prompts": [{"path": str(tmp_path / "gone.jsonl")}],
                           "generators": [{"model": "openai:gen", "base_url": url}],
                           "judges": [{"model": "anthropic:claude-x"}]})
    with pytest.raises(ConfigError) as err:
        check_ready(config, environ=NO_KEYS)
    message = str(err.value)
    assert message.startswith("cannot start: 3 problem(s) to fix first (nothing was called or spent):\n  - ")
    assert "prompts[0].path: file not found" in message
    assert "judges[0] (anthropic:claude-x): ANTHROPIC_API_KEY is not set" in message
    assert f"cannot reach {url} (connection refused) for generators[0]" in message


# --------------------------------------------------------------------------- through the CLI

def write_yaml(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_run_without_the_anthropic_key_exits_2_before_any_call(home, prompts_file, capsys):
    """This used to fail after the generation calls were paid, with an SDK TypeError."""
    with FakeLLMServer() as server:
        config = write_yaml(prompts_file.parent / "p.yaml",
                            f"prompts:\n  - path: {prompts_file}\n"
                            f"generators:\n  - model: openai:gen\n    base_url: {server.openai_base_url}\n"
                            "judges:\n  - model: anthropic:claude-sonnet-4-5\n")
        assert main(["run", "--config", str(config)]) == 2
        assert server.requests == []  # nothing called, nothing paid
    err = capsys.readouterr().err
    assert "judges[0] (anthropic:claude-sonnet-4-5): ANTHROPIC_API_KEY is not set" in err
    assert "Traceback" not in err
    assert not Home.from_env().tables.exists()


def test_run_with_an_unreachable_base_url_exits_2_naming_it(home, prompts_file, capsys):
    url = f"http://127.0.0.1:{free_port()}/v1"
    config = write_yaml(prompts_file.parent / "p.yaml", f"prompts:\n  - path: {prompts_file}\n"
                        f"generators:\n  - model: openai:gen\n    base_url: {url}\n"
                        f"judges:\n  - model: openai:judge\n    base_url: {url}\n")
    assert main(["run", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert f"cannot reach {url} (connection refused) for generators[0], judges[0]: check base_url" in err
    assert not Home.from_env().tables.exists()
    # A dry run calls nothing, so it neither probes nor needs the server.
    assert main(["estimate", "--config", str(config)]) == 0


def test_estimate_notes_missing_keys_without_failing(home, prompts_file, capsys):
    config = write_yaml(prompts_file.parent / "p.yaml", f"prompts:\n  - path: {prompts_file}\n"
                        "generators:\n  - model: openai:gpt-4.1-mini\njudges:\n  - model: anthropic:claude-sonnet-4-5\n")
    assert main(["estimate", "--config", str(config)]) == 0
    err = capsys.readouterr().err
    assert "note: a run will need: generators[0] (openai:gpt-4.1-mini): OPENAI_API_KEY is not set" in err
    assert "note: a run will need: judges[0] (anthropic:claude-sonnet-4-5): ANTHROPIC_API_KEY is not set" in err


def test_run_with_a_missing_prompt_path_exits_2_naming_the_key(home, tmp_path, capsys):
    config = write_yaml(tmp_path / "p.yaml", "prompts:\n  - path: missing.jsonl\n")
    assert main(["run", "--config", str(config)]) == 2
    assert f"prompts[0].path: file not found: {tmp_path / 'missing.jsonl'}" in capsys.readouterr().err


def test_empty_config_file_exits_2(home, tmp_path, capsys):
    config = write_yaml(tmp_path / "p.yaml", "# only a comment\n")
    assert main(["run", "--config", str(config)]) == 2
    assert "the configuration file is empty" in capsys.readouterr().err
