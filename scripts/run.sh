#!/usr/bin/env bash
# Set up (if needed), then run the whole pipeline; with no arguments, the embedded offline default.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/pref-pipeline run "$@"
