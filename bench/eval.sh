#!/usr/bin/env bash
# Trajectory eval throughput and memory (docs/benchmarks.md, "Trajectory eval"), with the llama.cpp
# peer on the same rendered text in the same run:
#   bash bench/eval.sh            (after scripts/setup.sh; THREADS=2 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
H=./target/release/hesnr
MODEL=${HESNR_MODEL:-$($H info 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["path"])')}
SET=${SET:-examples/trajectories/chat.jsonl}
OUT=bench/results/eval-$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
cargo build --release --quiet --manifest-path bench/peer-llamacpp/Cargo.toml

echo "== hesnr eval, preset full (the paper's evaluation set)"
$H eval -T "$SET" -t "$THREADS" --rendered "$OUT/rendered.jsonl" -o "$OUT/rows-full.jsonl" --summary "$OUT/eval-full.json"
echo "== hesnr eval, every preset from one forward pass"
$H eval -T "$SET" -t "$THREADS" --preset all -o "$OUT/rows-all.jsonl" --summary "$OUT/eval-all.json"
echo "== hesnr score on the same rendered text, every position (the document path)"
$H score "$OUT/rendered.jsonl" -t "$THREADS" -o "$OUT/score-rows.jsonl" --json > "$OUT/score-rendered.json"
echo "== peer: llama.cpp default build, shipped weights, every position, same rendered text"
bench/peer-llamacpp/target/release/peer-llamacpp "$MODEL" "$OUT/rendered.jsonl" --threads "$THREADS" --reps 1 | tee "$OUT/peer-llamacpp.json"

echo "== memory: one example trajectory, and one of ~33K tokens (4 windows of 8192)"
python3 bench/make_long_trajectory.py
/usr/bin/time -v $H eval -T "$SET" --limit 1 -t "$THREADS" -o /dev/null --summary "$OUT/one.json" 2> "$OUT/time-one.txt"
/usr/bin/time -v $H eval -T bench/corpus/long-trajectory.jsonl -t "$THREADS" -o /dev/null --summary "$OUT/long.json" 2> "$OUT/time-long.txt"

python3 - "$OUT" <<'PY'
import json, pathlib, re, sys
out = pathlib.Path(sys.argv[1])
j = lambda n: json.loads((out / n).read_text())
full, alls, score, peer = j("eval-full.json"), j("eval-all.json"), j("score-rendered.json"), j("peer-llamacpp.json")
rss = lambda n: int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", (out / n).read_text()).group(1)) / 1024**2
print(f"context tokens: {full['context_tokens']} in {full['trajectories']} trajectories")
print(f"hesnr eval full : {full['context_tokens_per_second']:.0f} context tok/s")
print(f"hesnr eval all  : {alls['context_tokens_per_second']:.0f} context tok/s")
print(f"hesnr score     : {score['tokens_per_second']:.0f} tok/s (every position)")
print(f"llama.cpp peer  : {peer['forward_metrics_tok_s']:.0f} tok/s (forward {peer['forward_tok_s']:.0f})")
print(f"ratio eval full / peer: {full['context_tokens_per_second'] / peer['forward_metrics_tok_s']:.2f}x")
for n in ["one", "long"]:
    s = j(f"{n}.json")
    print(f"{n}: {s['context_tokens']} context tokens, peak RSS {rss(f'time-{n}.txt'):.2f} GB, {s['context_tokens_per_second']:.0f} tok/s")
PY
