#!/usr/bin/env bash
# The attention tolerance of packing (docs/method.md, "Short documents packed"): per-position
# NLL and entropy of the first DOCS documents of the profile corpus scored packed (--pack 16) and
# alone (--pack 1), with flash attention (default) and plain attention (--exact-attention), and,
# for scale, flash attention alone at --ubatch 64 against 512.
#   bash bench/packing_tolerance.sh        (DOCS=24 THREADS=2)
set -euo pipefail
cd "$(dirname "$0")/.."
DOCS=${DOCS:-24}; THREADS=${THREADS:-2}; H=${HESNR_BIN:-./target/release/hesnr}
python3 bench/make_profile_corpus.py --base-docs 100 --scales 1 > /dev/null
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
run() {  # run NAME FLAGS...: the per-token trace in $tmp/NAME.jsonl
  local name=$1; shift
  "$H" score bench/corpus/profile-1x.jsonl --limit "$DOCS" -t "$THREADS" --log error -o /dev/null \
    --tokens "$tmp/$name.jsonl" "$@" 2> /dev/null
}
run flash-packed --pack 16; run flash-alone --pack 1
run plain-packed --pack 16 --exact-attention; run plain-alone --pack 1 --exact-attention
run flash-ubatch64 --pack 1 --ubatch 64
python3 - "$tmp" <<'PY'
import json, statistics, sys
d = sys.argv[1]
load = lambda n: [json.loads(l) for l in open(f"{d}/{n}.jsonl")]
print("| compared | positions | bit-identical | max |dNLL| | p99 |dNLL| | max rel. d entropy | rel. d mean NLL |")
print("|---|---|---|---|---|---|---|")
for a, b in [("plain-packed", "plain-alone"), ("flash-packed", "flash-alone"),
             ("flash-ubatch64", "flash-alone"), ("flash-alone", "plain-alone")]:
    x, y = load(a), load(b)
    assert [(p["doc"], p["pos"]) for p in x] == [(p["doc"], p["pos"]) for p in y]
    dn = sorted(abs(p["nll"] - q["nll"]) for p, q in zip(x, y))
    de = max(abs(p["entropy"] - q["entropy"]) / max(abs(q["entropy"]), 1e-300) for p, q in zip(x, y))
    same = sum(p["nll"] == q["nll"] and p["entropy"] == q["entropy"] for p, q in zip(x, y))
    mx, my = statistics.mean(p["nll"] for p in x), statistics.mean(q["nll"] for q in y)
    print(f"| {a} vs {b} | {len(x)} | {same} | {dn[-1]:.1e} | {dn[int(0.99 * len(dn))]:.1e} | {de:.1e} | {abs(mx / my - 1):.0e} |")
PY
