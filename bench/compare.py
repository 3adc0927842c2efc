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

# The fraction of the machine's matrix-multiply peak (bench/gemm_peak.py) each hesnr configuration
# reaches: model FLOPs per token (from the GGUF's dimensions) times tokens/second, over the peak
# of the same precision.
gemm = out / "gemm.json"
if gemm.exists():
    g = json.loads(gemm.read_text())
    print(f"-- GEMM peak, {g['threads']} threads (torch {g['torch']}): "
          + ", ".join(f"{p} {v['square_2048_gflops']:.0f} GFLOP/s (model-shaped {v['ffn_512x576x1536_gflops']:.0f})" for p, v in g["peak"].items()))
    for n in ("512", "2048"):
        per_token = g["model"]["gflop_per_token"][n]
        for name, precision in (("hesnr", "f32"), ("hesnr-bf16", "bf16")):
            f = out / f"{name}-{n}.txt"
            if not f.exists():
                continue
            fwd, full = (float(x) for x in re.findall(r"([\d.]+) tok/s", f.read_text().splitlines()[-1])[:2])
            achieved = fwd * per_token
            peak = g["peak"][precision]["square_2048_gflops"]
            print(f"   {n}-token documents, {precision}: forward {fwd:.0f} tok/s x {per_token:.3f} GFLOP/token = "
                  f"{achieved:.0f} GFLOP/s = {achieved / peak:.0%} of the {precision} peak")
