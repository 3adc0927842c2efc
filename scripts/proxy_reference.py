#!/usr/bin/env python3
"""Independent reference for HES and the weightings of src/metrics/proxy.rs, in numpy.

Usage:  pip install numpy && python3 scripts/proxy_reference.py

Written from the definitions in docs/method.md ("The proxy-metric family"), not from the Rust code.
Builds the fixed datasets below, prints the cross-entropy pooled under every weighting (with
frequencies from the samples themselves and from the given corpus), the margin under uniform
weights and HES, as `name value` lines. The Rust test `matches_the_numpy_reference` in
src/metrics/proxy/tests.rs copies these numbers as constants; rerun this script and update them
if a dataset or a definition changes.
"""

import math

import numpy as np

VOCAB = 11
INVERSE_ENTROPY_FLOOR = 0.01
HES_FRACTION = 0.005


def sample(n, salt):
    """n records: token, nll, entropy, from integer formulas (the Rust test builds the same)."""
    i = np.arange(n)
    token = (i * 7 + salt) % VOCAB
    nll = ((i * 37 + salt) % 100) / 20.0
    entropy = ((i * 53 + salt) % 997) / 100.0
    return token, nll, entropy


SAMPLES = [sample(450, 3), sample(130, 5)]
CORPUS = [(j * j) % VOCAB for j in range(200)]


def frequencies(tokens):
    counts = np.bincount(np.asarray(tokens), minlength=VOCAB).astype(float)
    return (counts + 1.0) / (counts.sum() + VOCAB)


def weights(name, token, nll, entropy, freq):
    p = np.exp(-nll)
    if name == "uniform":
        return np.ones_like(nll)
    if name == "p":
        return p
    if name == "one_minus_p":
        return 1.0 - p
    if name == "entropy":
        return entropy
    if name == "inv_entropy":
        return 1.0 / (entropy + INVERSE_ENTROPY_FLOOR)
    if name == "freq":
        return freq[token]
    if name == "inv_freq":
        return 1.0 / freq[token]
    if name == "gauss_nll":
        mu, sigma = nll.mean(), nll.std()
        if sigma == 0:
            return np.ones_like(nll)
        return np.exp(-((nll - mu) ** 2) / (2 * sigma**2))
    raise ValueError(name)


def hes(entropy):
    take = max(1, math.ceil(len(entropy) * HES_FRACTION))
    return float(np.sort(entropy)[::-1][:take].sum())


def main():
    token = np.concatenate([s[0] for s in SAMPLES])
    nll = np.concatenate([s[1] for s in SAMPLES])
    entropy = np.concatenate([s[2] for s in SAMPLES])
    own = frequencies(token)
    corpus = frequencies(CORPUS)
    for name in ["uniform", "p", "one_minus_p", "entropy", "inv_entropy", "freq", "inv_freq", "gauss_nll"]:
        w = weights(name, token, nll, entropy, own)
        print(f"xent__{name} {float((w * nll).sum() / w.sum())!r}")
    for name in ["freq", "inv_freq"]:
        w = weights(name, token, nll, entropy, corpus)
        print(f"corpus:xent__{name} {float((w * nll).sum() / w.sum())!r}")
    print(f"hes {float(np.mean([hes(s[2]) for s in SAMPLES]))!r}")
    # The last 100 tokens of each sample.
    last = [s[2][-100:] for s in SAMPLES]
    print(f"window100:hes {float(np.mean([hes(e) for e in last]))!r}")
    print(f"numpy {np.__version__}")


if __name__ == "__main__":
    main()
