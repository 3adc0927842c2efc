#!/usr/bin/env bash
# Precision chosen by statistics (docs/method.md "Compute precision"): the example evaluation set
# scored under each compute precision, and each metric's shift from F32 set against the bootstrap
# interval (over trajectories) that `hesnr eval` reports for the same metric on the same set.
#   bash bench/precision.sh        (THREADS=2; PRECISIONS="f32 bf16 f16"; INPUT=examples/trajectories)
# Results in bench/results/precision-<time>/; prints the table of docs/benchmarks.md and the rule's
# verdict. Builds nothing; HESNR_BIN may point at a copy of the binary.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
PRECISIONS=${PRECISIONS:-"f32 bf16 f16"}
INPUT=${INPUT:-examples/trajectories}
PRESET=${PRESET:-full}
H=${HESNR_BIN:-./target/release/hesnr}
OUT=bench/results/precision-$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
echo "load at start: $(uptime)" | tee "$OUT/load.txt"
for p in $PRECISIONS; do
  $H eval -T "$INPUT" --preset "$PRESET" --precision "$p" -t "$THREADS" --window-policy strided --log error \
    -o "$OUT/rows-$p.jsonl" --summary "$OUT/summary-$p.json"
  echo "after $p: $(uptime)" | tee -a "$OUT/load.txt"
done
python3 bench/precision_rule.py "$OUT"/summary-*.json | tee "$OUT/verdict.md"
