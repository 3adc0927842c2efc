#!/usr/bin/env bash
# The two window policies side by side (docs/benchmarks.md "Long trajectories: window policies",
# docs/method.md "Texts longer than the window"):
#   bash bench/window_policy.sh            (THREADS=2 REPS=3 WINDOWS="1024 2048 default" by default)
# 1. metrics: `hesnr eval -T examples/trajectories --preset full` at each of WINDOWS (default:
#    1024, 2048 and the model's own window) under
#    strided (stride = window/2), shift with 4 sink tokens and shift without sinks: HE-SNR, PPL, |H|
# 2. speed and memory: the ~30K-token trajectory of bench/make_long_trajectory.py at the default
#    window (the model's 8192), strided and shift alternated REPS times under /usr/bin/time -v;
#    the ratio is the median of the per-repetition ratios (adjacent runs, same load)
# Results in bench/results/window-<time>/. Builds nothing; HESNR_BIN may point at a copy of the binary.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
REPS=${REPS:-3}
WINDOWS=${WINDOWS-"1024 2048 default"}   # WINDOWS="" skips the metrics step; "default" = the model's own window
SPEED=${SPEED:-1}
H=${HESNR_BIN:-./target/release/hesnr}
OUT=bench/results/window-$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
echo "load at start: $(uptime)" | tee "$OUT/load.txt"
for w in $WINDOWS; do
  for p in strided shift shift0; do
    case $p in
      strided) flags="--window-policy strided" ;;
      shift) flags="--window-policy shift --sink-tokens 4" ;;
      shift0) flags="--window-policy shift --sink-tokens 0" ;;
    esac
    wflag="--window $w"; [ "$w" = default ] && wflag=""
    $H eval -T examples/trajectories --preset full $wflag -t "$THREADS" $flags --log error \
      -o /dev/null --summary "$OUT/metrics-$w-$p.json"
  done
done
if [ "$SPEED" = 1 ]; then
  python3 bench/make_long_trajectory.py
  for r in $(seq 1 "$REPS"); do
    for p in strided shift; do
      /usr/bin/time -v $H eval -T bench/corpus/long-trajectory.jsonl -t "$THREADS" --window-policy $p --log error \
        -o /dev/null --summary "$OUT/long-$p-$r.json" 2> "$OUT/time-long-$p-$r.txt"
    done
    echo "after rep $r: $(uptime)" | tee -a "$OUT/load.txt"
  done
fi
python3 - "$OUT" "$WINDOWS" "$REPS" "$SPEED" <<'PY'
import json, pathlib, re, statistics, sys
out, windows, reps, speed = pathlib.Path(sys.argv[1]), sys.argv[2].split(), int(sys.argv[3]), sys.argv[4] == "1"
j = lambda n: json.loads((out / n).read_text())
def metric(s, *names):
    for n in names:
        if n in s: return s[n]
        for v in s.values():
            if isinstance(v, dict) and n in v: return v[n]
    return float("nan")
print("| window | policy | scored tokens | HE-SNR | PPL | \\|H\\| | HE-SNR vs strided | PPL vs strided |")
print("|---|---|---|---|---|---|---|---|")
for w in windows:
    rows = {}
    for p in ["strided", "shift", "shift0"]:
        s = j(f"metrics-{w}-{p}.json")
        pre = s["presets"][0] if "presets" in s else s
        rows[p] = (metric(pre, "scored_tokens", "tokens"), metric(pre, "he_snr"), metric(pre, "ppl"), metric(pre, "decision_tokens", "h_count"))
    stride = "window/2" if w == "default" else int(w) // 2
    for p, label in [("strided", f"strided, stride {stride}"), ("shift", "shift, 4 sinks"), ("shift0", "shift, no sinks")]:
        n, he, ppl, h = rows[p]
        print(f"| {w} | {label} | {n} | {he:.5f} | {ppl:.4f} | {h} | {100*(he/rows['strided'][1]-1):+.2f}% | {100*(ppl/rows['strided'][2]-1):+.2f}% |")
if speed:
    rss = lambda n: int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", (out / n).read_text()).group(1)) / 1024**2
    print("\n| rep | strided ctx tok/s | shift ctx tok/s | ratio | strided RSS GB | shift RSS GB |")
    print("|---|---|---|---|---|---|")
    ratios = []
    for r in range(1, reps + 1):
        a, b = j(f"long-strided-{r}.json"), j(f"long-shift-{r}.json")
        ta, tb = a["context_tokens_per_second"], b["context_tokens_per_second"]
        ratios.append(tb / ta)
        print(f"| {r} | {ta:.0f} | {tb:.0f} | {tb/ta:.2f} | {rss(f'time-long-strided-{r}.txt'):.3f} | {rss(f'time-long-shift-{r}.txt'):.3f} |")
    print(f"\ncontext tokens: {a['context_tokens']}; median ratio shift/strided: {statistics.median(ratios):.2f}")
PY
