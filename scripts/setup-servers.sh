#!/usr/bin/env bash
# Optional: llama-cpp-python's OpenAI-compatible server (built from source by pip, ~5 min on
# 2 cores) into .venv-servers/, for the tests that check hesnr's verification catches its
# misaligned prompt log-probabilities. scripts/setup-tests.sh runs it (the README's test command
# and CI); without it those tests say they were skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-servers
# No AMX kernels: a native build on a processor that advertises AMX compiles them in, and
# virtual machines that advertise AMX without enabling it crash in them (SIGSEGV in
# ggml_backend_amx_mul_mat) on the first request. A portable AVX2 build is all these tests need.
# The flags are recorded in the venv, so a venv built with other flags is rebuilt.
BUILD_FLAGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
STAMP="$VENV/.hesnr-cmake-args"
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import llama_cpp.server" 2>/dev/null \
  && [ "$(cat "$STAMP" 2>/dev/null)" = "$BUILD_FLAGS" ]; then
  echo "setup-servers: llama-cpp-python already installed in $VENV"
  exit 0
fi
if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c "import ensurepip" 2>/dev/null; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >/dev/null
fi
rm -rf "$VENV"
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
echo "setup-servers: building llama-cpp-python 0.3.36 (cmake, ~5 min on 2 cores)"
CMAKE_ARGS="$BUILD_FLAGS" CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2} \
  "$VENV/bin/pip" install -q --no-cache-dir "llama-cpp-python[server]==0.3.36"
"$VENV/bin/python" -c "import llama_cpp.server; print('setup-servers: llama-cpp-python', __import__('llama_cpp').__version__)"
echo "$BUILD_FLAGS" > "$STAMP"
