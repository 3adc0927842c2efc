#!/usr/bin/env bash
# The Python package's tests (python/tests, pytest), in the virtual environment that
# scripts/setup-python.sh installed the package into (scripts/setup-tests.sh runs it). They
# compare the package with the CLI build in target/release, on tiny random-weight models and,
# when fetched, the default model (under CI its absence fails those tests).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${HESNR_VENV:-.venv}
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import hesnr, pytest" 2>/dev/null; then
  echo "test-python: the package is not installed in $VENV (bash scripts/setup-python.sh)" >&2
  exit 1
fi
cd python/tests
exec "../../$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@"
