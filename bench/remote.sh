#!/usr/bin/env bash
# Remote scoring throughput vs the embedded engine on the same machine (docs/benchmarks.md,
# "Remote servers"): the same documents scored embedded, and through `hesnr serve` (the embedded
# engine behind vLLM's prompt-logprobs API) at several concurrencies and both request forms.
#   bash bench/remote.sh            (after scripts/setup.sh; THREADS=2, DOCS=120 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
DOCS=${DOCS:-120}
H=${HESNR_BIN:-./target/release/hesnr}
OUT=bench/results/remote-$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
head -n "$DOCS" examples/corpus/code.jsonl > "$OUT/docs.jsonl"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
$H serve -t "$THREADS" --port "$PORT" > "$OUT/serve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q listening "$OUT/serve.log" && break; sleep 0.2; done
URL=http://127.0.0.1:$PORT

# Embedded and remote runs interleave, so that a burst of load elsewhere hits both kinds.
embedded() {
  echo "== embedded (run $1)"
  /usr/bin/time -v $H score "$OUT/docs.jsonl" -t "$THREADS" -o /dev/null --json > "$OUT/embedded-$1.json" 2> "$OUT/time-embedded-$1.txt"
}
remote() {
  echo "== remote $1, concurrency $2"
  /usr/bin/time -v $H score "$OUT/docs.jsonl" --remote "$URL" --remote-protocol "$1" --concurrency "$2" \
    -o /dev/null --json > "$OUT/remote-$1-$2.json" 2> "$OUT/time-remote-$1-$2.txt"
}
uptime > "$OUT/load.txt"
embedded 1
remote prompt-logprobs 1
remote prompt-logprobs 4
embedded 2
remote echo 4
remote prompt-logprobs 2
uptime >> "$OUT/load.txt"

python3 - "$OUT" <<'PY'
import json, pathlib, re, sys
out = pathlib.Path(sys.argv[1])
def rss(name):
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", (out / name).read_text())
    return int(m.group(1)) / 1024 if m else float("nan")
runs = [json.loads(f.read_text()) for f in sorted(out.glob("embedded-*.json"))]
best = max(range(len(runs)), key=lambda i: runs[i]["tokens_per_second"])
emb = runs[best]
print("embedded runs (tok/s):", ", ".join(f"{r['tokens_per_second']:.0f}" for r in runs), "- the best is the reference")
print(f"| run | tok/s | vs embedded | PPL | HE-SNR | client peak RSS (MB) |")
print(f"|---|---|---|---|---|---|")
print(f"| embedded | {emb['tokens_per_second']:.0f} | 1.00 | {emb['ppl']:.6f} | {emb['he_snr']:.6f} | {rss(f'time-embedded-{best + 1}.txt'):.0f} |")
for f in sorted(out.glob("remote-*.json")):
    r = json.loads(f.read_text())
    tag = f.stem.removeprefix("remote-")
    print(f"| remote {tag} | {r['tokens_per_second']:.0f} | {r['tokens_per_second']/emb['tokens_per_second']:.2f} | "
          f"{r['ppl']:.6f} | {r['he_snr']:.6f} | {rss('time-' + f.stem + '.txt'):.0f} |")
print("load:", (out / "load.txt").read_text().strip().replace("\n", " / "))
PY
