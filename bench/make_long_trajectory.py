"""Writes bench/corpus/long-trajectory.jsonl: one chat trajectory of about 30K tokens (default
model), made by chaining the steps of the example chat trajectories, for the memory bound of
`hesnr eval` on trajectories far longer than the model's 8192-token context.

    python3 bench/make_long_trajectory.py [--repeat 3]
"""
import argparse
import json
import pathlib

root = pathlib.Path(__file__).resolve().parent.parent
ap = argparse.ArgumentParser()
ap.add_argument("--repeat", type=int, default=3)
args = ap.parse_args()

records = [json.loads(l) for l in (root / "examples/trajectories/chat.jsonl").open()]
native = [r for r in records if any(m.get("tool_calls") for m in r["messages"])]
messages = native[0]["messages"][:2]  # system prompt and the first issue
for i in range(args.repeat):
    for r in native:
        messages.extend(r["messages"][2:])
out = root / "bench/corpus/long-trajectory.jsonl"
out.parent.mkdir(parents=True, exist_ok=True)
out.write_text(json.dumps({"id": f"long-x{args.repeat}", "messages": messages}) + "\n")
print(out, len(messages), "messages")
