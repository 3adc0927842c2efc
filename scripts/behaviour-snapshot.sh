#!/usr/bin/env bash
# Runs every pipeline on the examples and keeps their outputs, so that a refactor can be proven to
# keep behaviour: take a snapshot before and after and compare them byte for byte.
#
#   bash scripts/behaviour-snapshot.sh /tmp/before            # with ./target/release/hesnr
#   ... change the code, rebuild ...
#   bash scripts/behaviour-snapshot.sh /tmp/after
#   diff -r /tmp/before /tmp/after && echo identical
#
# HESNR_BIN names another binary. The default model must be fetched (`hesnr fetch-model`).
# Wall-clock numbers (seconds, tokens per second) are removed from the JSON files, since they
# differ between any two runs; everything else is compared as written. About 5 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:?usage: behaviour-snapshot.sh OUT_DIR}
bin=$(realpath "${HESNR_BIN:-./target/release/hesnr}")
# Outputs are written under one relative path so that paths recorded in them match between runs.
work=out/behaviour-snapshot
rm -rf "$work" && mkdir -p "$work"
run() { echo "+ hesnr $*" >&2; "$bin" "$@"; }
unset HESNR_MODEL HESNR_REMOTE_URL HESNR_API_KEY SLURM_ARRAY_TASK_ID SLURM_ARRAY_TASK_COUNT SLURM_ARRAY_TASK_MIN

# score: rows, summary, token trace; a Parquet-free JSONL input and a plain-text input.
mkdir -p "$work/score"
run score examples/code.jsonl -o "$work/score/rows.jsonl" --summary "$work/score/summary.json" \
  --tokens "$work/score/tokens.jsonl" 2>"$work/score/stderr.txt"
run score examples/trajectories/README.md -o "$work/score/text-rows.jsonl" 2>/dev/null

# eval: every preset, rows, summary, rendered text, and the explain views.
mkdir -p "$work/eval"
run eval -T examples/trajectories --preset all -o "$work/eval/rows.jsonl" \
  --summary "$work/eval/summary.json" --rendered "$work/eval/rendered.jsonl" 2>"$work/eval/stderr.txt"
id=$(head -1 examples/trajectories/chat.jsonl | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
run eval -T examples/trajectories/chat.jsonl --explain "$id" --color never >"$work/eval/explain.txt" 2>/dev/null
run eval -T examples/trajectories/chat.jsonl --explain "$id" --html "$work/eval/explain.html" 2>/dev/null

# profile -> select -> report-select, then merge (the selection must not depend on the merge).
run profile examples/corpus/code.jsonl --out "$work/profile" 2>/dev/null
sed "s#profile = \"out/profile\"#profile = \"$work/profile\"#" examples/corpus/select.toml >"$work/select.toml"
run select "$work/select.toml" --out "$work/selected" 2>/dev/null
run report-select "$work/selected" --no-tokens 2>/dev/null
run merge "$work/profile" 2>/dev/null

# track: one evaluation set of trajectories and one of documents; three named checkpoints of the
# default model (scored once: the cache is keyed by content).
model=$("$bin" info | python3 -c 'import json,sys; print(json.load(sys.stdin)["path"])')
cat >"$work/manifest.toml" <<TOML
title = "snapshot"
[[checkpoint]]
name = "a"
model = "$model"
step = 1000
scores = { swebench_verified = 0.10 }
[[checkpoint]]
name = "b"
model = "$model"
step = 2000
scores = { swebench_verified = 0.12 }
[[checkpoint]]
name = "c"
model = "$model"
step = 3000
scores = { swebench_verified = 0.11 }
TOML
run track "$work/manifest.toml" -T examples/trajectories/chat.jsonl --cache "$work/track-cache" \
  --out "$work/track" 2>/dev/null
run track "$work/manifest.toml" --documents examples/code.jsonl --cache "$work/track-cache" \
  --out "$work/track-docs" 2>/dev/null

# Remove wall-clock numbers, then keep the snapshot.
python3 - "$work" <<'PY'
import json, pathlib, sys
CLOCK = {"seconds", "tokens_per_second", "context_tokens_per_second", "scoring_seconds"}
def scrub(v):
    if isinstance(v, dict):
        return {k: scrub(x) for k, x in v.items() if k not in CLOCK}
    if isinstance(v, list):
        return [scrub(x) for x in v]
    return v
for p in pathlib.Path(sys.argv[1]).rglob("*.json"):
    p.write_text(json.dumps(scrub(json.loads(p.read_text())), indent=1) + "\n")
PY
rm -rf "$work/track-cache" "$work"/*/stderr.txt
rm -rf "$dest" && mkdir -p "$(dirname "$dest")" && cp -r "$work" "$dest"
echo "snapshot in $dest ($(find "$dest" -type f | wc -l) files)"
