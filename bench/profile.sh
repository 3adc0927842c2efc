#!/usr/bin/env bash
# Corpus profiling throughput, overhead and scaling (docs/benchmarks.md, "Corpus profiling"):
#   bash bench/profile.sh        (after scripts/setup.sh; THREADS=2 BASE_DOCS=100 REPS=2 by default)
# 1. corpus: bench/corpus/profile-{1,4,16}x.jsonl (bench/make_profile_corpus.py)
# 2. overhead on 1x: `hesnr score` (forward + metrics at every position, the bare document path) and
#    `hesnr profile`, alternated REPS times; the llama.cpp peer's bare forward on the same F32
#    weights hesnr computes with (PEER=0 skips it; PEER_SHIPPED=1 adds the shipped Q4_1 weights)
# 3. scaling: `hesnr profile` on 1x, 4x, 16x under /usr/bin/time -v (wall time, peak RSS)
# Results and a markdown summary in bench/results/profile-<time>/ (SUMMARY_ONLY=DIR re-prints one).
# Builds nothing of hesnr itself.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
BASE_DOCS=${BASE_DOCS:-100}
REPS=${REPS:-2}
PEER=${PEER:-1}
PEER_SHIPPED=${PEER_SHIPPED:-0}
# HESNR_BIN: e.g. a copy of the binary, so that a rebuild during the run cannot swap it midway
H=${HESNR_BIN:-./target/release/hesnr}
summary() {  # summary DIR REPS: the markdown tables of a results folder
python3 - "$1" "$2" <<'PY'
import json, pathlib, re, sys
out, reps = pathlib.Path(sys.argv[1]), int(sys.argv[2])
j = lambda p: json.loads((out / p).read_text())
def tv(name):
    t = (out / name).read_text()
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", t).group(1)
    sec = sum(float(x) * 60 ** i for i, x in enumerate(reversed(wall.split(":"))))
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1)) / 1024**2
    return sec, rss
stats = lambda d: j(f"{d}/profile-00000-of-00001.stats.json")

print("### Throughput and overhead (1x corpus)\n")
print("| run | tokens | tok/s (tool's own clock) | wall s | peak RSS GB |")
print("|---|---|---|---|---|")
sc, pr = [], []
for r in range(1, reps + 1):
    s, p = j(f"score-{r}.json"), stats(f"prof-overhead-{r}")
    (ws, rs), (wp, rp) = tv(f"time-score-{r}.txt"), tv(f"time-profile-{r}.txt")
    sc.append(s["tokens_per_second"]); pr.append(p["tokens_per_second"])
    print(f"| hesnr score, rep {r} | {s['tokens']} | {s['tokens_per_second']:.0f} | {ws:.1f} | {rs:.2f} |")
    print(f"| hesnr profile, rep {r} | {p['tokens']} | {p['tokens_per_second']:.0f} | {wp:.1f} | {rp:.2f} |")
for name, label in [("peer-f32.json", "llama.cpp default build, F32 weights"), ("peer-shipped.json", "llama.cpp default build, shipped weights")]:
    if (out / name).exists():
        q = j(name)
        print(f"| {label}: bare forward | {q['tokens']} | {q['forward_tok_s']:.0f} | | {q['peak_rss_gb']:.2f} |")
        print(f"| {label}: forward + per-row pass | {q['tokens']} | {q['forward_metrics_tok_s']:.0f} | | |")
# best of the reps: on a shared machine the least disturbed run is the closest to the true speed
ms, mp = max(sc), max(pr)
print(f"\nprofile / score throughput: {mp / ms:.3f} (best of {reps} each; per rep: "
      + ", ".join(f"{p / s:.3f}" for s, p in zip(sc, pr)) + ")")
if (out / "peer-f32.json").exists():
    q = j("peer-f32.json")
    print(f"profile / llama.cpp bare forward (F32): {mp / q['forward_tok_s']:.3f}; score / bare forward: {ms / q['forward_tok_s']:.3f}")

