#!/usr/bin/env python3
"""The precision rule of docs/method.md applied to `hesnr eval` summaries of one set under several
compute precisions:

    python3 bench/precision_rule.py summary-f32.json summary-bf16.json summary-f16.json

A precision's shift of a metric is |value - value under f32|; the metric's noise is the half-width
of the bootstrap interval over trajectories that the f32 summary reports. Half-widths shrink as one over
the square root of the set's size, so the ratio is also given for a set of PAPER_SET trajectories
(the paper's evaluation set). The rule: a precision is invisible when every shift of HE-SNR, PPL
and |H| is under a tenth of the half-width at PAPER_SET trajectories. Prints a Markdown table with,
for each precision, the set size at which its largest shift reaches the bound.
"""
import json, math, sys

BOUND = 0.1
PAPER_SET = 500
METRICS = [("he_snr", "HE-SNR"), ("ppl", "PPL"), ("decision_tokens", "|H|")]

runs = {}
for path in sys.argv[1:]:
    s = json.load(open(path))
    runs[s["model"]["precision"]] = s
runs = dict(sorted(runs.items(), key=lambda kv: kv[0] != "f32"))
base = runs["f32"]
pre = base["presets"][0]
units = pre["intervals"]["units"]
print(f"set: {base['trajectories']} trajectories, {pre['scored_tokens']} scored tokens (preset {pre['preset']}), "
      f"{pre['intervals']['level']:.0%} bootstrap intervals over trajectories ({pre['intervals']['resamples']} resamples)\n")
print("| precision | " + " | ".join(f"{label} (shift / half-width)" for _, label in METRICS) + " | largest ratio | at 500 trajectories | verdict | set size where the shift reaches 1/10 |")
print("|---|" + "---|" * (len(METRICS) + 4))
for name, s in runs.items():
    p = s["presets"][0]
    cells, worst = [], 0.0
    for key, _ in METRICS:
        lo, hi = pre["intervals"][key]
        half = (hi - lo) / 2
        shift = abs(p[key] - pre[key])
        ratio = shift / half if half > 0 else math.inf
        worst = max(worst, ratio)
        value = f"{p[key]:.0f}" if key == "decision_tokens" else f"{p[key]:.5f}"
        cells.append(f"{value} ({shift:.2g} / {half:.2g} = {ratio:.3f})")
    at_paper = worst * math.sqrt(PAPER_SET / units)
    verdict = "reference" if name == "f32" else ("invisible" if at_paper < BOUND else "visible")
    # half-width ~ 1/sqrt(n): the ratio grows as sqrt(n / units).
    reach = "-" if worst == 0 else f"{units * (BOUND / worst) ** 2:,.0f}"
    print(f"| {name} | " + " | ".join(cells) + f" | {worst:.3f} | {at_paper:.3f} | {verdict} | {reach} |")
