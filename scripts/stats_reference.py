#!/usr/bin/env python3
"""Reference values for src/analysis/stats.rs, computed with scipy.

Usage:  pip install scipy numpy && python3 scripts/stats_reference.py

Prints, for a handful of fixed datasets, Pearson r, Spearman rho, Kendall tau-b, the least-squares
line (scipy.stats.linregress) and the exact two-sided permutation p-value of each statistic
(scipy.stats.permutation_test with permutation_type="pairings" and n_resamples=inf, which enumerates
all n! pairings). The Rust tests in src/analysis/stats.rs copy these numbers as constants; rerun this
script (about 6 minutes on 2 cores: the n = 9 dataset alone has 9! pairings) and update them, and
the version comment there, if a dataset changes.
"""

import math

import numpy as np
import scipy
from scipy import stats

# name -> (x, y). Keep in sync with the `datasets` in the Rust tests.
DATASETS = {
    # Seven distinct values on each side.
    "no_ties": (
        [1.2, 2.5, 3.1, 4.8, 5.0, 6.7, 7.3],
        [2.1, 2.0, 3.9, 4.2, 6.1, 5.8, 8.0],
    ),
    # Two tie groups in x (2.0 twice, 5.0 three times), none in y.
    "ties_x": (
        [1.0, 2.0, 2.0, 3.5, 5.0, 5.0, 5.0, 6.0],
        [0.3, 0.9, 0.4, 1.7, 1.1, 2.5, 1.9, 2.2],
    ),
    # Ties in x and in y, including a pair tied in both.
    "ties_both": (
        [1.0, 1.0, 2.0, 3.0, 3.0, 3.0, 4.0, 5.0, 5.0],
        [10.0, 12.0, 12.0, 11.0, 14.0, 14.0, 13.0, 15.0, 12.0],
    ),
    "n3": ([1.0, 2.0, 3.0], [2.0, 1.0, 3.0]),
    # Perfectly monotone but not linear: rank statistics are exactly 1, Pearson is not.
    "monotone": (
        [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        [math.exp(v) for v in [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]],
    ),
    # Decreasing with noise.
    "anti": (
        [0.5, 1.5, 2.0, 3.2, 4.1, 5.5, 6.0],
        [9.1, 8.7, 8.9, 6.5, 5.0, 5.2, 3.3],
    ),
    # Paper-like: HE-SNR of 8 mid-training checkpoints vs a SWE-bench-like score (%).
    "paper_hesnr": (
        [0.412, 0.455, 0.431, 0.489, 0.502, 0.517, 0.526, 0.541],
        [18.2, 21.4, 20.0, 24.6, 25.2, 27.8, 27.4, 29.6],
    ),
    # Paper-like: PPL of the same checkpoints, inverted at the 3rd (context-switch) checkpoint.
    "paper_ppl": (
        [2.31, 2.18, 2.35, 2.09, 2.05, 2.02, 1.99, 1.97],
        [18.2, 21.4, 20.0, 24.6, 25.2, 27.8, 27.4, 29.6],
    ),
}


def perm_p(x, y, fn):
    """Exact two-sided permutation p-value of fn(x, y) over all pairings of y with x."""
    x = np.asarray(x)

    def statistic(yy):
        return fn(x, yy)

    res = stats.permutation_test(
        (np.asarray(y),),
        statistic,
        permutation_type="pairings",
        n_resamples=np.inf,
        alternative="two-sided",
        vectorized=False,
    )
    return res.pvalue


def main():
    print(f"# scipy {scipy.__version__}, numpy {np.__version__}")
    fns = {
        "pearson": lambda a, b: stats.pearsonr(a, b).statistic,
        "spearman": lambda a, b: stats.spearmanr(a, b).statistic,
        "kendall": lambda a, b: stats.kendalltau(a, b).statistic,
    }
    for name, (x, y) in DATASETS.items():
        x = np.asarray(x, dtype=float)
        y = np.asarray(y, dtype=float)
        lr = stats.linregress(x, y)
        print(f"{name}: n = {len(x)}")
        for stat, fn in fns.items():
            print(f"  {stat:10s} = {float(fn(x, y))!r}")
        print(f"  ranks_x    = {[float(v) for v in stats.rankdata(x)]}")
        print(f"  ranks_y    = {[float(v) for v in stats.rankdata(y)]}")
        print(f"  slope      = {float(lr.slope)!r}")
        print(f"  intercept  = {float(lr.intercept)!r}")
        print(f"  r2         = {float(lr.rvalue) ** 2!r}")
        for stat, fn in fns.items():
            print(f"  p_{stat:8s} = {float(perm_p(x, y, fn))!r}")


if __name__ == "__main__":
    main()