print("\n### Scaling (hesnr profile)\n")
print("| corpus | documents | tokens | wall s | scoring s | tok/s | wall ratio | scoring-time ratio | token ratio | peak RSS GB |")
print("|---|---|---|---|---|---|---|---|---|---|")
base = None
for s in (1, 4, 16):
    st = stats(f"prof-{s}x")
    w, rss = tv(f"time-prof-{s}x.txt")
    if base is None:
        base = (w, st["scoring_seconds"], st["tokens"])
    print(f"| {s}x | {st['documents']} | {st['tokens']} | {w:.1f} | {st['scoring_seconds']:.1f} | {st['tokens_per_second']:.0f} | "
          f"{w / base[0]:.2f} | {st['scoring_seconds'] / base[1]:.2f} | {st['tokens'] / base[2]:.0f} | {rss:.3f} |")
print("\n### Load\n")
print("```\n" + "\n".join(l for l in (out / "load.txt").read_text().splitlines() if l.split()[0] in ("start", "after", "end")) + "\n```")
PY
}
if [ -n "${SUMMARY_ONLY:-}" ]; then summary "$SUMMARY_ONLY" "$REPS"; exit; fi  # re-print a finished run
[ -x "$H" ] || { echo "missing $H: build it first (scripts/setup.sh)" >&2; exit 1; }
INFO=$($H info -t "$THREADS" 2>/dev/null)
MODEL=${HESNR_MODEL:-$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["path"])' "$INFO")}
SHA=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["sha256"][:16])' "$INFO")
# hesnr's F32 expansion of the model (cached next to the models folder by any earlier run)
F32=$(dirname "$(dirname "$MODEL")")/converted/$SHA-f32.gguf
OUT=bench/results/profile-$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
echo "$INFO" > "$OUT/info.json"
load() { echo "$1 $(date +%T) $(uptime | sed 's/.*load average/load average/')"; ps -eo pid,pcpu,etime,args --sort=-pcpu | head -6 | cut -c1-160; }
load start | tee "$OUT/load.txt"

echo "== corpus"
python3 bench/make_profile_corpus.py --base-docs "$BASE_DOCS" --scales 1,4,16 | tee "$OUT/corpus.txt"
C=bench/corpus

echo "== overhead on 1x: hesnr score vs hesnr profile, alternated, $REPS reps"
for r in $(seq 1 "$REPS"); do
  /usr/bin/time -v $H score $C/profile-1x.jsonl -t "$THREADS" -o "$OUT/score-rows-$r.jsonl" --json > "$OUT/score-$r.json" 2> "$OUT/time-score-$r.txt"
  /usr/bin/time -v $H profile $C/profile-1x.jsonl -t "$THREADS" --out "$OUT/prof-overhead-$r" 2> "$OUT/time-profile-$r.txt"
  load "after rep $r" >> "$OUT/load.txt"
done

if [ "$PEER" = 1 ]; then
  P=bench/peer-llamacpp/target/release/peer-llamacpp
  [ -x "$P" ] || cargo build --release --quiet --manifest-path bench/peer-llamacpp/Cargo.toml
  if [ -f "$F32" ]; then
    echo "== peer: llama.cpp default build, bare forward on hesnr's F32 weights, 1x"
    $P "$F32" $C/profile-1x.jsonl --threads "$THREADS" --reps 1 | tee "$OUT/peer-f32.json"
  else
    echo "(no F32 expansion at $F32: peer on F32 skipped)"
  fi
  if [ "$PEER_SHIPPED" = 1 ]; then
    echo "== peer: llama.cpp default build, shipped weights, 1x"
    $P "$MODEL" $C/profile-1x.jsonl --threads "$THREADS" --reps 1 | tee "$OUT/peer-shipped.json"
  fi
  load "after peer" >> "$OUT/load.txt"
fi

echo "== scaling: hesnr profile on 1x, 4x, 16x"
for s in 1 4 16; do
  /usr/bin/time -v $H profile $C/profile-${s}x.jsonl -t "$THREADS" --out "$OUT/prof-${s}x" 2> "$OUT/time-prof-${s}x.txt"
  load "after ${s}x" >> "$OUT/load.txt"
done
load end | tee -a "$OUT/load.txt"

summary "$OUT" "$REPS" | tee "$OUT/summary.md"
