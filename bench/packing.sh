#!/usr/bin/env bash
# Packing short documents (issue 16; docs/benchmarks.md, "Packing short documents"):
# `hesnr score` and `hesnr profile` on the profile corpus (bench/corpus/profile-1x.jsonl, ~134
# tokens a document) with packing (`--pack PACK`, default 16 documents a decode batch) and
# without (`--pack 1`), and the upper bound of packing: the same texts joined four at a time into
# one document (~536 tokens, one sequence: what a pack of four feeds the model, without keeping
# the documents apart), scored without packing. Alternated REPS times in one run, so that ratios
# come from neighbouring runs on a shared machine. Per run: context tokens/s by hesnr's own clock
# (score: the run's; profile: its scoring time), wall and CPU seconds and peak RSS by
# /usr/bin/time; the load average before and after.
#   bash bench/packing.sh              (THREADS=2 REPS=3 PACK=16 EXTRA="")
# EXTRA: more flags for every run (e.g. "--pack-tokens 1024" or "--precision bf16").
# HESNR_BIN: e.g. a copy of the binary, so that a rebuild during the run cannot swap it. Builds
# nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}; REPS=${REPS:-3}; PACK=${PACK:-16}; EXTRA=${EXTRA:-}
H=${HESNR_BIN:-./target/release/hesnr}
python3 bench/make_profile_corpus.py --base-docs 100 --scales 1 > /dev/null
C=bench/corpus/profile-1x.jsonl
J=bench/corpus/profile-1x-joined4.jsonl
python3 - "$C" "$J" <<'PY'
import json, sys
docs = [json.loads(l) for l in open(sys.argv[1])]
with open(sys.argv[2], "w") as out:
    for i in range(0, len(docs), 4):
        text = "\n\n".join(d["text"] for d in docs[i:i + 4])
        out.write(json.dumps({"id": f"j{i}", "text": text}) + "\n")
PY
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
echo "binary: $H ($(stat -c %y "$H" | cut -d. -f1)); threads $THREADS; extra flags: ${EXTRA:-none}"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
report() {  # report WHAT SUMMARY_JSON: one line, with the times of $tmp/time
  python3 - "$1" "$2" "$tmp/time" <<'PY'
import json, sys
what, js, tf = sys.argv[1:4]
s = json.load(open(js))
user, system, wall, rss = open(tf).read().split()[-4:]
cpu = float(user) + float(system)
print(f"{what:34s} {s['tokens_per_second']:6.0f} tok/s  {s['tokens']} tokens  wall {float(wall):6.1f} s"
      f"  CPU {cpu:6.1f} s  peak RSS {int(rss) / 1024:5.0f} MB")
PY
}
timed() { /usr/bin/time -f "%U %S %e %M" -o "$tmp/time" "$@"; }
for r in $(seq 1 "$REPS"); do
  for p in "$PACK" 1; do
    # shellcheck disable=SC2086
    timed "$H" score "$C" -t "$THREADS" --log error --json -o /dev/null --pack "$p" $EXTRA \
      > "$tmp/score.json"
    report "score --pack $p (rep $r)" "$tmp/score.json"
    rm -rf "$tmp/prof"
    # shellcheck disable=SC2086
    timed "$H" profile "$C" --out "$tmp/prof" -t "$THREADS" --log error --pack "$p" $EXTRA \
      > /dev/null 2>&1
    report "profile --pack $p (rep $r)" "$tmp/prof/profile-00000-of-00001.stats.json"
  done
  # shellcheck disable=SC2086
  timed "$H" score "$J" -t "$THREADS" --log error --json -o /dev/null --pack 1 $EXTRA \
    > "$tmp/score.json"
  report "score, joined 4 a document (rep $r)" "$tmp/score.json"
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
