#!/usr/bin/env bash
# Remote scoring throughput vs the embedded engine on the same machine (docs/benchmarks.md,
# "Remote servers"): the same documents scored embedded, and through `hesnr serve` (the embedded
# engine behind vLLM's prompt-logprobs API) at several concurrencies and both request forms.
#   bash bench/remote.sh            (after scripts/setup.sh; THREADS=2, DOCS=120 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
DOCS=${DOCS:-120}
H=./target/release/hesnr
OUT=bench/results/remote-$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
head -n "$DOCS" examples/corpus/code.jsonl > "$OUT/docs.jsonl"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
$H serve -t "$THREADS" --port "$PORT" > "$OUT/serve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q listening "$OUT/serve.log" && break; sleep 0.2; done
URL=http://127.0.0.1:$PORT

echo "== embedded"
/usr/bin/time -v $H score "$OUT/docs.jsonl" -t "$THREADS" -o /dev/null --json > "$OUT/embedded.json" 2> "$OUT/time-embedded.txt"
for form in "prompt-logprobs 1" "prompt-logprobs 2" "prompt-logprobs 4" "echo 4"; do
  set -- $form
  echo "== remote $1, concurrency $2"
  /usr/bin/time -v $H score "$OUT/docs.jsonl" --remote "$URL" --remote-protocol "$1" --concurrency "$2" \
    -o /dev/null --json > "$OUT/remote-$1-$2.json" 2> "$OUT/time-remote-$1-$2.txt"
done

python3 - "$OUT" <<'PY'
import json, pathlib, re, sys
out = pathlib.Path(sys.argv[1])
def rss(name):
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", (out / name).read_text())
    return int(m.group(1)) / 1024 if m else float("nan")
emb = json.loads((out / "embedded.json").read_text())
print(f"| run | tok/s | vs embedded | PPL | HE-SNR | client peak RSS (MB) |")
print(f"|---|---|---|---|---|---|")
print(f"| embedded | {emb['tokens_per_second']:.0f} | 1.00 | {emb['ppl']:.6f} | {emb['he_snr']:.6f} | {rss('time-embedded.txt'):.0f} |")
for f in sorted(out.glob("remote-*.json")):
    r = json.loads(f.read_text())
    tag = f.stem.removeprefix("remote-")
    print(f"| remote {tag} | {r['tokens_per_second']:.0f} | {r['tokens_per_second']/emb['tokens_per_second']:.2f} | "
          f"{r['ppl']:.6f} | {r['he_snr']:.6f} | {rss('time-' + f.stem + '.txt'):.0f} |")
PY
