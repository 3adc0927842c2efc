"""hesnr.datatrove.HesnrScorer in a small datatrove pipeline (local executor): reader -> scorer
-> filter on the metadata it wrote -> writer."""

from __future__ import annotations

import gzip
import json

import pytest

pytest.importorskip("datatrove")

from datatrove.executor import LocalPipelineExecutor  # noqa: E402
from datatrove.pipeline.filters import LambdaFilter  # noqa: E402
from datatrove.pipeline.readers import JsonlReader  # noqa: E402
from datatrove.pipeline.writers import JsonlWriter  # noqa: E402

import hesnr  # noqa: E402
from hesnr.datatrove import HesnrScorer  # noqa: E402
from conftest import REPO  # noqa: E402


def test_the_scorer_writes_metadata_a_filter_keeps_by(tiny, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    recs = [json.loads(line) for line in (REPO / "examples" / "corpus" / "code.jsonl").read_text().splitlines()][:30]
    # One document hesnr cannot score (no text): it passes with its scores None.
    recs.insert(3, {"id": "empty", "text": ""})
    (src / "docs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    want = {
        r["id"]: r["he_snr"]
        for r in hesnr.score([r for r in recs if r["text"]], model=tiny, progress=False).rows.to_pylist()
    }
    threshold = sorted(v for v in want.values() if v is not None)[len(want) // 2]
    out = tmp_path / "out"
    LocalPipelineExecutor(
        pipeline=[
            JsonlReader(str(src)),
            HesnrScorer(model=str(tiny)),
            LambdaFilter(lambda d: (d.metadata["hesnr_he_snr"] or 0) > threshold),
            JsonlWriter(str(out)),
        ],
        tasks=1,
        logging_dir=str(tmp_path / "logs"),
    ).run()
    kept = []
    for f in sorted(out.glob("*.jsonl.gz")):
        with gzip.open(f, "rt") as fh:
            kept += [json.loads(line) for line in fh]
    assert {d["id"] for d in kept} == {i for i, v in want.items() if v is not None and v > threshold}
    for d in kept:
        assert d["metadata"]["hesnr_he_snr"] == want[d["id"]]
        assert d["metadata"]["hesnr_tokens"] > 0


def test_the_scorer_streams_documents_in_order_with_skips(tiny):
    from datatrove.data import Document

    docs = [Document(text=t, id=str(i)) for i, t in enumerate(["x = 1\n", "", "def f():\n    pass\n", ""])]
    out = list(HesnrScorer(model=str(tiny), columns=["he_snr", "tokens"])(iter(docs)))
    assert [d.id for d in out] == ["0", "1", "2", "3"]
    assert out[1].metadata == {"hesnr_he_snr": None, "hesnr_tokens": None}
    assert out[3].metadata == {"hesnr_he_snr": None, "hesnr_tokens": None}
    assert out[0].metadata["hesnr_tokens"] > 0
