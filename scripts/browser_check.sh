#!/usr/bin/env bash
# The `hesnr track` HTML report in a real headless Chromium (tests/it/report_browser.rs): installs
# Chromium from the distribution if it is missing, then runs the test. The rendered reports and
# screenshots are left under target/tmp/report_browser/ to look at.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1 && [ ! -x /usr/bin/chromium ]; then
  echo "browser_check: installing chromium"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi

cargo test --release --test it report_browser -- --nocapture
