#!/usr/bin/env python3
"""Builds the corpus-profiling benchmark corpus (docs/benchmarks.md, "Corpus profiling").

Base (1x): a fixed, evenly spread subset of the project's own sample corpus
(examples/corpus/code.jsonl + general.jsonl, written for this project; no download), code and
prose in the files' 240:260 proportion. 4x and 16x: the base repeated, every copy with distinct
ids (`<id>` for the first copy, `<id>~r<k>` after). Repeated text is fine for a throughput
measurement: hesnr keeps no cache across documents, so every copy is scored from scratch.

    python3 bench/make_profile_corpus.py [--base-docs 100] [--scales 1,4,16]

Writes bench/corpus/profile-<scale>x.jsonl (gitignored) and prints documents and characters.
"""
import argparse, json, pathlib

HERE = pathlib.Path(__file__).resolve().parent
SRC = HERE.parent / "examples" / "corpus"


def spread(items, n):
    """n items evenly spread over the list, in order (all of them if n >= len)."""
    if n >= len(items):
        return list(items)
    return [items[i * len(items) // n] for i in range(n)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-docs", type=int, default=100, help="documents in the 1x corpus (at most 500)")
    ap.add_argument("--scales", default="1,4,16")
    args = ap.parse_args()

    code = [json.loads(l) for l in (SRC / "code.jsonl").read_text().splitlines() if l.strip()]
    general = [json.loads(l) for l in (SRC / "general.jsonl").read_text().splitlines() if l.strip()]
    n_code = round(args.base_docs * len(code) / (len(code) + len(general)))
    base = spread(code, n_code) + spread(general, args.base_docs - n_code)

    out_dir = HERE / "corpus"
    out_dir.mkdir(exist_ok=True)
    for scale in (int(s) for s in args.scales.split(",")):
        path = out_dir / f"profile-{scale}x.jsonl"
        with open(path, "w") as f:
            for copy in range(scale):
                for doc in base:
                    d = dict(doc)
                    if copy:
                        d["id"] = f"{doc['id']}~r{copy}"
                    f.write(json.dumps(d) + "\n")
        chars = scale * sum(len(d["text"]) for d in base)
        print(f"{path.name}: {scale * len(base)} docs ({n_code * scale} code, {(len(base) - n_code) * scale} prose), {chars} chars")


if __name__ == "__main__":
    main()
