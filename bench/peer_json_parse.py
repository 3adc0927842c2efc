# Peer of `hesnr eval --check` in docs/benchmarks.md: parse every trajectory file under a folder
# with Python's json module (JSON, or JSON Lines line by line), nothing else: the floor of any
# Python tool reading the same files.
import json, os, sys
root = sys.argv[1]
n = 0
for d, _, fs in os.walk(root):
    for f in sorted(fs):
        if f == "SOURCES.md": continue
        p = os.path.join(d, f)
        text = open(p, encoding="utf-8").read()
        try:
            json.loads(text); n += 1
        except json.JSONDecodeError:
            for line in text.splitlines():
                if line.strip(): json.loads(line); n += 1
print(n)
