#!/usr/bin/env python3
"""Peer benchmark and reference: Hugging Face transformers + torch (CPU, fp32) on the same GGUF.

transformers dequantizes the GGUF to fp32 and runs its own llama implementation: an
implementation independent of llama.cpp, used both as a speed peer and as the reference for
hesnr's perplexity. Usage:
    python bench/peer_transformers.py MODEL.gguf FILE.jsonl [--threads 2] [--reps 3]
Prints one JSON object: median tokens/second (forward only, and forward + log-softmax/top-10),
peak RSS and the per-document mean NLL of tokens 2..T (no BOS; SmolLM2 does not use one).
"""
import argparse, json, os, resource, statistics, time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

ap = argparse.ArgumentParser()
ap.add_argument("model")
ap.add_argument("file")
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--reps", type=int, default=3)
args = ap.parse_args()
torch.set_num_threads(args.threads)
d, f = os.path.split(os.path.abspath(args.model))
tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
# transformers' GGUF converter does not know SmolLM2's pre-tokenizer ("smollm": digits split one
# by one, then GPT-2 byte-level, no prefix space) and falls back to plain GPT-2, which tokenizes
# numbers differently. Restore the model's real pre-tokenizer so both sides see the same ids.
from tokenizers import pre_tokenizers
tok.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
    pre_tokenizers.Digits(individual_digits=True),
    pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
])
model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32).eval()
texts = [json.loads(l)["text"] for l in open(args.file) if l.strip()]
docs = [tok(t, add_special_tokens=False, return_tensors="pt").input_ids for t in texts]
n_tokens = sum(x.shape[1] for x in docs)

def run(with_metrics):
    nlls = []
    t0 = time.perf_counter()
    with torch.inference_mode():
        for ids in docs:
            logits = model(ids).logits[0, :-1].float()
            target = ids[0, 1:]
            if with_metrics:
                logp = torch.log_softmax(logits, dim=-1)
                torch.topk(logits, 10, dim=-1)
                nlls.append(float(-logp.gather(1, target[:, None]).mean()))
            else:
                nlls.append(float(logits[0, 0]))
    return n_tokens / (time.perf_counter() - t0), nlls

run(True)
bare, full = [], []
for _ in range(args.reps):
    bare.append(run(False)[0])
    tps, nlls = run(True)
    full.append(tps)
print(json.dumps({
    "peer": "transformers %s + torch %s, fp32, GGUF dequantized" % (__import__("transformers").__version__, torch.__version__),
    "file": args.file, "documents": len(docs), "tokens": n_tokens, "threads": args.threads,
    "forward_tok_s": statistics.median(bare), "forward_metrics_tok_s": statistics.median(full),
    "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024,
    "mean_nll_per_doc": nlls,
    "tokens_per_doc": [x.shape[1] for x in docs],
}))
