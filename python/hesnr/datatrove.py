"""A datatrove pipeline step that scores each document with hesnr and writes the scores into
``Document.metadata``, where a filter keeps or drops by them (the way datatrove's classifier
steps record their scores). Needs the ``datatrove`` extra: ``pip install "hesnr[datatrove]"``.

    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.filters import LambdaFilter
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter
    from hesnr.datatrove import HesnrScorer

    LocalPipelineExecutor(pipeline=[
        JsonlReader("data/"),
        HesnrScorer(),                                   # metadata["hesnr_he_snr"], ...
        LambdaFilter(lambda d: (d.metadata["hesnr_he_snr"] or 0) > 1.0),
        JsonlWriter("kept/"),
    ], tasks=4).run()

Each task runs one ``hesnr score`` process for its whole shard, fed document by document
through its stdin and read row by row from its stdout, so the model loads once per task and
documents stream through without being collected first. Each process uses every core unless
told otherwise: with several workers on one machine, pass ``threads=cores // workers``.
"""

from __future__ import annotations

import collections
import json
import threading
from typing import Any, Deque, Dict, Iterator, Optional, Sequence

from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from ._runner import Child, flags

#: The scores a skipped document gets (as ``None``) when no row told the step the names.
_CORE_SCORES = ("tokens", "he_snr", "he_ppl", "ppl", "top1_acc", "decision_tokens", "decision_density")

#: Row fields that identify a document rather than score it; not copied into the metadata.
_NOT_SCORES = ("id", "source", "line", "metadata")


class HesnrScorer(PipelineStep):
    """Scores every document with ``hesnr score`` and sets ``metadata[prefix + name]`` for
    each score of its row (``he_snr``, ``he_ppl``, ``ppl``, ``top1_acc``, ``decision_tokens``,
    ``decision_density``, ``mean_h10``, ``tokens``, ...; or only ``columns``). A document hesnr
    cannot score (e.g. empty) passes through with the scores set to ``None`` and is counted in
    the step's ``skipped`` stat. Undefined values (HE-SNR of a document without decision tokens)
    are ``None`` too.

    ``model``: a GGUF file (default: the default model). ``settings``: the flags of
    ``hesnr score`` (``k``, ``eps``, ``window``, ``metrics``, ``threads``, ...)."""

    name = "HE-SNR scorer"
    type = "📊 - STATS"
    _requires_dependencies = ["pyarrow"]

    def __init__(
        self,
        model: Optional[str] = None,
        *,
        prefix: str = "hesnr_",
        columns: Optional[Sequence[str]] = None,
        **settings: Any,
    ) -> None:
        super().__init__()
        for reserved in ("output", "summary", "json", "tokens", "text_field", "id_field"):
            if reserved in settings:
                raise TypeError(f"HesnrScorer sets {reserved} itself")
        self.model = model
        self.prefix = prefix
        self.columns = list(columns) if columns is not None else None
        self.settings = settings

    def _scores(self, row: Dict[str, Any]) -> Dict[str, Any]:
        names = self.columns or [k for k in row if k not in _NOT_SCORES]
        return {self.prefix + k: row.get(k) for k in names}

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        if data is None:
            return
        pending: Deque[Document] = collections.deque()
        lock = threading.Lock()

        def records() -> Iterator[Dict[str, Any]]:
            for doc in data:
                with lock:
                    pending.append(doc)
                yield {"id": str(doc.id), "text": doc.text}

        args = [
            "score",
            "-",
            "--format",
            "jsonl",
            *flags(dict(model=self.model, **self.settings), comma_lists=("metrics",)),
        ]
        seen = 0  # documents fed before the current row's (rows carry their stdin line)
        names: Optional[Sequence[str]] = self.columns
        with Child(args, records(), stdout=True, progress=False) as child:
            for raw in child.lines():
                row = json.loads(raw)
                names = names or [k for k in row if k not in _NOT_SCORES]
                while True:
                    with lock:
                        doc = pending.popleft()
                    seen += 1
                    if seen == row["line"]:
                        break
                    yield self._skipped(doc, names)
                doc.metadata.update(self._scores(row))
                self.stat_update("scored")
                self.stat_update("tokens", value=int(row.get("tokens", 0)), unit="doc")
                yield doc
            child.wait()
        while pending:
            yield self._skipped(pending.popleft(), names or _CORE_SCORES)

    def _skipped(self, doc: Document, names: Sequence[str]) -> Document:
        self.stat_update("skipped")
        for k in names:
            doc.metadata[self.prefix + k] = None
        return doc
