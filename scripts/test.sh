#!/usr/bin/env bash
# Set up (if needed, with what only the tests use), lint (ruff; lint-imports: the layers and no import cycles,
# [tool.importlinter] in pyproject.toml), then run the whole test suite, slow tests included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --tests
.venv/bin/ruff check .
.venv/bin/lint-imports
exec .venv/bin/python -m pytest -ra "$@"
