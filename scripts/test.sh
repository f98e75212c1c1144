#!/usr/bin/env bash
# Set up (if needed, with what only the tests use), lint, then run the whole test suite, slow tests included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --tests
.venv/bin/ruff check .
exec .venv/bin/python -m pytest -ra "$@"
