#!/usr/bin/env bash
# The Python package `hesnr` (README, "From Python"): builds the wheel with maturin from this
# repository (the same release build as scripts/setup.sh: the `hesnr` binary, whose llama.cpp
# CPU kernel modules are copied into the package so that it picks the CPU's kernels at run time
# wherever it is installed) and installs it with its test extras into a virtual environment
# (default .venv; HESNR_VENV=... for another). Safe to re-run: a warm build only re-packs.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${HESNR_VENV:-.venv}
if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c "import ensurepip" 2>/dev/null; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >/dev/null
fi
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip

cargo build --release --locked
# What the binary loads from the build's folders, staged for the wheel (ignored by git; listed in
# pyproject.toml): the CPU kernel modules into the package (python/hesnr/hesnr-backends; Python
# points the binary at them), and llama.cpp's shared libraries (libllama, libggml) into the
# environment's lib/ (python/hesnr.data/data/lib), where the binary's $ORIGIN/../lib finds them.
backends=$(env -u HESNR_BACKENDS_DIR ./target/release/hesnr backends-dir)
rm -rf python/hesnr/hesnr-backends python/hesnr.data
mkdir -p python/hesnr/hesnr-backends python/hesnr.data/data/lib
cp "$backends"/libggml-cpu-*.so python/hesnr/hesnr-backends/
libs=$(ldd target/release/hesnr | awk '/lib(llama|ggml)/ {print $3}')
[ -n "$libs" ] && cp -L $libs python/hesnr.data/data/lib/
echo "setup-python: $(ls python/hesnr/hesnr-backends | wc -l) CPU kernel modules from $backends;" \
  "shared libraries: $(ls python/hesnr.data/data/lib | tr '\n' ' ')"

# The wheel: maturin runs the same `cargo build --release --locked` (nothing to rebuild after the
# step above) and packs the binary with the Python modules.
"$VENV/bin/pip" install -q "maturin>=1.5,<2"
rm -rf target/wheels
"$VENV/bin/maturin" build --release --locked --out target/wheels
"$VENV/bin/pip" install -q --force-reinstall --no-deps target/wheels/hesnr-*.whl
"$VENV/bin/pip" install -q "$(ls target/wheels/hesnr-*.whl)[test]"
"$VENV/bin/python" -c "import hesnr; print('setup-python: hesnr', hesnr.__version__, 'in $VENV, binary', hesnr.binary())"
