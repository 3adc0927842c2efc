#!/usr/bin/env bash
# Upper bound of packing short documents (issue 16): the profile corpus (~134 tokens a document)
# scored one document at a time, against the same texts joined four at a time (~536 tokens, one
# decode call each, which is what packing four documents per decode call would feed the model,
# without the cost of keeping them apart). Alternated REPS times; tokens/s by hesnr's own clock.
#   bash bench/packing_probe.sh          (THREADS=2 REPS=3)
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}; REPS=${REPS:-3}; H=${HESNR_BIN:-./target/release/hesnr}
python3 bench/make_profile_corpus.py --base-docs 100 --scales 1 > /dev/null
python3 - <<'PY'
import json
docs = [json.loads(l) for l in open("bench/corpus/profile-1x.jsonl")]
with open("bench/corpus/profile-1x-joined4.jsonl", "w") as out:
    for i in range(0, len(docs), 4):
        out.write(json.dumps({"id": f"j{i}", "text": "\n\n".join(d["text"] for d in docs[i:i + 4])}) + "\n")
PY
for r in $(seq 1 "$REPS"); do
  for c in profile-1x profile-1x-joined4; do
    printf "%s rep %s: " $c $r
    $H score bench/corpus/$c.jsonl -t "$THREADS" --log error --json -o /dev/null \
      | python3 -c 'import json,sys; s=json.load(sys.stdin); print("%.0f tok/s, %d docs, %d tokens" % (s["tokens_per_second"], s["documents"], s["tokens"]))'
  done
done
