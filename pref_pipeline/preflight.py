"""Everything that can be checked before the first paid call, reported together with what to fix.

The configuration file has been validated by then (``config.py``); this checks what it points at:
prompt files and folders exist and read cleanly, each model is usable (``local:`` model files exist),
each provider in use has its key in the environment (or a ``base_url`` of a keyless compatible server,
as the providers treat it), and each distinct endpoint answers a cheap ``GET .../models`` within the
model's ``timeout_s``. What a provider needs (its key variables, its probe) is declared on its class
(``providers/``). Keys are read from the environment only, sent only to the endpoint they belong to,
and never written or shown.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from pathlib import Path

import httpx

from pref_pipeline.batches import discover_batches
from pref_pipeline.config import ConfigError, ModelSpec, PipelineConfig, PromptSource
from pref_pipeline.providers import provider_class
from pref_pipeline.providers.base import Probe
from pref_pipeline.sources import SUFFIXES, PromptFileError, load_prompts

PROBE_TIMEOUT_CAP_S = 30.0  # a probe waits at most the model's timeout_s, and never longer than this


@dataclass
class Preflight:
    """What stops a run (``problems``) and what it should know (``notes``, e.g. rows set aside)."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class _Endpoint:
    probe: Probe  # what is asked of it
    base: str  # as configured (named in messages)
    key_variables: tuple[str, ...]  # its provider's key variables
    keys: list[str] = field(default_factory=list)  # the config keys that use it, e.g. "judges[0]"
    timeout_s: float = PROBE_TIMEOUT_CAP_S


def _models(config: PipelineConfig) -> list[tuple[str, ModelSpec]]:
    return ([(f"generators[{i}]", g) for i, g in enumerate(config.generators)]
            + [(f"judges[{i}]", j) for i, j in enumerate(config.judges) if not j.is_rule])  # a rule calls nothing


def _path_problem(source: PromptSource) -> str | None:
    """Why a prompt source cannot even be opened ("{key}" stands for its config key), or None."""
    if source.path is None:  # a dataset: a local folder, or a Hub id (owner/name) read when the batch runs
        folder = Path(str(source.dataset)).expanduser()
        if folder.exists() or str(source.dataset).count("/") == 1:
            return None
        return f"no dataset folder {source.dataset} (and not a Hub id, owner/name)"
    if not source.path.exists():
        return f"file not found: {source.path}"
    if source.path.is_dir():
        return f"{source.path} is a folder (use prompt_folder for a folder of files)"
    if source.format == "auto" and source.path.suffix.lower() not in SUFFIXES:
        return (f"cannot tell the format of {source.path.name!r} from its suffix; "
                "set {key}.format (jsonl, csv or parquet)")
    return None


def file_problems(config: PipelineConfig) -> list[str]:
    """Prompt paths and the prompt folder that do not exist, and models that cannot be used (a ``local:`` model
    file that does not exist)."""
    problems = []
    for i, source in enumerate(config.prompts):
        problem = _path_problem(source)
        if problem:
            key = "path" if source.path is not None else "dataset"
            problems.append(f"prompts[{i}].{key}: {problem.replace('{key}', f'prompts[{i}]')}")
    if config.prompt_folder is not None and not config.prompt_folder.is_dir():
        problems.append(f"prompt_folder: not a folder: {config.prompt_folder}")
    for key, spec in _models(config):
        problem = provider_class(spec.provider).model_problem(spec)
        if problem:
            problems.append(f"{key}.model: {problem}")
    return problems


def prompt_problems(config: PipelineConfig) -> Preflight:
    """Every prompt batch read and checked now, so a bad row is reported before anything is spent."""
    result = Preflight()
    for batch, sources in discover_batches(config).items():
        if any(_path_problem(s) for s in sources):
            continue  # reported by file_problems, naming the key
        try:
            loaded = load_prompts(sources)
        except (PromptFileError, OSError) as exc:
            result.problems.append(f"prompt batch {batch!r}: {exc}")
            continue
        result.notes += [f"prompt batch {batch!r}: {w}" for w in loaded.warnings]
    return result


def _key_missing(spec: ModelSpec, environ: Mapping[str, str]) -> str | None:
    """The variable that should hold this model's key when none of its provider's does, else None."""
    variables = provider_class(spec.provider).key_variables(spec, environ)
    if not variables or any(environ.get(v) for v in variables):
        return None
    return variables[0]


def key_problems(config: PipelineConfig, environ: Mapping[str, str] | None = None) -> list[str]:
    """Providers in use whose key is missing from the environment, one line per variable."""
    environ = os.environ if environ is None else environ
    missing: dict[str, list[str]] = {}
    for key, spec in _models(config):
        variable = _key_missing(spec, environ)
        if variable:
            missing.setdefault(variable, []).append(f"{key} ({spec.model})")
    problems = []
    for variable, users in missing.items():
        state = "is empty" if variable in environ else "is not set"
        problems.append(f"{', '.join(users)}: {variable} {state}; export it in the environment that runs the "
                        "pipeline (keys are read from there only), or give base_url for a keyless compatible server")
    return problems


