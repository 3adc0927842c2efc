#!/usr/bin/env python3
"""The Python package's overhead over the CLI (docs/benchmarks.md, "Python package").

Runs, alternately and `--reps` times each: the CLI (`hesnr score CORPUS -o rows --summary s`),
`hesnr.score(CORPUS)` (the same run plus reading its rows into an Arrow table), and
`hesnr.score(records)` (the corpus as a list of dicts, streamed to the CLI's stdin), and prints
the median wall and CPU times (the process's own and its children's, user + system: the work
done, which other jobs on a shared machine disturb far less than the wall clock) and their
ratios to the CLI's. Also times `hesnr info` (process start and
model load: what an in-process extension module would save per call). Run with the package's
interpreter: `.venv/bin/python bench/python_overhead.py bench/corpus/code-512.jsonl`.
"""

import argparse
import json
import resource
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import hesnr
from hesnr import _runner

parser = argparse.ArgumentParser()
parser.add_argument("corpus", type=Path)
parser.add_argument("--reps", type=int, default=3)
parser.add_argument("--model", default=None)
args = parser.parse_args()
model = ["--model", args.model] if args.model else []
records = [json.loads(line) for line in args.corpus.read_text().splitlines() if line.strip()]
cli = [str(hesnr.binary())]
env = _runner.environment()
env.pop("HESNR_PROGRESS")


def cpu():
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(f):
    t, c = time.perf_counter(), cpu()
    f()
    return time.perf_counter() - t, cpu() - c


def run_cli():
    with tempfile.TemporaryDirectory() as d:
        subprocess.run(
            cli + ["score", str(args.corpus), "-o", f"{d}/rows.jsonl", "--summary", f"{d}/s.json", *model],
            check=True, env=env, stderr=subprocess.DEVNULL,
        )


def run_info():
    subprocess.run(cli + ["info", *model], check=True, env=env, stdout=subprocess.DEVNULL)


cases = {
    "cli": run_cli,
    "python_path": lambda: hesnr.score(args.corpus, model=args.model, progress=False),
    "python_records": lambda: hesnr.score(records, model=args.model, progress=False),
    "info (start + model load)": run_info,
}
times = {k: [] for k in cases}
for _ in range(args.reps):
    for name, f in cases.items():
        times[name].append(timed(f))
for i, what in ((0, "wall"), (1, "cpu")):
    base = statistics.median(t[i] for t in times["cli"])
    for name, ts in times.items():
        m = statistics.median(t[i] for t in ts)
        runs = " ".join(f"{t[i]:.2f}" for t in ts)
        print(f"{what} {name:<27} median {m:7.2f} s  ratio to CLI {m / base:6.3f}  runs {runs}")
