#!/usr/bin/env bash
# Packing short documents (issue 16; docs/benchmarks.md, "Packing short documents"):
# `hesnr score` and `hesnr profile` on the profile corpus (bench/corpus/profile-1x.jsonl, ~134
# tokens a document) with packing (PACK, default 16 documents a decode batch) and without
# (`--pack 1`), alternated REPS times in one run, so that ratios come from neighbouring runs on
# a shared machine. Context tokens/s by hesnr's own clock (score: the run's wall time; profile:
# its scoring time), wall seconds and peak RSS by /usr/bin/time; the load average before and
# after. Also the upper bound of bench/packing_probe.sh (four texts joined into one document).
#   bash bench/packing.sh              (THREADS=2 REPS=3 PACK=16 EXTRA="")
# EXTRA: more flags for every run (e.g. "--pack-tokens 1024"). Builds nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}; REPS=${REPS:-3}; PACK=${PACK:-16}; EXTRA=${EXTRA:-}
H=${HESNR_BIN:-./target/release/hesnr}
python3 bench/make_profile_corpus.py --base-docs 100 --scales 1 > /dev/null
C=bench/corpus/profile-1x.jsonl
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
echo "binary: $H ($(stat -c %y "$H" | cut -d. -f1)); corpus: $C; threads $THREADS; extra: ${EXTRA:-none}"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
report() {  # report WHAT JSON TIMEFILE: one line
  python3 - "$@" <<'PY'
import json, sys
what, js, tf = sys.argv[1:4]
s = json.load(open(js))
wall, rss = open(tf).read().split()[-2:]
print(f"{what:28s} {s['tokens_per_second']:7.0f} tok/s  {s['tokens']} tokens  {s.get('documents', '?')} docs"
      f"  wall {float(wall):6.1f} s  peak RSS {int(rss) / 1024:6.0f} MB")
PY
}
for r in $(seq 1 "$REPS"); do
  for p in "$PACK" 1; do
    # shellcheck disable=SC2086
    /usr/bin/time -f "%e %M" -o "$tmp/time" "$H" score "$C" -t "$THREADS" --log error --json \
      -o /dev/null --pack "$p" $EXTRA > "$tmp/score.json"
    report "score --pack $p (rep $r)" "$tmp/score.json" "$tmp/time"
    rm -rf "$tmp/prof"
    # shellcheck disable=SC2086
    /usr/bin/time -f "%e %M" -o "$tmp/time" "$H" profile "$C" --out "$tmp/prof" -t "$THREADS" \
      --log error --pack "$p" $EXTRA > /dev/null
    report "profile --pack $p (rep $r)" "$tmp/prof/profile-00000-of-00001.stats.json" "$tmp/time"
  done
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
