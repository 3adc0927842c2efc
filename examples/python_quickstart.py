"""hesnr from Python, notebook style: each `# %%` cell runs as it is in Jupyter or VS Code, and
the whole file runs as a script (the Python tests run it on a tiny model).

    .venv/bin/python examples/python_quickstart.py            # the default model
    .venv/bin/python examples/python_quickstart.py --model m.gguf
"""

# %% Setup: the model (default: the one `hesnr fetch-model` fetched) and the example data.
import argparse
import json
import tempfile
from pathlib import Path

import hesnr

parser = argparse.ArgumentParser()
parser.add_argument("--model", default=None, help="GGUF model [default: the default model]")
MODEL = parser.parse_known_args()[0].model
EXAMPLES = Path(__file__).resolve().parent

# %% Score a JSONL file: one row per document (a pyarrow Table) and the pooled summary.
rows, summary = hesnr.score(EXAMPLES / "code.jsonl", model=MODEL)
print(rows.select(["id", "tokens", "he_snr", "he_ppl", "ppl", "top1_acc"]).to_pandas())
print(f"pooled HE-SNR {summary['he_snr']:.4f} over {summary['documents']} documents")

# %% Texts and records work too (a plain str is a text, never a file name).
texts, _ = hesnr.score(["def add(a, b):\n    return a + b\n", "SELECT name FROM users;\n"], model=MODEL)
print(texts.select(["id", "he_snr", "decision_tokens"]).to_pylist())

# %% A Hugging Face dataset: records streamed to hesnr, only the text/id/metadata columns read.
try:
    import datasets
except ImportError:
    print("(datasets not installed: skipping the dataset cell)")
else:
    records = [json.loads(line) for line in (EXAMPLES / "code.jsonl").read_text().splitlines()]
    ds = datasets.Dataset.from_list(records)
    from_ds, _ = hesnr.score(ds, model=MODEL)
    assert from_ds.column("he_snr").equals(rows.column("he_snr"))
    print("the dataset scores like the file:", from_ds.num_rows, "rows")

# %% Per-token statistics of one text, for plots: H_10, p_true, NLL, rank, decision flag, top-k.
text = (EXAMPLES / "code.jsonl").read_text().splitlines()[0]
tokens = hesnr.token_stats(json.loads(text)["text"], model=MODEL)
h10 = tokens["h10"].to_numpy()
decisions = tokens.filter(tokens["decision"])
print(f"{tokens.num_rows} tokens, {decisions.num_rows} decision tokens; highest H_10:")
top = sorted(zip(h10, tokens["token"].to_pylist(), tokens["top_tokens"].to_pylist()), key=lambda t: -t[0])[:5]
for h, tok, cands in top:
    print(f"  {h:.3f}  {tok!r:>14}  candidates {cands[:3]}")
try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 3))
    ax.plot(h10, lw=0.8, label="H_10")
    ax.plot(tokens["nll"].to_numpy(), lw=0.8, label="NLL")
    ax.legend()
    fig.savefig(Path(tempfile.gettempdir()) / "hesnr-tokens.png")
except ImportError:
    pass

# %% Agent trajectories, the paper's way: HE-SNR on cleaned Action tokens, every preset.
traj_rows, traj_summary = hesnr.eval(EXAMPLES / "trajectories" / "chat.jsonl", preset="all", model=MODEL)
for p in traj_summary["presets"]:
    print(f"  {p['preset']:<15} HE-SNR {p['he_snr'] if p['he_snr'] is None else round(p['he_snr'], 4)}")

# %% A datatrove pipeline: scores into Document.metadata, a filter keeps by them.
try:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.filters import LambdaFilter
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    from hesnr.datatrove import HesnrScorer
except ImportError:
    print("(datatrove not installed: skipping the pipeline cell)")
else:
    with tempfile.TemporaryDirectory() as d:
        LocalPipelineExecutor(
            pipeline=[
                JsonlReader(str(EXAMPLES / "corpus"), glob_pattern="code.jsonl", limit=20),
                HesnrScorer(model=MODEL),
                LambdaFilter(lambda doc: (doc.metadata["hesnr_he_snr"] or 0) > summary["he_snr"]),
                JsonlWriter(f"{d}/kept"),
            ],
            tasks=1,
            logging_dir=f"{d}/logs",
        ).run()
        print("kept:", sorted(p.name for p in Path(d, "kept").iterdir()))
