"""What the Python API accepts as inputs, turned into what the CLI reads: files by path, or
records streamed to its stdin as JSON Lines."""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence

from ._runner import HesnrError


@dataclass
class Inputs:
    """Either ``paths`` (files, folders or globs the CLI expands) or ``records`` (dicts to
    stream), with ``total`` records when known (for the progress bar)."""

    paths: Optional[List[str]] = None
    records: Optional[Iterable[Mapping[str, Any]]] = None
    total: Optional[int] = None


def _top(field: str) -> str:
    """The column a dotted field path starts at (``meta.id`` -> ``meta``)."""
    return field.split(".", 1)[0]


def _dataset_records(ds: Any, keep: Sequence[str]) -> Iterable[Mapping[str, Any]]:
    """The rows of a Hugging Face dataset, with only the columns the reader looks at (text, id,
    metadata): the others are never converted to Python."""
    names = getattr(ds, "column_names", None)
    if names:
        wanted = [c for c in names if c in keep]
        if wanted and len(wanted) < len(names) and hasattr(ds, "select_columns"):
            ds = ds.select_columns(wanted)
    return ds


def _arrow_records(table: Any, keep: Sequence[str]) -> Iterator[Dict[str, Any]]:
    """The rows of a pyarrow Table (also from pandas or polars), batch by batch."""
    names = [c for c in table.column_names if c in keep] or table.column_names
    for batch in table.select(names).to_batches(max_chunksize=1024):
        yield from batch.to_pylist()


def _nest(field: str, value: Any) -> Dict[str, Any]:
    """A record holding ``value`` at a dotted field path (``a.b`` -> ``{"a": {"b": value}}``)."""
    record: Dict[str, Any] = {}
    inner = record
    *parents, last = field.split(".")
    for p in parents:
        inner = inner.setdefault(p, {})
    inner[last] = value
    return record


def normalize(data: Any, text_field: str, id_field: str = "id") -> Inputs:
    """Inputs from what a caller passes:

    - a path (``pathlib.Path`` or any ``os.PathLike``) or a list of them: files, folders or glob
      patterns, read by the CLI itself (JSONL, Parquet, plain text, compressed);
    - a ``str``: a path, as on the command line (``hesnr.score("data.jsonl")``);
    - a Hugging Face ``datasets.Dataset`` / ``IterableDataset``, a pyarrow ``Table``, a pandas
      or polars ``DataFrame``: one record per row;
    - an iterable of dicts (records, read like JSON Lines records) or of strings (texts; paths in
      a list must be ``pathlib.Path``, and a list whose first string names an existing file is
      refused rather than scored as texts).
    """
    keep = (_top(text_field), _top(id_field), "metadata")
    if isinstance(data, os.PathLike):
        return Inputs(paths=[os.fspath(data)])
    if isinstance(data, str):
        return Inputs(paths=[data])
    if isinstance(data, Mapping):
        raise HesnrError(
            "a dict is not an input: pass a list of records ([record]), or one split of a "
            "DatasetDict (ds['train'])",
            [],
            "",
        )
    module = type(data).__module__.split(".", 1)[0]
    if module == "datasets":
        total = len(data) if hasattr(data, "__len__") else None
        return Inputs(records=_dataset_records(data, keep), total=total)
    if module == "pyarrow" and hasattr(data, "to_batches"):
        return Inputs(records=_arrow_records(data, keep), total=data.num_rows)
    if module == "pandas" and hasattr(data, "columns"):
        import pyarrow as pa

        table = pa.Table.from_pandas(data, preserve_index=False)
        return Inputs(records=_arrow_records(table, keep), total=table.num_rows)
    if module == "polars" and hasattr(data, "to_arrow"):
        table = data.to_arrow()
        return Inputs(records=_arrow_records(table, keep), total=table.num_rows)
    try:
        it = iter(data)
    except TypeError:
        raise HesnrError(
            f"cannot read inputs from a {type(data).__name__}: pass paths, texts, records or a dataset",
            [],
            "",
        ) from None
    total = len(data) if hasattr(data, "__len__") else None
    first = list(itertools.islice(it, 1))
    if not first:
        raise HesnrError("no inputs: the iterable is empty", [], "")
    rest = itertools.chain(first, it)
    head = first[0]
    if isinstance(head, os.PathLike):
        return Inputs(paths=[os.fspath(p) for p in rest])
    if isinstance(head, str):
        if "\n" not in head and len(head) < 4096 and os.path.exists(head):
            raise HesnrError(
                f"'{head}' is a file: a list of str is texts; pass files as pathlib.Path", [], ""
            )
        return Inputs(records=(_nest(text_field, t) for t in rest), total=total)
    if isinstance(head, Mapping):
        return Inputs(records=rest, total=total)
    raise HesnrError(
        f"cannot read inputs made of {type(head).__name__}: pass paths, texts or dicts", [], ""
    )