def _endpoints(config: PipelineConfig, environ: Mapping[str, str]) -> list[_Endpoint]:
    endpoints: dict[tuple[str, str], _Endpoint] = {}
    for key, spec in _models(config):
        provider = provider_class(spec.provider)
        url = provider.base_url(spec, environ)
        if url is None or _key_missing(spec, environ):
            continue  # an in-process model makes no HTTP call; a missing key is reported on its own
        endpoint = endpoints.get((spec.provider, url))
        if endpoint is None:
            probe = provider.probe(url, environ)
            if probe is None:
                continue
            endpoint = endpoints[(spec.provider, url)] = _Endpoint(probe, url, provider.capabilities.key_variables)
        endpoint.keys.append(key)
        endpoint.timeout_s = min(endpoint.timeout_s, spec.timeout_s)
    return list(endpoints.values())


def _connect_reason(exc: Exception) -> str:
    text = str(exc).lower()
    for needle, reason in (("refused", "connection refused"), ("name or service not known", "host not found"),
                           ("nodename nor servname", "host not found"), ("no address", "host not found"),
                           ("temporary failure in name resolution", "host not found"),
                           ("network is unreachable", "network unreachable"), ("certificate", "TLS certificate error"),
                           ("reset", "connection reset"), ("no route", "no route to host")):
        if needle in text:
            return reason
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _probe(endpoint: _Endpoint) -> str | None:
    """One cheap request; a problem when the server cannot be reached, hangs, or refuses the key.
    Any other answer (200, 404 from a server without a model list, ...) shows it is there."""
    base = endpoint.base
    users = ", ".join(endpoint.keys)
    try:
        with httpx.Client(timeout=endpoint.timeout_s, follow_redirects=True) as client:
            response = client.get(endpoint.probe.url, headers=endpoint.probe.headers)
    except httpx.TimeoutException:
        return (f"no answer from {base} within {endpoint.timeout_s:g} s (timeout_s) for {users}: check base_url "
                "and that the server is up")
    except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError) as exc:
        return f"cannot reach {base} ({_connect_reason(exc)}) for {users}: check base_url"
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        return f"cannot use {base} for {users}: {exc}; check base_url"
    except httpx.HTTPError as exc:
        return f"cannot reach {base} ({type(exc).__name__}: {exc}) for {users}: check base_url"
    if response.status_code in (401, 403):
        variable = endpoint.probe.key_variable or next(iter(endpoint.key_variables), "its key variable")
        if endpoint.probe.key_variable:
            return f"{base} refused the key in {variable} (HTTP {response.status_code}) for {users}: check the key"
        return f"{base} asks for a key (HTTP {response.status_code}) for {users}: set {variable}"
    return None


def endpoint_problems(config: PipelineConfig, environ: Mapping[str, str] | None = None) -> list[str]:
    """Each distinct endpoint probed once, in parallel, each bounded by its models' smallest ``timeout_s``."""
    environ = os.environ if environ is None else environ
    endpoints = _endpoints(config, environ)
    for endpoint in endpoints:
        endpoint.timeout_s = min(endpoint.timeout_s, PROBE_TIMEOUT_CAP_S)
    if not endpoints:
        return []
    with ThreadPoolExecutor(max_workers=min(8, len(endpoints))) as pool:
        return [p for p in pool.map(_probe, endpoints) if p]


def inspect(config: PipelineConfig, *, will_call: bool = True, environ: Mapping[str, str] | None = None) -> Preflight:
    """Every check; ``will_call=False`` (a dry run) leaves endpoints alone and notes missing keys only."""
    result = Preflight(problems=file_problems(config))
    prompts = prompt_problems(config)
    result.problems += prompts.problems
    result.notes += prompts.notes
    keys = key_problems(config, environ)
    if will_call:
        result.problems += keys
        result.problems += endpoint_problems(config, environ)
    else:
        result.notes += [f"a run will need: {k}" for k in keys]
    return result


def preflight(config: PipelineConfig, *, will_call: bool = True, environ: Mapping[str, str] | None = None) -> list[str]:
    """The problems that would make a run fail or spend in vain (empty: ready)."""
    return inspect(config, will_call=will_call, environ=environ).problems


def check_ready(config: PipelineConfig, *, will_call: bool = True,
                environ: Mapping[str, str] | None = None) -> list[str]:
    """Raise ``ConfigError`` naming every problem; return the notes for the caller to show."""
    result = inspect(config, will_call=will_call, environ=environ)
    if result.problems:
        items = ["  - " + p.replace("\n", "\n    ") for p in result.problems]
        raise ConfigError(f"cannot start: {len(result.problems)} problem(s) to fix first "
                          "(nothing was called or spent):\n" + "\n".join(items))
    return result.notes
