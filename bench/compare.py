#!/usr/bin/env python3
"""Summarises a bench/run.sh result folder: throughput ratios and per-document NLL agreement."""
import json, pathlib, re, sys

out = pathlib.Path(sys.argv[1])
for n in ("512", "2048"):
    peers = {p: json.loads((out / f"{p}-{n}.json").read_text()) for p in ("llamacpp", "transformers")}
    line = (out / f"hesnr-{n}.txt").read_text().splitlines()[-1]
    fwd, full = (float(x) for x in re.findall(r"([\d.]+) tok/s", line)[:2])
    print(f"-- {n}-token documents: hesnr forward {fwd:.0f} tok/s, with metrics {full:.0f} tok/s")
    for name, p in peers.items():
        print(f"   vs {name}: {p['forward_metrics_tok_s']:.0f} tok/s with metrics -> hesnr is {full / p['forward_metrics_tok_s']:.2f}x; peak RSS {p['peak_rss_gb']:.2f} GB")
    rows = [json.loads(l) for l in (out / f"hesnr-rows-{n}.jsonl").read_text().splitlines()]
    ref = peers["transformers"]["mean_nll_per_doc"]
    diffs = [abs(r["mean_nll"] - t) for r, t in zip(rows, ref)]
    ppl_rel = [abs(pow(2.718281828459045, r["mean_nll"] - t) - 1) for r, t in zip(rows, ref)]
    print(f"   mean NLL hesnr vs transformers: max |diff| {max(diffs):.5f} nats, max PPL ratio deviation {100 * max(ppl_rel):.3f}%")
    lc = peers["llamacpp"]["mean_nll_per_doc"]
    print(f"   mean NLL llama.cpp (Q4_1 as shipped) vs transformers: max |diff| {max(abs(a - b) for a, b in zip(lc, ref)):.5f} nats")
