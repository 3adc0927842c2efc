#!/usr/bin/env python3
"""The machine's matrix-multiply ceiling and the model's arithmetic per token (docs/benchmarks.md).

    bench/.venv/bin/python bench/gemm_peak.py MODEL.gguf [--threads 2]

Peak: the best of several timed torch.mm calls (oneDNN/MKL, the fastest CPU GEMM at hand) on
square 2048 x 2048 matrices, F32 and BF16, at --threads threads; also the shapes the default model
multiplies (512 tokens x 576 x 1536). Model: the multiply-adds of one forward per token from the
GGUF's own dimensions: every weight matrix once (2 FLOPs per weight) plus attention
(QK^T and AV: 4 x layers x heads x head_dim FLOPs per attended position), for a document of L
tokens attending on average to (L + 1) / 2 positions. Prints one JSON object.
"""
import argparse, json, time

import numpy as np
import torch
from gguf import GGUFReader

ap = argparse.ArgumentParser()
ap.add_argument("model")
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--seconds", type=float, default=3.0, help="time spent per measurement")
args = ap.parse_args()
torch.set_num_threads(args.threads)


def gflops(m, k, n, dtype):
    a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
    torch.mm(a, b)  # warm-up
    best, spent = float("inf"), 0.0
    while spent < args.seconds:
        t0 = time.perf_counter()
        torch.mm(a, b)
        dt = time.perf_counter() - t0
        best, spent = min(best, dt), spent + dt
    return 2 * m * k * n / best / 1e9


peak = {}
for name, dtype in (("f32", torch.float32), ("bf16", torch.bfloat16)):
    peak[name] = {
        "square_2048_gflops": gflops(2048, 2048, 2048, dtype),
        "ffn_512x576x1536_gflops": gflops(512, 576, 1536, dtype),
    }

r = GGUFReader(args.model)
field = lambda key: r.fields[key].parts[r.fields[key].data[0]].tolist()[0]
arch = bytes(r.fields["general.architecture"].parts[-1]).decode()
n_embd, n_layer = field(f"{arch}.embedding_length"), field(f"{arch}.block_count")
n_head = field(f"{arch}.attention.head_count")
matrix_weights = 0
for t in r.tensors:
    shape = [int(x) for x in t.shape]
    if len(shape) == 2 and t.name.startswith("blk."):
        matrix_weights += int(np.prod(shape))
vocab = len(r.fields["tokenizer.ggml.tokens"].data)
has_output = any(t.name == "output.weight" for t in r.tensors)
output_weights = n_embd * vocab  # tied to the embedding when the file has no output.weight


def flops_per_token(doc_tokens):
    attention = 4 * n_layer * n_embd * (doc_tokens + 1) / 2
    return 2 * (matrix_weights + output_weights) + attention


print(json.dumps({
    "threads": args.threads,
    "torch": torch.__version__,
    "peak": peak,
    "model": {"architecture": arch, "layers": n_layer, "embedding": n_embd, "heads": n_head,
              "vocab": vocab, "tied_output": not has_output,
              "matrix_weights": matrix_weights, "output_weights": output_weights,
              "gflop_per_token": {str(L): flops_per_token(L) / 1e9 for L in (134, 512, 2048, 8192)}},
}, indent=1))
