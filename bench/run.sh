#!/usr/bin/env bash
# Re-runs every number in docs/benchmarks.md on this machine, hesnr and its peers side by side:
#   bash bench/run.sh            (after scripts/setup.sh; installs the peers on first use)
# Peers: llama.cpp's default build (bench/peer-llamacpp) and Hugging Face transformers
# (a venv at bench/.venv). Same model file, same text, same thread count.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
REPS=${REPS:-3}
MODEL=${HESNR_MODEL:-$(./target/release/hesnr info 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["path"])')}
OUT=bench/results/$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
[ -f bench/corpus/code-512.jsonl ] || python3 bench/make_corpus.py

cargo build --release --quiet --manifest-path bench/peer-llamacpp/Cargo.toml
if [ ! -x bench/.venv/bin/python ]; then
  python3 -m venv bench/.venv
  bench/.venv/bin/pip install --quiet transformers gguf torch sentencepiece accelerate
fi

echo "load at start: $(uptime)" | tee "$OUT/load.txt"
bench/.venv/bin/python bench/gemm_peak.py "$MODEL" --threads "$THREADS" > "$OUT/gemm.json"

for n in 512 2048; do
  f=bench/corpus/code-$n.jsonl
  echo "== $f"
  cargo bench --quiet --bench engine -- --threads "$THREADS" --reps "$REPS" "$f" | tee "$OUT/hesnr-$n.txt"
  cargo bench --quiet --bench engine -- --threads "$THREADS" --reps "$REPS" --precision bf16 "$f" | tee "$OUT/hesnr-bf16-$n.txt"
  bench/peer-llamacpp/target/release/peer-llamacpp "$MODEL" "$f" --threads "$THREADS" --reps "$REPS" | tee "$OUT/llamacpp-$n.json"
  bench/.venv/bin/python bench/peer_transformers.py "$MODEL" "$f" --threads "$THREADS" --reps "${TF_REPS:-1}" | tee "$OUT/transformers-$n.json"
  ./target/release/hesnr score "$f" -t "$THREADS" -o "$OUT/hesnr-rows-$n.jsonl" --json > "$OUT/hesnr-summary-$n.json"
done

echo "== memory: one 8192-token document"
/usr/bin/time -v ./target/release/hesnr score bench/corpus/code-8192.jsonl -t "$THREADS" --json 2> "$OUT/time-8192.txt" > "$OUT/hesnr-summary-8192.json"
grep "Maximum resident" "$OUT/time-8192.txt"
echo "load at end: $(uptime)" | tee -a "$OUT/load.txt"
python3 bench/compare.py "$OUT"
