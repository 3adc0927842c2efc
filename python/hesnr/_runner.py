"""Running the ``hesnr`` binary this package installs: one child process per call.

Why a child process and not an extension module: the Python package is the command-line tool
itself (same binary, same llama.cpp build with its CPU kernel modules, same chat-template worker),
so Python results equal the CLI's by construction; a crash inside llama.cpp ends the child, not
the notebook's kernel; and the measured overhead over the CLI is within run-to-run noise
(docs/benchmarks.md, "Python package"). What it costs is one model load per call.

This module turns calls into command lines, feeds records to the child's stdin as JSON Lines
(read there by the same reader as ``hesnr score data.jsonl``), draws progress from the child's
``HESNR_PROGRESS=json`` lines, turns a failure into :class:`HesnrError` with the CLI's message,
and stops the child when the caller is interrupted (Ctrl-C, or a notebook's interrupt button).
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import threading
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Union

ProgressArg = Union[bool, None, Callable[[Dict[str, Any]], None]]

_PACKAGE_DIR = Path(__file__).resolve().parent
_BINARY_NAME = "hesnr.exe" if os.name == "nt" else "hesnr"


class HesnrError(RuntimeError):
    """A ``hesnr`` command failed. The message is the CLI's own (``file:line: field ...``);
    ``command`` is the command line that ran, ``stderr`` everything it wrote there."""

    def __init__(self, message: str, command: Sequence[str], stderr: str) -> None:
        super().__init__(message)
        self.command = list(command)
        self.stderr = stderr


def binary() -> Path:
    """The ``hesnr`` executable this package runs: ``$HESNR_BINARY`` if set, else the one the
    package installed beside the Python interpreter (the environment's scripts folder)."""
    override = os.environ.get("HESNR_BINARY")
    if override:
        return Path(override)
    candidates = [
        Path(sysconfig.get_path("scripts")) / _BINARY_NAME,
        Path(sys.executable).parent / _BINARY_NAME,
    ]
    try:
        candidates.append(Path(sysconfig.get_path("scripts", f"{os.name}_user")) / _BINARY_NAME)
    except KeyError:
        pass
    for c in candidates:
        if c.is_file():
            return c
    found = shutil.which(_BINARY_NAME)
    if found:
        return Path(found)
    raise HesnrError(
        "the hesnr binary is not installed beside this Python (looked in "
        + ", ".join(str(c.parent) for c in candidates)
        + "); install the package as the README says, or set HESNR_BINARY",
        [],
        "",
    )


def backends_dir() -> Optional[Path]:
    """The llama.cpp CPU kernel modules shipped in the package (``hesnr/hesnr-backends``), which
    the binary loads at run time to pick the kernels of the CPU it runs on."""
    d = _PACKAGE_DIR / "hesnr-backends"
    return d if d.is_dir() else None


def environment() -> Dict[str, str]:
    """The child's environment: the caller's, with the package's kernel modules (unless
    ``HESNR_BACKENDS_DIR`` is set already) and progress as JSON lines."""
    env = dict(os.environ)
    d = backends_dir()
    if d is not None and "HESNR_BACKENDS_DIR" not in env:
        env["HESNR_BACKENDS_DIR"] = str(d)
    env["HESNR_PROGRESS"] = "json"
    return env


def flags(options: Mapping[str, Any], comma_lists: Sequence[str] = ()) -> List[str]:
    """Command-line flags from keyword arguments, by the CLI's names: ``window_policy="shift"``
    is ``--window-policy shift``, ``True`` a bare flag, ``None`` and ``False`` nothing, a list a
    repeated flag (or one comma-separated value for the names in ``comma_lists``)."""
    out: List[str] = []
    for name, value in options.items():
        if value is None or value is False:
            continue
        flag = "--" + name.replace("_", "-")
        if value is True:
            out.append(flag)
        elif isinstance(value, (list, tuple)):
            if name in comma_lists:
                out += [flag, ",".join(str(v) for v in value)]
            else:
                for v in value:
                    out += [flag, _flag_value(v)]
        else:
            out += [flag, _flag_value(value)]
    return out


def _flag_value(v: Any) -> str:
    return os.fspath(v) if isinstance(v, os.PathLike) else str(v)


def _jsonable(v: Any) -> Any:
    """JSON for values ``json`` does not know: NumPy scalars and arrays, dates."""
    if hasattr(v, "tolist"):
        return v.tolist()
    if hasattr(v, "item"):
        return v.item()
    if isinstance(v, (datetime.date, datetime.datetime, datetime.time)):
        return v.isoformat()
    raise TypeError(f"a record holds a {type(v).__name__}, which is not JSON")


def record_line(record: Mapping[str, Any]) -> bytes:
    """One record as a JSON line (the CLI's JSON Lines reader interprets it)."""
    return (json.dumps(record, ensure_ascii=False, default=_jsonable) + "\n").encode("utf-8")


class _Progress:
    """Progress of a run: a tqdm bar (``tqdm.auto``: a widget in notebooks) or a callback."""

    def __init__(self, progress: ProgressArg, total: Optional[int], desc: str) -> None:
        self.callback: Optional[Callable[[Dict[str, Any]], None]] = None
        self.bar = None
        if callable(progress):
            self.callback = progress
        elif progress or (progress is None and _interactive()):
            try:
                from tqdm.auto import tqdm
            except ImportError:
                return
            self.bar = tqdm(total=total, desc=desc, unit=" docs" if desc == "score" else " units")

    def update(self, p: Dict[str, Any]) -> None:
        if self.callback is not None:
            self.callback(p)
        if self.bar is not None:
            n = int(p.get("done", 0)) + int(p.get("skipped", 0)) + int(p.get("resumed", 0))
            self.bar.update(n - self.bar.n)
            self.bar.set_postfix_str(
                f"{p.get('tokens', 0)} tok, {p.get('tokens', 0) / max(p.get('seconds', 0), 1e-9):.0f} tok/s",
                refresh=False,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _interactive() -> bool:
    """In a notebook or a terminal: where a progress bar is seen."""
    if "ipykernel" in sys.modules:
        return True
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


class Child:
    """A running ``hesnr`` command. Its stderr is read on a thread (progress lines to the
    progress bar, the rest kept, and echoed when ``echo``); records, if given, are written to its
    stdin on another thread. Use as a context manager: leaving it early (an exception, Ctrl-C)
    stops the child."""

    def __init__(
        self,
        args: Sequence[str],
        records: Optional[Iterable[Mapping[str, Any]]] = None,
        *,
        stdout: bool = False,
        progress: ProgressArg = None,
        total: Optional[int] = None,
        echo: bool = False,
    ) -> None:
        self.command = [os.fspath(binary()), *args]
        self._progress = _Progress(progress, total, args[0] if args else "hesnr")
        self._stderr: List[str] = []
        self._echo = echo
        self._feed_error: Optional[BaseException] = None
        self.proc = subprocess.Popen(
            self.command,
            stdin=subprocess.PIPE if records is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdout else subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=environment(),
        )
        self._threads = [threading.Thread(target=self._read_stderr, daemon=True)]
        if records is not None:
            self._threads.append(threading.Thread(target=self._feed, args=(records,), daemon=True))
        for t in self._threads:
            t.start()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace")
            if line.startswith('{"hesnr_progress"'):
                try:
                    self._progress.update(json.loads(line)["hesnr_progress"])
                    continue
                except (ValueError, KeyError):
                    pass
            self._stderr.append(line)
            if self._echo:
                sys.stderr.write(line)

    def _feed(self, records: Iterable[Mapping[str, Any]]) -> None:
        stdin = self.proc.stdin
        assert stdin is not None
        try:
            for r in records:
                stdin.write(record_line(r))
        except (BrokenPipeError, OSError):
            pass  # the child stopped reading: its exit status says why
        except BaseException as e:  # a record that is not JSON: the run fails with it
            self._feed_error = e
            self.proc.terminate()
        finally:
            try:
                stdin.close()
            except OSError:
                pass

    def lines(self) -> Iterator[bytes]:
        """The child's stdout, line by line, as it writes it."""
        assert self.proc.stdout is not None
        yield from self.proc.stdout

    def wait(self) -> str:
        """Waits for the child to end; returns its stderr, or raises :class:`HesnrError` with
        its message if it failed."""
        while True:
            try:
                code = self.proc.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                continue
        for t in self._threads:
            t.join()
        self._progress.close()
        stderr = "".join(self._stderr)
        if self._feed_error is not None:
            raise self._feed_error
        if code != 0:
            raise HesnrError(error_message(stderr, code), self.command, stderr)
        return stderr

    def stop(self) -> None:
        """Ends the child (it writes its outputs atomically: nothing half-written is left)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._progress.close()

    def __enter__(self) -> "Child":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def error_message(stderr: str, code: int) -> str:
    """The CLI's error: from its ``error: `` line to the end of stderr (clap's usage errors are
    several lines), else the last lines it wrote."""
    lines = stderr.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("error: "):
            return "\n".join([line[len("error: "):], *lines[i + 1 :]]).strip()
    tail = "\n".join(lines[-5:]).strip()
    return f"hesnr exited with status {code}" + (f": {tail}" if tail else "")


def run(
    args: Sequence[str],
    records: Optional[Iterable[Mapping[str, Any]]] = None,
    *,
    progress: ProgressArg = None,
    total: Optional[int] = None,
    echo: bool = False,
) -> str:
    """Runs a command to its end (stopping it if the caller is interrupted); returns its stderr."""
    with Child(args, records, progress=progress, total=total, echo=echo) as child:
        return child.wait()
