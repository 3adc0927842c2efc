#!/usr/bin/env bash
# What the test suite needs beyond scripts/setup.sh (the README's test command and CI run it):
# a headless Chromium for the report's browser test (Debian's package; that test fails under CI
# without it and says it skipped otherwise), and llama-cpp-python's server for the remote-server
# tests (scripts/setup-servers.sh), and the Python package with its test extras in .venv/
# (scripts/setup-python.sh) for scripts/test-python.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null 2>&1 && [ ! -x /usr/bin/chromium ]; then
  echo "setup-tests: installing chromium"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
bash scripts/setup-servers.sh
bash scripts/setup-python.sh
