#!/usr/bin/env bash
# Flash attention (the default) against plain attention (`--exact-attention`) on this CPU, side
# by side (docs/benchmarks.md "Flash or plain attention"):
#   bash bench/attention.sh            (THREADS=2 REPS=2 by default; LONG=0 skips the trajectory)
# 1. `hesnr score` on the benchmark corpus (documents of ~512 and ~2048 tokens);
# 2. `hesnr eval` on the ~30K-token trajectory of bench/make_long_trajectory.py at the default
#    window (shift policy, the default), where attention over ~8K cached tokens dominates.
# The two settings alternate in each repetition (adjacent runs meet the same load); the ratio is
# the median of the per-repetition ratios. Peak RSS from /usr/bin/time -v. Builds nothing;
# HESNR_BIN may point at a copy of the binary. Results in bench/results/attention-<time>/.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
REPS=${REPS:-2}
LONG=${LONG:-1}
H=${HESNR_BIN:-./target/release/hesnr}
OUT=bench/results/attention-$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
echo "load at start: $(uptime)" | tee "$OUT/load.txt"
[ "$LONG" = 1 ] && python3 bench/make_long_trajectory.py
for r in $(seq 1 "$REPS"); do
  for a in flash plain; do
    flag=""
    [ "$a" = plain ] && flag="--exact-attention"
    for c in code-512 code-2048; do
      /usr/bin/time -v $H score "bench/corpus/$c.jsonl" -t "$THREADS" $flag --log error \
        -o /dev/null --summary "$OUT/$c-$a-$r.json" 2> "$OUT/time-$c-$a-$r.txt"
    done
    if [ "$LONG" = 1 ]; then
      /usr/bin/time -v $H eval -T bench/corpus/long-trajectory.jsonl -t "$THREADS" --window-policy shift $flag --log error \
        -o /dev/null --summary "$OUT/long-$a-$r.json" 2> "$OUT/time-long-$a-$r.txt"
    fi
  done
  echo "after rep $r: $(uptime)" | tee -a "$OUT/load.txt"
done
python3 - "$OUT" "$REPS" "$LONG" <<'PY'
import json, pathlib, re, statistics, sys
out, reps, long = pathlib.Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
def speed(name):
    s = json.loads((out / f"{name}.json").read_text())
    return s.get("context_tokens_per_second") or s["tokens_per_second"]
def ppl(name):
    s = json.loads((out / f"{name}.json").read_text())
    return (s["presets"][0] if "presets" in s else s)["ppl"]
def rss(name):
    t = (out / f"time-{name}.txt").read_text()
    return int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1)) / 1024**2
print("| input | flash tok/s | plain tok/s | plain / flash (median) | flash RSS GB | plain RSS GB | PPL flash | PPL plain |")
print("|---|---|---|---|---|---|---|---|")
for c in ["code-512", "code-2048"] + (["long"] if long else []):
    f = [speed(f"{c}-flash-{r}") for r in range(1, reps + 1)]
    p = [speed(f"{c}-plain-{r}") for r in range(1, reps + 1)]
    ratio = statistics.median(b / a for a, b in zip(f, p))
    print(f"| {c} | {' / '.join(f'{x:.0f}' for x in f)} | {' / '.join(f'{x:.0f}' for x in p)} | "
          f"{ratio:.2f} | {max(rss(f'{c}-flash-{r}') for r in range(1, reps + 1)):.3f} | "
          f"{max(rss(f'{c}-plain-{r}') for r in range(1, reps + 1)):.3f} | "
          f"{ppl(f'{c}-flash-1'):.4f} | {ppl(f'{c}-plain-1'):.4f} |")
PY
