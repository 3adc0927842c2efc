#!/usr/bin/env python3
"""Generate the example agent trajectories in this directory.

Run from anywhere: ``python3 examples/trajectories/make_examples.py``. The
output is deterministic (stdlib only, fixed seeds, fixed timestamps), so the
committed files can be checked by re-running the script and diffing.

The repositories, issues and runs are fictional; they were written by hand
for hesnr's tests and README demo. File views, diffs and test outputs are
derived from the fictional source files below so that they stay consistent
with each other.
"""

import difflib
import hashlib
import itertools
import json
import os
import random
import re
import unicodedata
from datetime import datetime, timedelta

HERE = os.path.dirname(os.path.abspath(__file__))


# ---------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------


def lines_of(text):
    """Lines of ``text`` without their terminators (no phantom last line)."""
    parts = text.split("\n")
    if text.endswith("\n"):
        parts.pop()
    return parts


def cat_n(text, start=1, end=-1):
    """``cat -n`` / ``nl -ba`` rendering of lines start..end (1-based)."""
    ls = lines_of(text)
    end = len(ls) if end == -1 else end
    return "\n".join(f"{i:6d}\t{ls[i - 1]}" for i in range(start, end + 1))


def view_obs(path, text, view_range=None):
    """Observation of the str_replace_editor ``view`` command."""
    body = cat_n(text, *view_range) if view_range else cat_n(text)
    return f"Here's the result of running `cat -n` on {path}:\n{body}\n"


def replace_once(text, old, new):
    assert text.count(old) == 1, f"not unique: {old!r}"
    return text.replace(old, new)


def str_replace_obs(path, before, old, new):
    """Apply a str_replace edit; return (new text, editor observation)."""
    after = replace_once(before, old, new)
    first = before.split(old)[0].count("\n")
    start = max(0, first - 4)
    end = first + 4 + new.count("\n")
    snippet = after.split("\n")[start : end + 1]
    numbered = "\n".join(f"{start + 1 + i:6d}\t{line}" for i, line in enumerate(snippet))
    obs = (
        f"The file {path} has been edited. Here's the result of running `cat -n` on a "
        f"snippet of {path}:\n{numbered}\nReview the changes and make sure they are as "
        "expected. Edit the file again if necessary."
    )
    return after, obs


def line_no(text, needle, nth=1):
    """1-based number of the nth line containing ``needle``."""
    hits = [i + 1 for i, line in enumerate(lines_of(text)) if needle in line]
    assert len(hits) >= nth, needle
    return hits[nth - 1]


def blob_id(text):
    data = text.encode("utf-8")
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()[:7]


_FUNCNAME = re.compile(r"^[A-Za-z_$]")


class _GitLikeMatcher(difflib.SequenceMatcher):
    """SequenceMatcher whose pure insertions slide down as far as they can,
    as xdiff's group compaction does, so that ambiguous hunks (an inserted
    block starting or ending with blank lines) are laid out like git's."""

    def get_opcodes(self):
        ops = [list(op) for op in super().get_opcodes()]
        k = 0
        while k < len(ops):
            tag, i1, i2, j1, j2 = ops[k]
            nxt = ops[k + 1] if k + 1 < len(ops) else None
            while tag == "insert" and nxt and nxt[0] == "equal" and nxt[1] < nxt[2] \
                    and self.b[j1] == self.b[j2]:
                if k > 0 and ops[k - 1][0] == "equal":
                    ops[k - 1][2] += 1
                    ops[k - 1][4] += 1
                else:
                    ops.insert(k, ["equal", i1, i1 + 1, j1, j1 + 1])
                    k += 1
                i1 += 1
                i2 += 1
                j1 += 1
                j2 += 1
                ops[k] = [tag, i1, i2, j1, j2]
                nxt[1] += 1
                nxt[3] += 1
            if tag == "insert" and nxt and nxt[0] == "equal" and nxt[1] == nxt[2]:
                ops.pop(k + 1)
            k += 1
        return [tuple(op) for op in ops]


def _unified(a, b, n=3):
    """difflib.unified_diff's hunk body, on a _GitLikeMatcher."""
    for group in _GitLikeMatcher(None, a, b).get_grouped_opcodes(n):
        first, last = group[0], group[-1]
        old_range = difflib._format_range_unified(first[1], last[2])
        new_range = difflib._format_range_unified(first[3], last[4])
        yield first[1], f"@@ -{old_range} +{new_range} @@"
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                yield None, "".join(" " + line for line in a[i1:i2])
                continue
            if tag in ("replace", "delete"):
                yield None, "".join("-" + line for line in a[i1:i2])
            if tag in ("replace", "insert"):
                yield None, "".join("+" + line for line in b[j1:j2])


def git_diff(changes):
    """``git diff`` output for [(path, before, after)], default funcname rule."""
    out = []
    for path, before, after in changes:
        old = before.splitlines(keepends=True)
        new = after.splitlines(keepends=True)
        out.append(f"diff --git a/{path} b/{path}\n")
        out.append(f"index {blob_id(before)}..{blob_id(after)} 100644\n")
        out.append(f"--- a/{path}\n+++ b/{path}\n")
        for start, text in _unified(old, new):
            if start is None:
                out.append(text)
                continue
            # git shows the nearest earlier line starting with a letter, "_" or
            # "$" (the hunk starts at 0-based line `start`), cut at 80 bytes
            context = ""
            for k in range(start - 1, -1, -1):
                if _FUNCNAME.match(old[k]):
                    context = " " + old[k].rstrip("\n")[:80].rstrip()
                    break
            out.append(text + context + "\n")
    return "".join(out)


def pytest_dots(outcomes, width=72):
    """Progress lines of ``pytest -q``: up to 72 result chars, then [ nn%]."""
    total = len(outcomes)
    lines = []
    for i in range(0, total, width):
        chunk = outcomes[i : i + width]
        pct = (i + len(chunk)) * 100 // total
        lines.append(f"{chunk.ljust(width)} [{pct:3d}%]")
    return "\n".join(lines)


def pytest_files(files):
    """Per-file progress lines of a non-quiet pytest run: [(name, outcomes)]."""
    total = sum(len(o) for _, o in files)
    done = 0
    lines = []
    for name, outcomes in files:
        done += len(outcomes)
        lines.append(f"{(name + ' ' + outcomes).ljust(72)} [{done * 100 // total:3d}%]")
    return "\n".join(lines)


def stable_id(prefix, *parts, length=22):
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    digest = hashlib.sha256("/".join(parts).encode()).digest()
    return prefix + "".join(alphabet[b % 62] for b in digest[:length])


# ---------------------------------------------------------------------------
# Chat format (OpenAI messages with native tool calls, and mini-swe-agent)
# ---------------------------------------------------------------------------

CHAT_SYSTEM = """You are a software engineering agent. A repository is checked out at /testbed and its dependencies are installed. Your job is to resolve the issue the user describes by editing the code in that repository.

You have three tools:
- execute_bash(command): run a bash command in the repository's environment and get its combined stdout and stderr. Commands time out after 180 seconds; do not start interactive programs or servers.
- str_replace_editor(command, path, ...): look at and edit files. `view` prints a file with line numbers (or lists a directory), optionally limited to `view_range`; `create` writes `file_text` to a new file; `str_replace` replaces `old_str`, which must occur exactly once in the file, with `new_str`; `insert` adds `new_str` after line `insert_line`; `undo_edit` reverts the last edit of `path`.
- submit(): end the task. The repository's current diff is your submission.

Work methodically: find the relevant code, reproduce the problem, make a minimal, general fix, add a regression test where it makes sense, and run the test suite before you submit. Always use absolute paths with str_replace_editor."""


class ChatBuilder:
    """Builds an OpenAI-style message list with native tool calls."""

    def __init__(self, issue_text, user_suffix):
        self.messages = [
            {"role": "system", "content": CHAT_SYSTEM},
            {"role": "user", "content": f"<issue>\n{issue_text}\n</issue>\n\n{user_suffix}"},
        ]
        self.n = 0

    def call(self, thought, name, args, result):
        self.n += 1
        call_id = f"call_{self.n:02d}"
        self.messages.append(
            {
                "role": "assistant",
                "content": thought,
                "tool_calls": [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": name, "arguments": json.dumps(args)},
                    }
                ],
            }
        )
        if result is not None:
            self.messages.append(
                {"role": "tool", "tool_call_id": call_id, "name": name, "content": result}
            )

    def bash(self, thought, command, output):
        self.call(thought, "execute_bash", {"command": command}, output)


# --- 1. csvkit-lite__412: delimiter sniffing ignores comment= ---------------

CSV_READER = r'''"""Read delimited text files into lists of dicts."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterable, Iterator, Optional, Union

from .sniff import sniff_delimiter

PathLike = Union[str, Path]

#: How much of a file is read to guess its delimiter.
SAMPLE_SIZE = 4096


def _strip_comments(lines: Iterable[str], comment: Optional[str]) -> Iterator[str]:
    """Drop the lines whose first non-blank characters are ``comment``."""
    for line in lines:
        if comment and line.lstrip().startswith(comment):
            continue
        yield line


def iter_rows(
    path: PathLike,
    delimiter: Optional[str] = None,
    comment: Optional[str] = None,
    encoding: str = "utf-8",
) -> Iterator[dict]:
    """Yield one dict per data row of the file at ``path``.

    With ``delimiter=None`` the delimiter is sniffed from the first
    ``SAMPLE_SIZE`` characters. Lines starting with ``comment`` (after
    leading blanks) are skipped.
    """
    with open(path, newline="", encoding=encoding) as fh:
        if delimiter is None:
            sample = fh.read(SAMPLE_SIZE)
            fh.seek(0)
            delimiter = sniff_delimiter(sample)
        reader = csv.DictReader(_strip_comments(fh, comment), delimiter=delimiter)
        yield from reader


def read_csv(
    path: PathLike,
    delimiter: Optional[str] = None,
    comment: Optional[str] = None,
    encoding: str = "utf-8",
) -> list:
    """Read the whole file at ``path``; see :func:`iter_rows`."""
    return list(iter_rows(path, delimiter, comment, encoding))
'''

CSV_SNIFF = r'''"""Guess the delimiter of a delimited text sample."""

from __future__ import annotations

from collections import Counter
from typing import Sequence

CANDIDATES = (",", ";", "\t", "|")
DEFAULT_DELIMITER = ","


class SniffError(ValueError):
    """Raised by :func:`sniff_delimiter` in strict mode."""


def sniff_delimiter(
    sample: str, candidates: Sequence[str] = CANDIDATES, strict: bool = False
) -> str:
    """Return the delimiter used in ``sample``.

    A candidate qualifies when it occurs the same, non-zero number of
    times on every non-blank line; the one with the most occurrences per
    line wins, ties going to the earlier candidate. When none qualifies,
    return ``DEFAULT_DELIMITER`` (or raise :class:`SniffError` if
    ``strict``). Quoting is not taken into account.
    """
    lines = [line for line in sample.splitlines() if line.strip()]
    if len(lines) > 1 and not sample.endswith(("\n", "\r")):
        lines.pop()  # the sample may end in the middle of a line
    best, best_count = None, 0
    for candidate in candidates:
        counts = Counter(line.count(candidate) for line in lines)
        if len(counts) != 1:
            continue
        (count,) = counts
        if count > best_count:
            best, best_count = candidate, count
    if best is None:
        if strict:
            raise SniffError("could not determine the delimiter")
        return DEFAULT_DELIMITER
    return best
'''

CSV_TEST_READER = r'''import pytest

from csvlite import read_csv
from csvlite.reader import iter_rows


@pytest.fixture
def write(tmp_path):
    def _write(text, name="data.csv"):
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return _write


def test_read_comma_separated(write):
    path = write("a,b\n1,2\n3,4\n")
    assert read_csv(path) == [{"a": "1", "b": "2"}, {"a": "3", "b": "4"}]


def test_read_semicolon_sniffed(write):
    path = write("a;b;c\n1;2;3\n")
    assert read_csv(path) == [{"a": "1", "b": "2", "c": "3"}]


def test_explicit_delimiter_wins(write):
    path = write("a|b\n1|2\n")
    assert read_csv(path, delimiter=",") == [{"a|b": "1|2"}]


def test_comment_lines_skipped(write):
    path = write("# generated\na,b\n1,2\n")
    assert read_csv(path, comment="#") == [{"a": "1", "b": "2"}]


def test_quoted_field_keeps_delimiter(write):
    path = write('name,note\nada,"likes ; and ,"\n')
    assert read_csv(path) == [{"name": "ada", "note": "likes ; and ,"}]


def test_iter_rows_is_lazy(write):
    path = write("a\n1\n2\n3\n")
    rows = iter_rows(path)
    assert next(rows) == {"a": "1"}
    assert [row["a"] for row in rows] == ["2", "3"]
'''

CSV_REPRO = r'''from pathlib import Path

from csvlite import read_csv

path = Path("/tmp/export.csv")
path.write_text(
    "# exported by billing-service v2.3\n"
    "# columns: id;amount;currency\n"
    "id;amount;currency\n"
    "1;9.99;EUR\n"
    "2;12.50;EUR\n"
)

rows = read_csv(path, comment="#")
print(rows)
assert rows[0]["amount"] == "9.99", rows[0]
print("OK")
'''


def csvkit_lite_412():
    iid = "csvkit-lite__412"
    issue = """read_csv() picks the wrong delimiter when the file starts with comment lines

Files exported by our billing service start with a couple of `#` comment lines. Passing `comment="#"` skips them when reading, but the delimiter still seems to be guessed from the raw file, comment lines included, so a semicolon-separated export is read as if it were comma-separated:

```
# exported by billing-service v2.3
# columns: id;amount;currency
id;amount;currency
1;9.99;EUR
2;12.50;EUR
```

```python
>>> from csvlite import read_csv
>>> read_csv("export.csv", comment="#")
[{'id;amount;currency': '1;9.99;EUR'}, {'id;amount;currency': '2;12.50;EUR'}]
```

Passing `delimiter=";"` explicitly works. csvlite 0.9.1, Python 3.11."""
    b = ChatBuilder(
        issue,
        "Resolve the issue above in the repository at /testbed. Add a regression test and "
        "make sure the existing test suite still passes.",
    )
    reader_path = "/testbed/src/csvlite/reader.py"
    test_path = "/testbed/tests/test_reader.py"
    reader, tests = CSV_READER, CSV_TEST_READER

    b.bash(
        "I'll start by getting an overview of the repository layout to find where CSV "
        "reading and delimiter detection live.",
        "find /testbed -type f -not -path '*/.git/*' | sort",
        "\n".join(
            "/testbed/" + p
            for p in [
                ".github/workflows/ci.yml",
                "CHANGELOG.md",
                "LICENSE",
                "README.md",
                "pyproject.toml",
                "src/csvlite/__init__.py",
                "src/csvlite/cli.py",
                "src/csvlite/reader.py",
                "src/csvlite/sniff.py",
                "src/csvlite/writer.py",
                "tests/conftest.py",
                "tests/test_cli.py",
                "tests/test_reader.py",
                "tests/test_sniff.py",
                "tests/test_writer.py",
            ]
        ),
    )
    b.call(
        "`read_csv` is most likely in reader.py and the guessing in sniff.py. Let me read "
        "the reader first to see how the sample for sniffing is taken and where comment "
        "lines are dropped.",
        "str_replace_editor",
        {"command": "view", "path": reader_path},
        view_obs(reader_path, reader),
    )
    b.call(
        "That confirms the suspicion: `iter_rows` reads a raw sample and hands it to "
        "`sniff_delimiter` before `_strip_comments` is ever applied, so comment lines "
        "take part in delimiter detection. Let me check how the sniffer decides, to be "
        "sure this is what breaks the example.",
        "str_replace_editor",
        {"command": "view", "path": "/testbed/src/csvlite/sniff.py"},
        view_obs("/testbed/src/csvlite/sniff.py", CSV_SNIFF),
    )
    b.call(
        "The sniffer requires a candidate to occur the same number of times on every "
        "non-blank line. The first comment line has no `;` at all while the data lines "
        "have two, so `;` is rejected and it falls back to `,`. I'll write a small script "
        "that reproduces the report exactly.",
        "str_replace_editor",
        {"command": "create", "path": "/testbed/reproduce.py", "file_text": CSV_REPRO},
        "File created successfully at: /testbed/reproduce.py",
    )
    assert_line = line_no(CSV_REPRO, "assert rows[0]")
    b.bash(
        "Now run it to confirm the failure before changing anything.",
        "cd /testbed && python reproduce.py",
        "[{'id;amount;currency': '1;9.99;EUR'}, {'id;amount;currency': '2;12.50;EUR'}]\n"
        "Traceback (most recent call last):\n"
        f'  File "/testbed/reproduce.py", line {assert_line}, in <module>\n'
        '    assert rows[0]["amount"] == "9.99", rows[0]\n'
        "           ~~~~~~~^^^^^^^^^^\n"
        "KeyError: 'amount'",
    )
    grep_out = [
        "/testbed/src/csvlite/__init__.py:4:from .sniff import SniffError, sniff_delimiter",
        '/testbed/src/csvlite/__init__.py:12:    "sniff_delimiter",',
        f"/testbed/src/csvlite/reader.py:{line_no(reader, 'from .sniff')}:from .sniff import sniff_delimiter",
        f"/testbed/src/csvlite/reader.py:{line_no(reader, 'delimiter = sniff_delimiter')}:            delimiter = sniff_delimiter(sample)",
        "/testbed/tests/test_sniff.py:3:from csvlite.sniff import DEFAULT_DELIMITER, SniffError, sniff_delimiter",
        '/testbed/tests/test_sniff.py:7:    assert sniff_delimiter("a,b\\n1,2\\n") == ","',
        '/testbed/tests/test_sniff.py:11:    assert sniff_delimiter("a;b\\n1;2\\n") == ";"',
        '/testbed/tests/test_sniff.py:15:    assert sniff_delimiter("a\\tb\\n1\\t2\\n") == "\\t"',
    ]
    b.bash(
        "Reproduced. Before fixing it in the reader, I want to know whether anything else "
        "calls `sniff_delimiter` with a sample that could contain comments, since "
        "`sniff_delimiter` itself is public API and I would rather not change its "
        "signature.",
        "grep -rn \"sniff_delimiter\" /testbed/src /testbed/tests | head -20  # other callers?",
        "\n".join(grep_out),
    )
    old = """        if delimiter is None:
            sample = fh.read(SAMPLE_SIZE)
            fh.seek(0)
            delimiter = sniff_delimiter(sample)
"""
    new = """        if delimiter is None:
            sample = fh.read(SAMPLE_SIZE)
            fh.seek(0)
            # Comment lines are not data and must not take part in the vote:
            # a preamble such as "# exported by ..." has no delimiter at all,
            # which makes every candidate look inconsistent.
            data_lines = _strip_comments(sample.splitlines(keepends=True), comment)
            delimiter = sniff_delimiter("".join(data_lines))
"""
    reader2, obs = str_replace_obs(reader_path, reader, old, new)
    b.call(
        "`iter_rows` is the only caller, so the fix belongs there: filter the sample "
        "through the same `_strip_comments` helper that is applied to the rows. Using "
        "`splitlines(keepends=True)` keeps the line endings, so the sniffer's check for a "
        "truncated last line still sees whether the sample ended with a newline.",
        "str_replace_editor",
        {"command": "str_replace", "path": reader_path, "old_str": old, "new_str": new},
        obs,
    )
    b.bash(
        "Let me rerun the reproduction script.",
        "cd /testbed && python reproduce.py",
        "[{'id': '1', 'amount': '9.99', 'currency': 'EUR'}, {'id': '2', 'amount': '12.50', "
        "'currency': 'EUR'}]\nOK",
    )
    n_lines = len(lines_of(tests))
    b.call(
        "The rows are split correctly now. I'll add a regression test next to the existing "
        "comment test in tests/test_reader.py; let me look at the end of that file to "
        "follow its conventions (it uses a `write` fixture).",
        "str_replace_editor",
        {"command": "view", "path": test_path, "view_range": [n_lines - 16, n_lines]},
        view_obs(test_path, tests, (n_lines - 16, n_lines)),
    )
    old_t = """def test_comment_lines_skipped(write):
    path = write("# generated\\na,b\\n1,2\\n")
    assert read_csv(path, comment="#") == [{"a": "1", "b": "2"}]
"""
    new_t = old_t + """

def test_sniff_ignores_comment_lines(write):
    # Regression test for #412: a "#" preamble without any delimiter made
    # the sniffer fall back to "," for a semicolon-separated file.
    path = write(
        "# exported by billing-service v2.3\\n"
        "# columns: id;amount;currency\\n"
        "id;amount;currency\\n"
        "1;9.99;EUR\\n"
        "2;12.50;EUR\\n"
    )
    assert read_csv(path, comment="#") == [
        {"id": "1", "amount": "9.99", "currency": "EUR"},
        {"id": "2", "amount": "12.50", "currency": "EUR"},
    ]
"""
    tests2, obs = str_replace_obs(test_path, tests, old_t, new_t)
    b.call(
        "I'll insert the new test right after `test_comment_lines_skipped`, using the "
        "exact file from the issue.",
        "str_replace_editor",
        {"command": "str_replace", "path": test_path, "old_str": old_t, "new_str": new_t},
        obs,
    )
    b.bash(
        "Now the whole suite, to make sure the sniffer change didn't break the CLI or the "
        "writer tests.",
        "cd /testbed && python -m pytest -q",
        pytest_dots("." * 41) + "\n41 passed in 0.19s",
    )
    diff = git_diff(
        [("src/csvlite/reader.py", reader, reader2), ("tests/test_reader.py", tests, tests2)]
    )
    b.bash(
        "All 41 tests pass, including the new one. I'll remove the reproduction script "
        "and its temp file and review the final diff.",
        "cd /testbed && rm reproduce.py /tmp/export.csv && git status --short && git diff",
        " M src/csvlite/reader.py\n M tests/test_reader.py\n" + diff,
    )
    b.call(
        "The diff is minimal: the sample used for sniffing now goes through the same "
        "comment filter as the rows, and a regression test covers the exported file from "
        "the issue. Submitting.",
        "submit",
        {},
        None,
    )
    return {
        "id": iid,
        "messages": b.messages,
        "metadata": {"instance_id": iid, "repo": "lbrandt/csvkit-lite", "resolved": True},
    }


# --- 2. tinydate__87: mini-swe-agent style, "Z" suffix on Python < 3.11 ------

MINI_SYSTEM = """You are a helpful assistant that can interact with a computer.

Your response must contain exactly ONE bash code block with ONE command (or commands connected with && or ||).
Include a THOUGHT section before your command where you explain your reasoning process.
Format your response as shown in <format_example>.

<format_example>
THOUGHT: Your reasoning and analysis here. Explain why you want to perform the action.

```bash
your_command_here
```
</format_example>

Failure to follow these rules will cause your response to be rejected."""

MINI_INSTRUCTIONS = """<instructions>
# Task Instructions

## Overview
You're a software engineer interacting continuously with a computer by submitting commands.
You'll be helping implement necessary changes to meet requirements in the PR description.
Your task is specifically to make changes to non-test files in the current directory in order to fix the issue described in the PR description in a way that is general and consistent with the codebase.

IMPORTANT: This is an interactive process where you will think and issue ONE command, see its result, then think and issue your next command.

## Important Boundaries
- MODIFY: Regular source code files in /testbed (this is the working directory for all your subsequent commands)
- DO NOT MODIFY: Tests, configuration files (pyproject.toml, setup.cfg, etc.)

## Recommended Workflow
1. Analyze the codebase by finding and reading relevant files
2. Create a script to reproduce the issue
3. Edit the source code to resolve the issue
4. Verify your fix works by running your script again
5. Test edge cases to ensure your fix is robust

## Command Execution Rules
Each response should include a THOUGHT section and exactly ONE bash code block. Every command runs in a new subshell, so directory changes and environment variables do not persist. Commands must not be interactive. To create or edit files use shell tools such as `cat <<'EOF' > file`, `sed -i` or a `python - <<'EOF'` script.

## Submission
When you've completed your work, issue exactly the following command:

```bash
echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT && git add -A && git diff --cached
```

This command will submit your work. You cannot continue working on this task after submitting.
</instructions>"""

TD_PARSING = r'''"""Parse the date and time strings tinydate understands."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from typing import Optional

__all__ = ["ParseError", "parse"]

_RELATIVE = re.compile(r"^(?P<n>\d+)\s*(?P<unit>[smhdw])\s+ago$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class ParseError(ValueError):
    """The input is not a date or time tinydate understands."""


def parse(value: str, *, now: Optional[datetime] = None) -> datetime:
    """Parse ``value`` into a timezone-aware :class:`~datetime.datetime`.

    Accepted forms: ISO 8601 timestamps, ``YYYY-MM-DD`` dates (midnight
    UTC), the words ``now``, ``today`` and ``yesterday``, and relative
    offsets such as ``"3h ago"``. Naive timestamps are taken to be UTC.
    """
    text = value.strip()
    if now is None:
        now = datetime.now(timezone.utc)
    lowered = text.lower()
    if lowered == "now":
        return now
    if lowered in ("today", "yesterday"):
        day = now.date() - timedelta(days=1 if lowered == "yesterday" else 0)
        return _midnight(day)
    match = _RELATIVE.match(lowered)
    if match:
        return now - timedelta(**{_UNITS[match["unit"]]: int(match["n"])})
    return _parse_iso(text)


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)


def _parse_iso(text: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ParseError(f"unrecognised date: {text!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed
'''

TD_OLD = '''def _parse_iso(text: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text)
'''

TD_NEW = '''def _parse_iso(text: str) -> datetime:
    candidate = text
    # datetime.fromisoformat() only accepts a "Z" suffix from Python 3.11
    # on; spell it as an explicit UTC offset so that 3.8-3.10 agree.
    if candidate[-1:] in ("Z", "z"):
        candidate = candidate[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(candidate)
'''

TD_REPRO = '''from datetime import timedelta

from tinydate import parse
from tinydate.parsing import ParseError

values = [
    "2024-03-10T08:30:00Z",
    "2024-03-10T08:30:00.250z",
    "2024-03-10T08:30:00+02:00",
    "2024-03-10",
]
for value in values:
    print(f"{value!r:30} -> {parse(value).isoformat()}")

assert parse("2024-03-10T08:30:00Z").utcoffset() == timedelta(0)

try:
    parse("not a dateZ")
except ParseError as exc:
    print("error:", exc)
'''


def mini_obs(returncode, output):
    return f"<returncode>{returncode}</returncode>\n<output>\n{output}</output>"


def tinydate_87():
    iid = "tinydate__87"
    issue = """parse() rejects UTC timestamps with a trailing "Z" on Python < 3.11

`tinydate.parse("2024-03-10T08:30:00Z")` raises `ParseError: unrecognised date` on Python 3.8, 3.9 and 3.10, and works on 3.11+. The `Z` form is what JavaScript's `Date.prototype.toISOString()` and most HTTP APIs produce, so we hit this on every webhook payload.

Expected: the same aware datetime as for `2024-03-10T08:30:00+00:00`, on every Python version tinydate supports (`requires-python = ">=3.8"`)."""
    messages = [
        {"role": "system", "content": MINI_SYSTEM},
        {
            "role": "user",
            "content": "<pr_description>\nConsider the following PR description:\n"
            f"{issue}\n</pr_description>\n\n{MINI_INSTRUCTIONS}",
        },
    ]

    def step(thought, command, returncode, output):
        messages.append(
            {"role": "assistant", "content": f"THOUGHT: {thought}\n\n```bash\n{command}\n```"}
        )
        messages.append({"role": "user", "content": mini_obs(returncode, output)})

    step(
        "I need to understand the layout of the repository first: which modules exist and "
        "which Python versions the package claims to support.",
        'find . -name "*.py" -not -path "./.git/*" | sort && cat pyproject.toml',
        0,
        """./src/tinydate/__init__.py
./src/tinydate/format.py
./src/tinydate/parsing.py
./src/tinydate/ranges.py
./tests/conftest.py
./tests/test_format.py
./tests/test_parsing.py
./tests/test_ranges.py
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "tinydate"
version = "0.4.2"
description = "Small, dependency-free date parsing and formatting helpers"
requires-python = ">=3.8"
license = {text = "MIT"}

[tool.pytest.ini_options]
testpaths = ["tests"]
addopts = "-ra"
""",
    )
    step(
        "The parsing logic is in src/tinydate/parsing.py. Let me read it with line numbers.",
        "nl -ba src/tinydate/parsing.py",
        0,
        cat_n(TD_PARSING) + "\n",
    )
    step(
        "ISO strings end up in `_parse_iso`, which relies entirely on "
        "`datetime.fromisoformat`. Before Python 3.11 that function only understands the "
        "output format of `isoformat()`, which never contains `Z`. Let me confirm with the "
        "interpreter installed here.",
        "python --version && python -c \"from tinydate import parse; "
        "print(parse('2024-03-10T08:30:00Z'))\"",
        1,
        "Python 3.10.13\n"
        "Traceback (most recent call last):\n"
        '  File "<string>", line 1, in <module>\n'
        f'  File "/testbed/src/tinydate/parsing.py", line {line_no(TD_PARSING, "return _parse_iso(text)")}, in parse\n'
        "    return _parse_iso(text)\n"
        f'  File "/testbed/src/tinydate/parsing.py", line {line_no(TD_PARSING, "raise ParseError")}, in _parse_iso\n'
        '    raise ParseError(f"unrecognised date: {text!r}") from None\n'
        "tinydate.parsing.ParseError: unrecognised date: '2024-03-10T08:30:00Z'\n",
    )
    step(
        "Reproduced on 3.10. I want to make sure `_parse_iso` is the only place that calls "
        "`fromisoformat`, and see whether other modules (ranges) go through `parse`, so "
        "that one fix covers them too.",
        'grep -rn "fromisoformat\\|_parse_iso\\|parsing import" src/ tests/',
        0,
        f"src/tinydate/parsing.py:{line_no(TD_PARSING, 'return _parse_iso(text)')}:    return _parse_iso(text)\n"
        f"src/tinydate/parsing.py:{line_no(TD_PARSING, 'def _parse_iso')}:def _parse_iso(text: str) -> datetime:\n"
        f"src/tinydate/parsing.py:{line_no(TD_PARSING, 'fromisoformat(text)')}:        parsed = datetime.fromisoformat(text)\n"
        "src/tinydate/__init__.py:3:from .parsing import ParseError, parse\n"
        "src/tinydate/ranges.py:9:from .parsing import parse\n"
        "tests/test_parsing.py:5:from tinydate.parsing import ParseError, parse\n",
    )
    patch_script = (
        "python - <<'EOF'\n"
        "from pathlib import Path\n\n"
        'path = Path("src/tinydate/parsing.py")\n'
        "source = path.read_text()\n"
        f'old = """{TD_OLD}"""\n'
        f'new = """{TD_NEW}"""\n'
        "assert source.count(old) == 1\n"
        "path.write_text(source.replace(old, new))\n"
        'print("patched")\n'
        "EOF"
    )
    parsing2 = replace_once(TD_PARSING, TD_OLD, TD_NEW)
    step(
        "Everything funnels through `_parse_iso`, so I'll normalise a trailing `Z` (or `z`, "
        "which RFC 3339 also allows) to `+00:00` there, before calling `fromisoformat`. I'll "
        "keep the original text for the error message so users still see what they passed "
        "in. A small Python script makes the multi-line replacement safely.",
        patch_script,
        0,
        "patched\n",
    )
    parsing3 = replace_once(
        parsing2,
        "Naive timestamps are taken to be UTC.",
        "Naive timestamps are taken to be UTC;\n    a trailing ``Z`` means UTC too, on every supported Python.",
    )
    doc_start = line_no(parsing3, '"""Parse ``value``')
    doc_end = line_no(parsing3, "a trailing ``Z``") + 1
    step(
        "The docstring lists the accepted forms, so it should mention the `Z` suffix now "
        "that it works everywhere. A one-line sed is enough; I'll print the docstring "
        "afterwards to check the result.",
        "sed -i 's/Naive timestamps are taken to be UTC\\./Naive timestamps are taken to be "
        "UTC;\\n    a trailing ``Z`` means UTC too, on every supported Python./' "
        f"src/tinydate/parsing.py && sed -n '{doc_start},{doc_end}p' src/tinydate/parsing.py",
        0,
        "\n".join(lines_of(parsing3)[doc_start - 1 : doc_end]) + "\n",
    )
    rows = [
        ("2024-03-10T08:30:00Z", "2024-03-10T08:30:00+00:00"),
        ("2024-03-10T08:30:00.250z", "2024-03-10T08:30:00.250000+00:00"),
        ("2024-03-10T08:30:00+02:00", "2024-03-10T08:30:00+02:00"),
        ("2024-03-10", "2024-03-10T00:00:00+00:00"),
    ]
    out = "".join(f"{v!r:30} -> {iso}\n" for v, iso in rows)
    out += "error: unrecognised date: 'not a dateZ'\n"
    step(
        "Now a reproduction script with the case from the issue plus edge cases: fractional "
        "seconds with lowercase `z`, an explicit offset (must be unchanged), a plain date, "
        "and an invalid string ending in `Z` whose error message should show the original "
        "input.",
        f"cat <<'EOF' > /tmp/repro_z.py && python /tmp/repro_z.py\n{TD_REPRO}EOF",
        0,
        out,
    )
    step(
        "All cases behave as expected on 3.10. Let me run the full test suite to make sure "
        "nothing regressed.",
        "python -m pytest -q 2>&1 | tail -n 15  # full suite; -ra in addopts lists skips",
        0,
        pytest_dots("." * 55 + "s" + "..")
        + "\n=========================== short test summary info ============================\n"
        "SKIPPED [1] tests/test_format.py:61: zoneinfo database not available\n"
        "57 passed, 1 skipped in 0.16s\n",
    )
    diff = git_diff([("src/tinydate/parsing.py", TD_PARSING, parsing3)])
    step(
        "Tests pass (the skip is an unrelated zoneinfo test). Let me review the diff "
        "before submitting.",
        "git diff",
        0,
        diff,
    )
    messages.append(
        {
            "role": "assistant",
            "content": "THOUGHT: The change is minimal and covers every caller, since `parse` "
            "and the range helpers all go through `_parse_iso`. Submitting.\n\n```bash\n"
            "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT && git add -A && git diff --cached\n```",
        }
    )
    messages.append({"role": "user", "content": diff})
    return {
        "id": iid,
        "messages": messages,
        "metadata": {"instance_id": iid, "repo": "tinydate/tinydate", "resolved": True},
    }


# --- 3. objpath__63: TypeScript, setPath index 0 ------------------------------

OP_PATH = r'''/**
 * Dotted-path access to nested values: "user.addresses[0].city".
 */

export type PathKey = string | number;

const INDEX = /\[(\d+)\]/g;

/**
 * Split a path into keys: "a.b[0].c" -> ["a", "b", 0, "c"].
 * Array indices become numbers, everything else stays a string.
 */
export function parsePath(path: string): PathKey[] {
  const keys: PathKey[] = [];
  for (const part of path.split(".")) {
    const bracket = part.indexOf("[");
    const name = bracket === -1 ? part : part.slice(0, bracket);
    if (name !== "") keys.push(name);
    if (bracket !== -1) {
      for (const match of part.slice(bracket).matchAll(INDEX)) {
        keys.push(Number(match[1]));
      }
    }
  }
  return keys;
}

/** Read the value at `path`, or `fallback` when any step is missing. */
export function getPath<T = unknown>(obj: unknown, path: string, fallback?: T): T | undefined {
  let current: any = obj;
  for (const key of parsePath(path)) {
    if (current === null || current === undefined) return fallback;
    current = current[key];
  }
  return current === undefined ? fallback : (current as T);
}

/**
 * Write `value` at `path`, creating missing containers on the way:
 * an array when the next key is an index, a plain object otherwise.
 * Mutates and returns `obj`.
 */
export function setPath<T extends object>(obj: T, path: string, value: unknown): T {
  const keys = parsePath(path);
  if (keys.length === 0) throw new TypeError(`empty path: ${JSON.stringify(path)}`);
  let current: any = obj;
  for (let i = 0; i < keys.length - 1; i++) {
    const key = keys[i];
    if (current[key] === undefined || current[key] === null) {
      const next = keys[i + 1];
      const index = typeof next === "number" ? next : undefined;
      current[key] = index ? [] : {};
    }
    current = current[key];
  }
  current[keys[keys.length - 1]] = value;
  return obj;
}

/** Remove the value at `path`; returns whether something was removed. */
export function deletePath(obj: object, path: string): boolean {
  const keys = parsePath(path);
  const last = keys.pop();
  let parent: any = obj;
  for (const key of keys) {
    if (parent === null || parent === undefined) return false;
    parent = parent[key];
  }
  if (last === undefined || parent === null || typeof parent !== "object" || !(last in parent)) {
    return false;
  }
  return delete parent[last];
}
'''

OP_SET_TEST = r'''import { setPath } from "../src";

describe("setPath", () => {
  it("sets a top-level key", () => {
    expect(setPath({}, "a", 1)).toEqual({ a: 1 });
  });

  it("creates nested objects", () => {
    expect(setPath({}, "a.b.c", true)).toEqual({ a: { b: { c: true } } });
  });

  it("keeps existing siblings", () => {
    const obj = { a: { keep: "me" } };
    setPath(obj, "a.b", 2);
    expect(obj).toEqual({ a: { keep: "me", b: 2 } });
  });

  it("creates arrays for index keys", () => {
    const obj: any = setPath({}, "list[1].name", "x");
    expect(Array.isArray(obj.list)).toBe(true);
    expect(obj.list[1]).toEqual({ name: "x" });
  });

  it("writes into existing arrays", () => {
    const obj = { list: [{ name: "a" }, { name: "b" }] };
    setPath(obj, "list[1].name", "z");
    expect(obj.list.map((item) => item.name)).toEqual(["a", "z"]);
  });

  it("replaces null on the way", () => {
    expect(setPath({ a: null }, "a.b", 1)).toEqual({ a: { b: 1 } });
  });

  it("returns the same object", () => {
    const obj = {};
    expect(setPath(obj, "x", 1)).toBe(obj);
  });

  it("rejects an empty path", () => {
    expect(() => setPath({}, "", 1)).toThrow(TypeError);
  });
});
'''

OP_REPRO = '''import { deepStrictEqual, ok } from "node:assert";
import { setPath } from "./src";

const zero = setPath({}, "rows[0].id", 1);
const one = setPath({}, "rows[1].id", 1);
console.log("rows[0]:", JSON.stringify(zero));
console.log("rows[1]:", JSON.stringify(one));
deepStrictEqual(zero, { rows: [{ id: 1 }] });
const grid: any = setPath({}, "m[0][0]", "x");
ok(Array.isArray(grid.m) && Array.isArray(grid.m[0]));
console.log("ok");
'''


def objpath_63():
    iid = "objpath__63"
    issue = """setPath creates an object instead of an array for index 0

```js
const { setPath } = require("objpath");

setPath({}, "rows[0].id", 1);
// => { rows: { "0": { id: 1 } } }      expected { rows: [ { id: 1 } ] }

setPath({}, "rows[1].id", 1);
// => { rows: [ <1 empty item>, { id: 1 } ] }   (array, as expected)
```

Whether the container is an array depends on the value of the first index written. Building a payload with `setPath(body, "items[0].sku", ...)` and sending `JSON.stringify(body)` gives `{"items":{"0":{...}}}`, which our API rejects. objpath 2.1.0, Node 20."""
    b = ChatBuilder(
        issue,
        "Resolve the issue above in the repository at /testbed (a TypeScript package). Add a "
        "regression test and make sure the existing tests and the type check still pass.",
    )
    src = "/testbed/src/path.ts"
    test = "/testbed/test/set.test.ts"
    b.bash(
        "This is a TypeScript package. Let me look at the top level and the package "
        "manifest to learn how it is built and tested.",
        "ls -la /testbed && cat /testbed/package.json",
        """total 232
drwxr-xr-x   7 root root   4096 Mar  2 09:58 .
drwxr-xr-x   1 root root   4096 Mar  2 09:58 ..
-rw-r--r--   1 root root    331 Mar  2 09:58 .eslintrc.json
drwxr-xr-x   8 root root   4096 Mar  2 09:58 .git
-rw-r--r--   1 root root     32 Mar  2 09:58 .gitignore
-rw-r--r--   1 root root   1071 Mar  2 09:58 LICENSE
-rw-r--r--   1 root root   2874 Mar  2 09:58 README.md
-rw-r--r--   1 root root    127 Mar  2 09:58 jest.config.js
drwxr-xr-x 281 root root  12288 Mar  2 09:59 node_modules
-rw-r--r--   1 root root 171520 Mar  2 09:59 package-lock.json
-rw-r--r--   1 root root    642 Mar  2 09:58 package.json
drwxr-xr-x   2 root root   4096 Mar  2 09:58 src
drwxr-xr-x   2 root root   4096 Mar  2 09:58 test
-rw-r--r--   1 root root    108 Mar  2 09:58 tsconfig.build.json
-rw-r--r--   1 root root    318 Mar  2 09:58 tsconfig.json
{
  "name": "objpath",
  "version": "2.1.0",
  "description": "Get and set deeply nested values with dotted paths",
  "main": "dist/index.js",
  "types": "dist/index.d.ts",
  "files": ["dist"],
  "scripts": {
    "build": "tsc -p tsconfig.build.json",
    "test": "jest",
    "lint": "eslint src test"
  },
  "license": "MIT",
  "devDependencies": {
    "@types/jest": "^29.5.12",
    "@types/node": "^20.12.7",
    "eslint": "^8.57.0",
    "jest": "^29.7.0",
    "ts-jest": "^29.1.2",
    "ts-node": "^10.9.2",
    "typescript": "^5.4.5"
  }
}""",
    )
    b.bash(
        "Jest with ts-jest, and ts-node is available for quick scripts. Let me list the "
        "sources and tests.",
        "cd /testbed && find src test -type f | sort && wc -l src/*.ts",
        "src/index.ts\nsrc/path.ts\ntest/delete.test.ts\ntest/get.test.ts\n"
        "test/parse.test.ts\ntest/set.test.ts\n"
        f"    2 src/index.ts\n   {len(lines_of(OP_PATH))} src/path.ts\n"
        f"   {len(lines_of(OP_PATH)) + 2} total",
    )
    b.call(
        "All the logic lives in src/path.ts (index.ts only re-exports). Let me read it.",
        "str_replace_editor",
        {"command": "view", "path": src},
        view_obs(src, OP_PATH),
    )
    b.call(
        "Found a likely culprit in `setPath`: when a container is missing it computes "
        "`index` (the next key if it is a number) and then tests `index ? [] : {}`. For "
        "index 0 that test is falsy, so an object is created. Let me reproduce it with a "
        "small ts-node script before changing anything.",
        "str_replace_editor",
        {"command": "create", "path": "/testbed/repro.ts", "file_text": OP_REPRO},
        "File created successfully at: /testbed/repro.ts",
    )
    b.bash(
        "Run it with ts-node.",
        "cd /testbed && npx ts-node repro.ts",
        """rows[0]: {"rows":{"0":{"id":1}}}
rows[1]: {"rows":[null,{"id":1}]}
node:assert:126
  throw new AssertionError(obj);
  ^
AssertionError [ERR_ASSERTION]: Expected values to be strictly deep-equal:
+ actual - expected

  {
+   rows: {
+     '0': {
+       id: 1
+     }
+   }
-   rows: [
-     {
-       id: 1
-     }
-   ]
  }
    at Object.<anonymous> (/testbed/repro.ts:8:1)
    at Module._compile (node:internal/modules/cjs/loader:1358:14)
    at Module.m._compile (/testbed/node_modules/ts-node/src/index.ts:1618:23)
    at Module._extensions..js (node:internal/modules/cjs/loader:1416:10)
    at Object.require.extensions.<computed> [as .ts] (/testbed/node_modules/ts-node/src/index.ts:1621:12)
    at Module.load (node:internal/modules/cjs/loader:1208:32)
    at Module._load (node:internal/modules/cjs/loader:1024:12)
    at Function.executeUserEntryPoint [as runMain] (node:internal/modules/run_main:174:12)
    at phase4 (/testbed/node_modules/ts-node/src/bin.ts:649:14)
    at bootstrap (/testbed/node_modules/ts-node/src/bin.ts:95:10) {
  generatedMessage: true,
  code: 'ERR_ASSERTION',
  actual: { rows: { '0': { id: 1 } } },
  expected: { rows: [ { id: 1 } ] },
  operator: 'deepStrictEqual'
}

Node.js v20.14.0""",
    )
    b.bash(
        "Reproduced: index 0 yields an object, index 1 an array. The existing test "
        "'creates arrays for index keys' uses `list[1]`, which explains why CI never caught "
        "this. Let me check whether any test exercises index 0 at all.",
        'cd /testbed && grep -rn "\\[0\\]" test/  # is index 0 covered anywhere?',
        'test/get.test.ts:9:    expect(getPath({ a: [{ b: 1 }] }, "a[0].b")).toBe(1);\n'
        'test/get.test.ts:13:    expect(getPath({ a: [[1, 2]] }, "a[0][1]")).toBe(2);\n'
        'test/parse.test.ts:6:    expect(parsePath("a.b[0].c")).toEqual(["a", "b", 0, "c"]);\n'
        'test/parse.test.ts:10:    expect(parsePath("[0][1]")).toEqual([0, 1]);\n'
        'test/delete.test.ts:15:    expect(deletePath(obj, "list[0]")).toBe(true);',
    )
    old = """    if (current[key] === undefined || current[key] === null) {
      const next = keys[i + 1];
      const index = typeof next === "number" ? next : undefined;
      current[key] = index ? [] : {};
    }
"""
    new = """    if (current[key] === undefined || current[key] === null) {
      // Decide on the type of the next key, not its value: index 0 is
      // falsy, and testing the index itself turned "rows[0]" into { "0": ... }.
      current[key] = typeof keys[i + 1] === "number" ? [] : {};
    }
"""
    path2, obs = str_replace_obs(src, OP_PATH, old, new)
    b.call(
        "Only getters, the parser and delete use index 0; setPath never does. The fix is "
        "to decide on the key's type, which `parsePath` already encodes (indices are "
        "numbers, names are strings), instead of on its truthiness. That also removes the "
        "intermediate variables.",
        "str_replace_editor",
        {"command": "str_replace", "path": src, "old_str": old, "new_str": new},
        obs,
    )
    b.bash(
        "Rerun the reproduction, which also checks nested index 0 (`m[0][0]`).",
        "cd /testbed && npx ts-node repro.ts",
        'rows[0]: {"rows":[{"id":1}]}\nrows[1]: {"rows":[null,{"id":1}]}\nok',
    )
    n = len(lines_of(OP_SET_TEST))
    b.call(
        "Fixed. Now a regression test in test/set.test.ts; let me view the end of the file "
        "to add it in the same style.",
        "str_replace_editor",
        {"command": "view", "path": test, "view_range": [n - 12, n]},
        view_obs(test, OP_SET_TEST, (n - 12, n)),
    )
    old_t = """  it("rejects an empty path", () => {
    expect(() => setPath({}, "", 1)).toThrow(TypeError);
  });
});
"""
    new_t = """  it("rejects an empty path", () => {
    expect(() => setPath({}, "", 1)).toThrow(TypeError);
  });

  it("creates an array for index 0", () => {
    // Regression test for #63: index 0 used to create { "0": ... }.
    const obj: any = setPath({}, "rows[0].id", 1);
    expect(obj).toEqual({ rows: [{ id: 1 }] });
    expect(Array.isArray(obj.rows)).toBe(true);
    const grid: any = setPath({}, "m[0][0]", "x");
    expect(grid).toEqual({ m: [["x"]] });
  });
});
"""
    test2, obs = str_replace_obs(test, OP_SET_TEST, old_t, new_t)
    b.call(
        "I'll add the test after the last one. `toEqual` already tells an array from an "
        "object, but an explicit `Array.isArray` check makes the intent of the regression "
        "test obvious, and the nested `m[0][0]` case covers index 0 below the top level.",
        "str_replace_editor",
        {"command": "str_replace", "path": test, "old_str": old_t, "new_str": new_t},
        obs,
    )
    b.bash(
        "Remove the scratch script, then run the type check and the whole test suite.",
        "cd /testbed && rm repro.ts && npx tsc --noEmit && npx jest 2>&1 | tail -n 12",
        """PASS test/set.test.ts
PASS test/parse.test.ts
PASS test/get.test.ts
PASS test/delete.test.ts

Test Suites: 4 passed, 4 total
Tests:       31 passed, 31 total
Snapshots:   0 total
Time:        2.114 s
Ran all test suites.""",
    )
    diff = git_diff([("src/path.ts", OP_PATH, path2), ("test/set.test.ts", OP_SET_TEST, test2)])
    b.bash(
        "Type check and all 31 tests pass. Final review of the diff.",
        "cd /testbed && git status --short && git diff",
        " M src/path.ts\n M test/set.test.ts\n" + diff,
    )
    b.call(
        "The fix is a one-line change in `setPath` plus a regression test covering index 0 "
        "at the top and in nested positions. Submitting.",
        "submit",
        {},
        None,
    )
    return {
        "id": iid,
        "messages": b.messages,
        "metadata": {"instance_id": iid, "repo": "objpath-js/objpath", "resolved": True},
    }


# ---------------------------------------------------------------------------
# SWE-agent 0.7 (.traj)
# ---------------------------------------------------------------------------

SWE_SYSTEM = """SETTING: You are an autonomous programmer, and you're working directly in the command line with a special interface.

The special interface consists of a file editor that shows you 100 lines of a file at a time.
In addition to typical bash commands, you can also use the following commands to help you navigate and edit files.

COMMANDS:
open:
  docstring: opens the file at the given path in the editor. If line_number is provided, the window will be moved to include that line
  signature: open <path> [<line_number>]

goto:
  docstring: moves the window to show <line_number>
  signature: goto <line_number>

scroll_down:
  docstring: moves the window down 100 lines
  signature: scroll_down

scroll_up:
  docstring: moves the window up 100 lines
  signature: scroll_up

create:
  docstring: creates and opens a new file with the given name
  signature: create <filename>

edit:
  docstring: replaces lines <start_line> through <end_line> (inclusive) with the given text in the open file. The replacement text is terminated by a line with only end_of_edit on it. All of the <replacement_text> will be entered, so make sure your indentation is formatted properly. Python files will be checked for syntax errors after the edit; if the check fails, the edit is not applied.
  signature: edit <start_line>:<end_line>
<replacement_text>
end_of_edit

search_dir:
  docstring: searches for search_term in all files in dir. If dir is not provided, searches in the current directory
  signature: search_dir <search_term> [<dir>]

search_file:
  docstring: searches for search_term in file. If file is not provided, searches in the current open file
  signature: search_file <search_term> [<file>]

find_file:
  docstring: finds all files with the given name in dir. If dir is not provided, searches in the current directory
  signature: find_file <file_name> [<dir>]

submit:
  docstring: submits your current code and terminates the session
  signature: submit

Please note that THE EDIT COMMAND REQUIRES PROPER INDENTATION. If you'd like to add the line '        print(x)' you must fully write that out, with all those spaces before the code!

RESPONSE FORMAT:
Your shell prompt is formatted as follows:
(Open file: <path>) <cwd> $

You need to format your output using two fields; discussion and command.
Your output should always include _one_ discussion and _one_ command field EXACTLY as in the following example:
DISCUSSION
First I'll start by using ls to see what files are in the current directory. Then maybe we can look at some relevant files to see what they look like.
```
ls -a
```

You should only include a *SINGLE* command in the command section and then wait for a response from the shell before continuing with more discussion and commands. You're free to use any other bash commands you want (e.g. find, grep, cat, ls, cd) in addition to the special commands listed above. However, the environment does NOT support interactive session commands (e.g. python, vim), so please do not invoke them."""

SWE_INSTANCE = """We're currently solving the following issue within our repository. Here's the issue text:
ISSUE:
{issue}

INSTRUCTIONS:
Now, you're going to solve this issue on your own. Your terminal session has started and you're in the repository's root directory. You can use any bash commands or the special interface to help you. Edit all the files you need to and run any checks or tests that you want.
Remember, YOU CAN ONLY ENTER ONE COMMAND AT A TIME. You should always wait for feedback after every command.
When you're satisfied with all of the changes you've made, you can submit your changes to the code base by simply running the submit command.
Note however that you cannot use any interactive session commands (e.g. python, vim) in this environment, but you can write scripts and run them. E.g. you can write a python script and then run it with `python <script_name>.py`.

NOTE ABOUT THE EDIT COMMAND: Indentation really matters! When editing a file, make sure to insert appropriate indentation before each line!

IMPORTANT TIPS:
1. Always start by trying to replicate the bug that the issue discusses. If the issue includes code for reproducing the bug, implement it in your environment and run it to make sure you can reproduce the bug, then start fixing it. When you think you've fixed the bug, re-run the script to make sure it is fixed.
2. If you run a command and it doesn't work, try running a different command. A command that did not work once will not work the second time unless you modify it!
3. If you open a file and need to get to an area around a specific line that is not in the first 100 lines, say line 583, don't just use the scroll_down command multiple times. Use the goto 583 command instead.
4. Always make sure to look at the currently open file and the current working directory (which appears right after the currently open file). The currently open file might be in a different directory than the working directory!
5. When editing files, it is easy to accidentally specify a wrong line number or to write code with incorrect indentation. Always check the code after you issue an edit to make sure that it reflects what you wanted to accomplish. If it didn't, issue another command to fix it.

(Open file: n/a)
(Current directory: /repo)
bash-$"""

SWE_UPDATED = (
    "File updated. Please review the changes and make sure they are correct (correct "
    "indentation, no duplicate lines, etc). Edit the file again if necessary."
)


class SweBuilder:
    """Builds a SWE-agent 0.7 trajectory, simulating its windowed editor."""

    WINDOW = 100

    def __init__(self, issue, files):
        self.files = dict(files)  # relative path -> text
        self.open_file = None
        self.current_line = 1
        self.trajectory = []
        self.history = [
            {"role": "system", "content": SWE_SYSTEM, "agent": "primary"},
            {"role": "user", "content": SWE_INSTANCE.format(issue=issue), "agent": "primary"},
        ]

    def _abs(self, rel):
        return "/repo/" + rel

    def window(self):
        text = self.files[self.open_file]
        ls = lines_of(text) or [""]
        total, half = len(ls), self.WINDOW // 2
        cur = max(min(self.current_line, total - half), half)
        above, below = max(0, cur - half), max(0, total - cur - half)
        last = min(max(cur + half, half), total)
        first = max(1, last - self.WINDOW + 1)
        out = [f"[File: {self._abs(self.open_file)} ({total} lines total)]"]
        if above > 0:
            out.append(f"({above} more lines above)")
        out += [f"{i}:{ls[i - 1]}" for i in range(first, last + 1)]
        if below > 0:
            out.append(f"({below} more lines below)")
        return "\n".join(out)

    def open(self, rel, line=None):
        self.open_file, self.current_line = rel, line or self.WINDOW // 2
        return self.window()

    def create(self, rel):
        self.files[rel] = "\n"
        return self.open(rel)

    def edit(self, start, end, replacement):
        ls = lines_of(self.files[self.open_file])
        ls[start - 1 : end] = replacement.split("\n")
        self.files[self.open_file] = "\n".join(ls) + "\n"
        self.current_line = start
        return self.window() + "\n" + SWE_UPDATED

    def step(self, thought, action, observation, seconds):
        response = f"DISCUSSION\n{thought}\n\n```\n{action}\n```"
        open_file = self._abs(self.open_file) if self.open_file else "n/a"
        self.trajectory.append(
            {
                "response": response,
                "thought": f"DISCUSSION\n{thought}\n",
                "action": f"{action}\n",
                "observation": observation,
                "state": json.dumps({"open_file": open_file, "working_dir": "/repo"}),
                "execution_time": seconds,
            }
        )
        self.history.append(
            {
                "role": "assistant",
                "content": response,
                "thought": f"DISCUSSION\n{thought}\n",
                "action": f"{action}\n",
                "agent": "primary",
            }
        )
        if action != "submit":
            shown = observation or (
                "Your command ran successfully and did not produce any output."
            )
            self.history.append(
                {
                    "role": "user",
                    "content": f"{shown}\n(Open file: {open_file})\n(Current directory: /repo)\nbash-$",
                    "agent": "primary",
                }
            )

    def result(self, submission, stats):
        return {
            "environment": "swe_main",
            "trajectory": self.trajectory,
            "history": self.history,
            "info": {"exit_status": "submitted", "submission": submission, "model_stats": stats},
        }


# --- 4. confload__203: ${NAME:-fallback} not expanded ------------------------

CL_INTERP = r'''"""Expand environment variable references in configuration values."""

from __future__ import annotations

import os
import re
from typing import Any, Mapping, Optional

# ${NAME} or ${NAME:-fallback}; "$$" is a literal dollar sign.
_PATTERN = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class InterpolationError(KeyError):
    """A referenced variable is not set and has no fallback."""


def interpolate(value: Any, env: Optional[Mapping[str, str]] = None) -> Any:
    """Expand ``${NAME}`` references in ``value``.

    Strings are expanded; dicts and lists are walked recursively and
    rebuilt; anything else is returned unchanged. ``env`` defaults to
    :data:`os.environ`.
    """
    if env is None:
        env = os.environ
    if isinstance(value, str):
        return _expand(value, env)
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    return value


def _expand(text: str, env: Mapping[str, str]) -> str:
    def replace(match: "re.Match[str]") -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        try:
            return env[name]
        except KeyError:
            raise InterpolationError(name) from None

    return _PATTERN.sub(replace, text)
'''

CL_TEST = r'''import pytest

from confload.interpolate import InterpolationError, interpolate


def test_plain_reference():
    assert interpolate("${HOME}", env={"HOME": "/root"}) == "/root"


def test_reference_inside_text():
    assert interpolate("hello ${USER}!", env={"USER": "ada"}) == "hello ada!"


def test_nested_structures():
    env = {"A": "1", "B": "2"}
    value = {"x": ["${A}", {"y": "${B}"}], "n": 3}
    assert interpolate(value, env=env) == {"x": ["1", {"y": "2"}], "n": 3}


def test_dollar_escape():
    assert interpolate("price: $$10", env={}) == "price: $10"


def test_missing_variable_raises():
    with pytest.raises(InterpolationError) as info:
        interpolate("${NOPE}", env={})
    assert info.value.args == ("NOPE",)


def test_non_strings_untouched():
    assert interpolate(8080, env={}) == 8080
    assert interpolate(None, env={}) is None
'''

CL_REPRO = '''from confload.interpolate import interpolate

env = {"HOST": "0.0.0.0"}
config = {
    "server": {"host": "${HOST:-127.0.0.1}", "port": "${PORT:-8080}"},
    "motd": "costs $$5 on ${WEEKDAY:-}",
}
result = interpolate(config, env=env)
print(result)
assert result["server"] == {"host": "0.0.0.0", "port": "8080"}, result
assert result["motd"] == "costs $5 on ", result
print("Script completed successfully, no errors.")'''


def confload_203():
    iid = "confload__203"
    issue = """`${VAR:-default}` fallbacks from the README are not expanded

The README says config values may use `${NAME:-fallback}` to fall back to a default when the environment variable is unset, but the fallback form is left untouched and then fails schema coercion:

```yaml
# app.yaml
server:
  host: ${HOST:-127.0.0.1}
  port: ${PORT:-8080}
```

```
>>> import confload
>>> confload.load("app.yaml", schema=AppConfig)
Traceback (most recent call last):
  ...
  File ".../confload/schema.py", line 58, in _coerce
    return int(value)
ValueError: invalid literal for int() with base 10: '${PORT:-8080}'
```

Plain `${PORT}` works when PORT is set. confload 1.3.0, Python 3.9."""
    s = SweBuilder(
        issue,
        {"src/confload/interpolate.py": CL_INTERP, "tests/test_interpolate.py": CL_TEST},
    )
    s.step(
        "Let me start by looking at the repository layout to find where interpolation of "
        "environment variables is implemented.",
        "ls -F",
        "CHANGELOG.md\nLICENSE\nREADME.md\ndocs/\npyproject.toml\nsrc/\ntests/\ntox.ini",
        0.11,
    )
    n_interp = sum("interpolate" in line for line in lines_of(CL_INTERP))
    s.step(
        "The package is under src/. I'll search for the interpolation code.",
        'search_dir "interpolate" src',
        f'Found {n_interp + 3} matches for "interpolate" in /repo/src:\n'
        "/repo/src/confload/__init__.py (2 matches)\n"
        f"/repo/src/confload/interpolate.py ({n_interp} matches)\n"
        "/repo/src/confload/loader.py (1 matches)\n"
        'End of matches for "interpolate" in /repo/src',
        0.13,
    )
    obs = s.create("reproduce.py")
    s.step(
        "interpolate.py holds the implementation; loader.py just calls it. First I'll "
        "reproduce the problem directly against `interpolate`, including an empty fallback "
        "and the `$$` escape.",
        "create reproduce.py",
        obs,
        0.14,
    )
    obs = s.edit(1, 1, CL_REPRO)
    s.step(
        "Now I'll write the reproduction code.",
        f"edit 1:1\n{CL_REPRO}\nend_of_edit",
        obs,
        0.42,
    )
    bad = (
        "{'server': {'host': '${HOST:-127.0.0.1}', 'port': '${PORT:-8080}'}, "
        "'motd': 'costs $5 on ${WEEKDAY:-}'}"
    )
    s.step(
        "Let's run it.",
        "python reproduce.py",
        f"{bad}\nTraceback (most recent call last):\n"
        f'  File "/repo/reproduce.py", line {line_no(CL_REPRO, "assert result[")}, in <module>\n'
        '    assert result["server"] == {"host": "0.0.0.0", "port": "8080"}, result\n'
        f"AssertionError: {bad}",
        0.19,
    )
    pat = line_no(CL_INTERP, "_PATTERN = re.compile")
    obs = s.open("src/confload/interpolate.py")
    s.step(
        "Confirmed: none of the fallback references are expanded, while `$$` works. "
        "Let me read the implementation.",
        "open src/confload/interpolate.py",
        obs,
        0.15,
    )
    new_pat = '_PATTERN = re.compile(r"\\$\\$|\\$\\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\\}")'
    obs = s.edit(pat, pat, new_pat)
    s.step(
        "The comment above the pattern promises `${NAME:-fallback}`, but the regex only "
        "matches `${NAME}`, so a fallback reference never matches and is left verbatim. "
        "I'll extend the pattern with an optional non-capturing `:-` part whose text "
        "(anything up to the closing brace, possibly empty) becomes group 2.",
        f"edit {pat}:{pat}\n{new_pat}\nend_of_edit",
        obs,
        0.38,
    )
    text = s.files["src/confload/interpolate.py"]
    start = line_no(text, "name = match.group(1)")
    end = line_no(text, "raise InterpolationError(name) from None")
    body = """        name, fallback = match.group(1), match.group(2)
        value = env.get(name)
        # Like the shell's ":-", the fallback also applies when the
        # variable is set but empty (e.g. "PORT=" in a .env file).
        if not value and fallback is not None:
            return fallback
        if value is None:
            raise InterpolationError(name)
        return value"""
    obs = s.edit(start, end, body)
    s.step(
        "Now `replace` has to use the fallback. I'll follow shell semantics for `:-`: the "
        "fallback applies when the variable is unset or empty. A reference without a "
        "fallback keeps raising `InterpolationError` when the variable is unset, and an "
        "empty value without a fallback still expands to an empty string as before.",
        f"edit {start}:{end}\n{body}\nend_of_edit",
        obs,
        0.41,
    )
    s.step(
        "Let me rerun the reproduction script.",
        "python reproduce.py",
        "{'server': {'host': '0.0.0.0', 'port': '8080'}, 'motd': 'costs $5 on '}\n"
        "Script completed successfully, no errors.",
        0.18,
    )
    obs = s.open("tests/test_interpolate.py")
    s.step(
        "The fallbacks work, including the empty one, and `$$` is still an escape. Let me "
        "add tests to the existing test module; opening it first.",
        "open tests/test_interpolate.py",
        obs,
        0.15,
    )
    tl = len(lines_of(s.files["tests/test_interpolate.py"]))
    new_tests = '''    assert interpolate(None, env={}) is None


@pytest.mark.parametrize(
    "env, expected",
    [
        ({}, "8080"),  # unset: fallback
        ({"PORT": ""}, "8080"),  # set but empty: fallback too, like the shell
        ({"PORT": "9000"}, "9000"),
    ],
)
def test_fallback(env, expected):
    assert interpolate("${PORT:-8080}", env=env) == expected


def test_fallback_keeps_special_characters():
    # "#" and ":" inside a fallback are kept verbatim
    assert interpolate("${COLOR:-#ff0000}", env={}) == "#ff0000"
    assert interpolate("${URL:-http://localhost:80}", env={}) == "http://localhost:80"
    assert interpolate("${EMPTY:-}", env={}) == ""
    assert interpolate("$${PORT:-1}", env={}) == "${PORT:-1}"'''
    obs = s.edit(tl, tl, new_tests)
    s.step(
        "I'll append the tests after the last line: unset, empty and set variables, plus "
        "fallbacks containing `#` and `:` and the `$$` escape in front of a fallback "
        "reference.",
        f"edit {tl}:{tl}\n{new_tests}\nend_of_edit",
        obs,
        0.44,
    )
    s.step(
        "Now let me run the whole test suite.",
        "pytest tests -q",
        pytest_dots("." * 46) + "\n46 passed in 0.37s",
        1.21,
    )
    s.step(
        "All tests pass. Let me remove the reproduction script.",
        "rm reproduce.py",
        "",
        0.1,
    )
    s.files.pop("reproduce.py")
    diff = git_diff(
        [
            ("src/confload/interpolate.py", CL_INTERP, s.files["src/confload/interpolate.py"]),
            ("tests/test_interpolate.py", CL_TEST, s.files["tests/test_interpolate.py"]),
        ]
    )
    s.step(
        "The fix is in place and covered by tests; submitting.",
        "submit",
        diff,
        0.32,
    )
    stats = {
        "total_cost": 0.41,
        "instance_cost": 0.41,
        "tokens_sent": 81234,
        "tokens_received": 1520,
        "api_calls": len(s.trajectory),
    }
    return iid, s.result(diff, stats)


# --- 5. semverlite__77: numeric prerelease identifiers compared as strings ---

SV_VERSION = r'''"""Semantic version parsing and comparison (https://semver.org)."""

from __future__ import annotations

import re
from functools import total_ordering
from typing import Iterable

__all__ = ["Version", "InvalidVersion", "parse"]

_SEMVER = re.compile(
    r"""
    ^v?
    (?P<major>0|[1-9]\d*)\.
    (?P<minor>0|[1-9]\d*)\.
    (?P<patch>0|[1-9]\d*)
    (?:-(?P<prerelease>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?
    (?:\+(?P<build>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?
    $
    """,
    re.VERBOSE,
)


class InvalidVersion(ValueError):
    """The string is not a valid semantic version."""


@total_ordering
class Version:
    """An immutable semantic version.

    Build metadata is kept for display but ignored when comparing and
    hashing, as the specification requires.
    """

    __slots__ = ("major", "minor", "patch", "prerelease", "build")

    def __init__(
        self,
        major: int,
        minor: int = 0,
        patch: int = 0,
        prerelease: Iterable[str] = (),
        build: Iterable[str] = (),
    ) -> None:
        self.major = int(major)
        self.minor = int(minor)
        self.patch = int(patch)
        self.prerelease = tuple(prerelease)
        self.build = tuple(build)

    @classmethod
    def parse(cls, text: str) -> "Version":
        match = _SEMVER.match(text.strip())
        if match is None:
            raise InvalidVersion(f"invalid semantic version: {text!r}")
        pre, build = match["prerelease"], match["build"]
        return cls(
            match["major"],
            match["minor"],
            match["patch"],
            pre.split(".") if pre else (),
            build.split(".") if build else (),
        )

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(self.prerelease)
        if self.build:
            text += "+" + ".".join(self.build)
        return text

    def __repr__(self) -> str:
        return f"Version({str(self)!r})"

    def __hash__(self) -> int:
        return hash(self._key())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            other = Version.parse(other)
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() == other._key()

    def __lt__(self, other: object) -> bool:
        if isinstance(other, str):
            other = Version.parse(other)
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() < other._key()

    def _key(self):
        # A version without a prerelease sorts after all of its
        # prereleases: 1.0.0-alpha < 1.0.0.
        if self.prerelease:
            return (self.major, self.minor, self.patch, 0, self.prerelease)
        return (self.major, self.minor, self.patch, 1, ())

    @property
    def is_prerelease(self) -> bool:
        return bool(self.prerelease)

    def bump_major(self) -> "Version":
        return Version(self.major + 1, 0, 0)

    def bump_minor(self) -> "Version":
        return Version(self.major, self.minor + 1, 0)

    def bump_patch(self) -> "Version":
        if self.prerelease:
            # 1.2.3-rc.1 -> 1.2.3: releasing a prerelease keeps the number.
            return Version(self.major, self.minor, self.patch)
        return Version(self.major, self.minor, self.patch + 1)


def parse(text: str) -> Version:
    """Parse ``text``; shorthand for :meth:`Version.parse`."""
    return Version.parse(text)
'''

SV_TEST = r'''import pytest

from semverlite import Version


def v(text):
    return Version.parse(text)


@pytest.mark.parametrize(
    "low, high",
    [
        ("1.0.0", "2.0.0"),
        ("2.0.0", "2.1.0"),
        ("2.1.0", "2.1.1"),
        ("1.0.0-alpha", "1.0.0"),
        ("1.0.0-alpha", "1.0.0-alpha.1"),
        ("1.0.0-alpha.1", "1.0.0-alpha.beta"),
        ("1.0.0-beta", "1.0.0-rc.1"),
    ],
)
def test_ordering(low, high):
    assert v(low) < v(high)
    assert v(high) > v(low)


def test_build_metadata_ignored():
    assert v("1.0.0+build.1") == v("1.0.0+build.2")
    assert hash(v("1.0.0+a")) == hash(v("1.0.0"))


def test_compare_with_string():
    assert v("1.2.3") == "1.2.3"
    assert v("1.2.3") < "1.2.4"


def test_sorting():
    items = ["1.10.0", "1.2.0", "1.9.1"]
    assert [str(x) for x in sorted(map(v, items))] == ["1.2.0", "1.9.1", "1.10.0"]
'''

SV_REPRO = '''from semverlite import Version

versions = ["1.0.0-rc.9", "1.0.0-rc.10", "1.0.0-rc.2", "1.0.0", "1.0.0-beta", "1.0.0-rc"]
print(sorted(versions, key=Version.parse))

# The example from semver.org, section 11.4, in ascending order.
spec = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta",
        "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0"]
assert sorted(spec, key=Version.parse) == spec, sorted(spec, key=Version.parse)
assert Version.parse("1.0.0-rc.10") > Version.parse("1.0.0-rc.9")
print("Script completed successfully, no errors.")'''


def _semver_key(text, numeric):
    """Sort key of the fictional library, before (numeric=False) and after the fix."""
    core, _, pre = text.partition("-")
    nums = tuple(int(x) for x in core.split("."))
    if not pre:
        return nums + (1, ())
    parts = pre.split(".")
    if numeric:
        parts = [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts]
    return nums + (0, tuple(parts))


def semverlite_77():
    iid = "semverlite__77"
    issue = """Prerelease versions with two-digit numbers sort wrong

```python
>>> from semverlite import Version
>>> Version.parse("1.0.0-rc.10") < Version.parse("1.0.0-rc.9")
True
>>> sorted(["1.0.0-rc.9", "1.0.0-rc.10", "1.0.0-rc.2"], key=Version.parse)
['1.0.0-rc.10', '1.0.0-rc.2', '1.0.0-rc.9']
```

Per semver 2.0.0, section 11.4.1, identifiers consisting of only digits are compared numerically. Our release tooling picked rc.9 over rc.10 as the latest candidate because of this."""
    path = "src/semverlite/version.py"
    s = SweBuilder(issue, {path: SV_VERSION, "tests/test_compare.py": SV_TEST})
    assert len(lines_of(SV_VERSION)) > 100
    hits = sum("prerelease" in l for l in lines_of(SV_VERSION))
    s.step(
        "Let me find where prerelease identifiers are handled in the package.",
        'search_dir "prerelease" src',
        f'Found {hits} matches for "prerelease" in /repo/src:\n'
        f"/repo/{path} ({hits} matches)\n"
        'End of matches for "prerelease" in /repo/src',
        0.14,
    )
    obs = s.create("reproduce.py")
    s.step(
        "Everything is in version.py. Before reading it, I'll reproduce the problem with "
        "the issue's example and the ordering example from the spec (section 11.4).",
        "create reproduce.py",
        obs,
        0.13,
    )
    obs = s.edit(1, 1, SV_REPRO)
    s.step(
        "Writing the reproduction script.",
        f"edit 1:1\n{SV_REPRO}\nend_of_edit",
        obs,
        0.45,
    )
    versions = ["1.0.0-rc.9", "1.0.0-rc.10", "1.0.0-rc.2", "1.0.0", "1.0.0-beta", "1.0.0-rc"]
    spec = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta",
            "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0"]
    bad_spec = sorted(spec, key=lambda t: _semver_key(t, False))
    assert bad_spec != spec and sorted(spec, key=lambda t: _semver_key(t, True)) == spec
    s.step(
        "Run it.",
        "python reproduce.py",
        f"{sorted(versions, key=lambda t: _semver_key(t, False))}\n"
        "Traceback (most recent call last):\n"
        f'  File "/repo/reproduce.py", line {line_no(SV_REPRO, "assert sorted(spec")}, in <module>\n'
        "    assert sorted(spec, key=Version.parse) == spec, sorted(spec, key=Version.parse)\n"
        f"AssertionError: {bad_spec}",
        0.2,
    )
    text = s.files[path]
    k0 = line_no(text, "def _key(self):")
    obs = s.open(path, k0)
    s.step(
        "Both the issue's list and the spec example sort wrong (beta.11 before beta.2). "
        "Comparisons are defined by `__eq__`/`__lt__`, which both delegate to `_key` "
        f"(line {k0}); let me open the file there.",
        f"open {path} {k0}",
        obs,
        0.16,
    )
    k1 = line_no(text, "return (self.major, self.minor, self.patch, 1, ())")
    key_body = """    def _key(self):
        # A version without a prerelease sorts after all of its
        # prereleases: 1.0.0-alpha < 1.0.0.
        if self.prerelease:
            pre = tuple(_identifier_key(part) for part in self.prerelease)
            return (self.major, self.minor, self.patch, 0, pre)
        return (self.major, self.minor, self.patch, 1, ())"""
    obs = s.edit(k0, k1, key_body)
    s.step(
        "`_key` puts `self.prerelease`, a tuple of strings, straight into the key, so "
        "identifiers compare as text and '10' < '9'. I'll map each identifier through a helper that yields comparable keys. Tuple "
        "comparison already implements the spec's rule that a shorter identifier list "
        "sorts first when all preceding identifiers are equal.",
        f"edit {k0}:{k1}\n{key_body}\nend_of_edit",
        obs,
        0.39,
    )
    text = s.files[path]
    t = line_no(text, "@total_ordering")
    helper = '''def _identifier_key(identifier: str):
    """Sort key for one prerelease identifier (semver 2.0.0, 11.4).

    Identifiers made of digits only compare numerically and have lower
    precedence than alphanumeric ones, which compare in ASCII order.
    """
    if identifier.isdigit():
        return (0, int(identifier), "")
    return (1, 0, identifier)


@total_ordering'''
    obs = s.edit(t, t, helper)
    s.step(
        f"Now the module-level helper, just above the `Version` class (`@total_ordering` "
        f"is on line {t}). Numeric identifiers get the tag 0 and alphanumeric ones 1, so numbers always sort "
        "first as 11.4.3 requires, and the key tuples never compare an int with a str. "
        "The regex only admits ASCII alphanumerics and hyphens, so `isdigit` is safe here.",
        f"edit {t}:{t}\n{helper}\nend_of_edit",
        obs,
        0.43,
    )
    s.step(
        "Let me rerun the reproduction script.",
        "python reproduce.py",
        f"{sorted(versions, key=lambda x: _semver_key(x, True))}\n"
        "Script completed successfully, no errors.",
        0.19,
    )
    obs = s.open("tests/test_compare.py")
    s.step(
        "The ordering now matches the spec. I'll add the cases to the parametrized "
        "ordering test in tests/test_compare.py.",
        "open tests/test_compare.py",
        obs,
        0.14,
    )
    text = s.files["tests/test_compare.py"]
    p = line_no(text, '("1.0.0-beta", "1.0.0-rc.1"),')
    cases = """        ("1.0.0-beta", "1.0.0-rc.1"),
        # numeric identifiers compare as numbers, and below alphanumeric ones
        ("1.0.0-beta.2", "1.0.0-beta.11"),
        ("1.0.0-rc.9", "1.0.0-rc.10"),
        ("1.0.0-1", "1.0.0-alpha"),
        ("1.0.0-rc.1", "1.0.0-rc.1.1"),"""
    obs = s.edit(p, p, cases)
    s.step(
        "Adding the spec's beta.2 < beta.11 example, the case from the issue, numeric "
        "below alphanumeric, and the longer-list rule.",
        f"edit {p}:{p}\n{cases}\nend_of_edit",
        obs,
        0.4,
    )
    s.step(
        "Run the test suite.",
        "pytest tests -q",
        pytest_dots("." * 59) + "\n59 passed in 0.09s",
        0.94,
    )
    s.step("All green. Removing the reproduction script.", "rm reproduce.py", "", 0.1)
    s.files.pop("reproduce.py")
    diff = git_diff(
        [
            (path, SV_VERSION, s.files[path]),
            ("tests/test_compare.py", SV_TEST, s.files["tests/test_compare.py"]),
        ]
    )
    s.step("The fix and its tests are complete. Submitting.", "submit", diff, 0.29)
    stats = {
        "total_cost": 0.53,
        "instance_cost": 0.53,
        "tokens_sent": 104871,
        "tokens_received": 1985,
        "api_calls": len(s.trajectory),
    }
    return iid, s.result(diff, stats)


# ---------------------------------------------------------------------------
# OpenHands event log (.json)
# ---------------------------------------------------------------------------

OH_SYSTEM = """You are OpenHands agent, a helpful AI assistant that can interact with a computer to solve tasks.

<ROLE>
Your primary role is to assist users by executing commands, modifying code, and solving technical problems effectively. Be thorough and methodical, and prefer quality over speed.
</ROLE>

<EFFICIENCY>
Each action is somewhat expensive. Where you can, combine several shell commands into one, and use grep and sed to look at several places at once.
</EFFICIENCY>

<FILE_SYSTEM_GUIDELINES>
* Do not assume a path is relative to the working directory; locate files before working on them.
* Edit files in place; do not create copies with a different suffix.
</FILE_SYSTEM_GUIDELINES>

<CODE_QUALITY>
* Write clean code with few, useful comments; do not restate what the code says.
* Make the minimal change that solves the problem.
</CODE_QUALITY>

<PROBLEM_SOLVING_WORKFLOW>
1. EXPLORATION: read the relevant files and understand the context.
2. ANALYSIS: consider several approaches and pick the most promising one.
3. TESTING: for a bug, reproduce it before fixing it.
4. IMPLEMENTATION: make focused, minimal changes.
5. VERIFICATION: run the tests, including edge cases.
</PROBLEM_SOLVING_WORKFLOW>

Tools: execute_bash (run a shell command), str_replace_editor (view, create and edit files), execute_ipython_cell (run Python in a Jupyter kernel), think (log a thought) and finish (end the task)."""

OH_USER = """<uploaded_files>
/workspace/{repo}
</uploaded_files>

I've uploaded a python code repository in the directory {repo}. Consider the following issue description:

<issue_description>
{issue}
</issue_description>

Can you help me implement the necessary changes to the repository so that the requirements specified in the <issue_description> are met?
Make the minimal changes to non-test files in the /workspace/{repo} directory to resolve the issue, add a regression test next to the existing ones, and make sure the test suite passes.
Follow these phases: 1. read and restate the problem; 2. explore the code; 3. reproduce the issue with a script; 4. fix it; 5. verify the fix and edge cases; 6. review your changes against the issue."""

IPY_SUFFIX = (
    "\n[Jupyter current working directory: {cwd}]\n"
    "[Jupyter Python interpreter: /openhands/poetry/openhands-ai-5O4_aCHf-py3.12/bin/python]"
)


class OHBuilder:
    def __init__(self, repo, issue, start, seed):
        self.repo = repo
        self.cwd = f"/workspace/{repo}"
        self.events = []
        self.now = start
        self.rng = random.Random(seed)
        self.n_calls = 0
        self._add({"source": "agent", "message": OH_SYSTEM, "action": "system",
                   "args": {"content": OH_SYSTEM, "tools": [], "openhands_version": "0.39.1",
                            "agent_class": "CodeActAgent"}}, 0)
        user = OH_USER.format(repo=repo, issue=issue)
        self._add({"source": "user", "message": user, "action": "message",
                   "args": {"content": user, "image_urls": None, "wait_for_response": False}}, 0.4)
        self._state("running", 0.2)

    def _add(self, event, seconds):
        self.now += timedelta(seconds=seconds)
        full = {"id": len(self.events), "timestamp": self.now.isoformat(timespec="microseconds")}
        full.update(event)
        self.events.append(full)
        return full["id"]

    def _state(self, state, seconds):
        self._add({"source": "environment", "message": "", "observation": "agent_state_changed",
                   "content": "", "extras": {"agent_state": state, "reason": ""}}, seconds)

    def _meta(self, function):
        self.n_calls += 1
        return {"function_name": function,
                "tool_call_id": stable_id("toolu_01", self.repo, str(self.n_calls)),
                "total_calls_in_response": 1}

    def _think_time(self):
        return round(self.rng.uniform(3.0, 14.0), 6)

    def run(self, thought, command, output, exit_code=0, seconds=0.8):
        cause = self._add({"source": "agent", "message": f"Running command: {command}",
                           "action": "run", "tool_call_metadata": self._meta("execute_bash"),
                           "args": {"command": command, "is_input": False, "thought": thought,
                                    "blocking": False, "hidden": False,
                                    "confirmation_state": "confirmed"}}, self._think_time())
        self._add({"source": "agent",
                   "message": f"Command `{command}` executed with exit code {exit_code}.",
                   "cause": cause, "observation": "run", "content": output,
                   "extras": {"command": command,
                              "metadata": {"exit_code": exit_code, "pid": -1, "username": "root",
                                           "hostname": "runtime", "working_dir": self.cwd,
                                           "py_interpreter_path": "/usr/bin/python", "prefix": "",
                                           "suffix": f"\n[The command completed with exit code {exit_code}.]"},
                              "hidden": False},
                   "success": exit_code == 0}, seconds)

    def read(self, thought, path, text, view_range=None):
        cause = self._add({"source": "agent", "message": f"Reading file: {path}", "action": "read",
                           "tool_call_metadata": self._meta("str_replace_editor"),
                           "args": {"path": path, "start": 0, "end": -1, "thought": thought,
                                    "impl_source": "oh_aci", "view_range": view_range}},
                          self._think_time())
        self._add({"source": "agent", "message": f"I read the file {path}.", "cause": cause,
                   "observation": "read", "content": view_obs(path, text, view_range),
                   "extras": {"path": path, "impl_source": "oh_aci"}}, 0.05)

    def _edit(self, thought, path, command, content, file_text=None, old_str=None,
              new_str=None):
        cause = self._add({"source": "agent", "message": f"Editing file: {path}", "action": "edit",
                           "tool_call_metadata": self._meta("str_replace_editor"),
                           "args": {"path": path, "command": command, "file_text": file_text,
                                    "old_str": old_str, "new_str": new_str, "insert_line": None,
                                    "content": "", "start": 1, "end": -1, "thought": thought,
                                    "impl_source": "oh_aci"}}, self._think_time())
        self._add({"source": "agent", "message": f"I edited the file {path}.", "cause": cause,
                   "observation": "edit", "content": content,
                   "extras": {"path": path, "prev_exist": command != "create",
                              "old_content": old_str, "new_content": new_str if command != "create" else file_text,
                              "impl_source": "oh_aci"}}, 0.06)

    def create(self, thought, path, text):
        self._edit(thought, path, "create", f"File created successfully at: {path}",
                   file_text=text)

    def str_replace(self, thought, path, before, old, new):
        after, obs = str_replace_obs(path, before, old, new)
        self._edit(thought, path, "str_replace", obs, old_str=old, new_str=new)
        return after

    def ipython(self, thought, code, output):
        cause = self._add({"source": "agent", "message": f"Running Python code interactively: {code}",
                           "action": "run_ipython",
                           "tool_call_metadata": self._meta("execute_ipython_cell"),
                           "args": {"code": code, "thought": thought, "include_extra": True,
                                    "confirmation_state": "confirmed", "kernel_init_code": ""}},
                          self._think_time())
        self._add({"source": "agent", "message": "Code executed in IPython cell.", "cause": cause,
                   "observation": "run_ipython",
                   "content": output + IPY_SUFFIX.format(cwd=self.cwd),
                   "extras": {"code": code, "image_urls": None}}, 0.9)

    def think(self, thought):
        cause = self._add({"source": "agent", "message": f"I am thinking...: {thought}",
                           "action": "think", "tool_call_metadata": self._meta("think"),
                           "args": {"thought": thought}}, self._think_time())
        self._add({"source": "agent", "message": "Your thought has been logged.", "cause": cause,
                   "observation": "think", "content": "Your thought has been logged.",
                   "extras": {}}, 0.01)

    def finish(self, thought, final_thought):
        self._add({"source": "agent", "message": final_thought, "action": "finish",
                   "tool_call_metadata": self._meta("finish"),
                   "args": {"final_thought": final_thought, "task_completed": "true",
                            "outputs": {}, "thought": thought}}, self._think_time())
        self._state("finished", 0.3)
        return self.events


# --- 6. retrykit__156: jitter applied after the max_delay cap ----------------

RK_BACKOFF = r'''"""Delay schedules for retrykit.

A schedule is an iterator of delays in seconds; :func:`retrykit.retry`
sleeps for the next delay before every new attempt.
"""

from __future__ import annotations

import itertools
import random
from typing import Iterator, Optional


def constant(delay: float) -> Iterator[float]:
    """Yield ``delay`` forever."""
    return itertools.repeat(delay)


def linear(
    start: float = 1.0, step: float = 1.0, max_delay: Optional[float] = None
) -> Iterator[float]:
    """Yield start, start + step, start + 2 * step, ... capped at ``max_delay``."""
    for n in itertools.count():
        delay = start + n * step
        yield delay if max_delay is None else min(delay, max_delay)


def exponential(
    base: float = 0.5,
    factor: float = 2.0,
    max_delay: Optional[float] = None,
    jitter: bool = False,
    rng: Optional[random.Random] = None,
) -> Iterator[float]:
    """Yield base, base * factor, base * factor**2, ...

    ``max_delay`` caps every delay. With ``jitter=True`` each delay is
    multiplied by a random factor in [0.5, 1.5), so that clients which
    failed together do not all retry at the same moment.
    """
    rng = rng or random.Random()
    delay = base
    while True:
        capped = delay if max_delay is None else min(delay, max_delay)
        if jitter:
            capped *= 0.5 + rng.random()
        yield capped
        delay *= factor
'''

RK_OLD = '''    ``max_delay`` caps every delay. With ``jitter=True`` each delay is
    multiplied by a random factor in [0.5, 1.5), so that clients which
    failed together do not all retry at the same moment.
    """
    rng = rng or random.Random()
    delay = base
    while True:
        capped = delay if max_delay is None else min(delay, max_delay)
        if jitter:
            capped *= 0.5 + rng.random()
        yield capped
        delay *= factor
'''

RK_NEW = '''    ``max_delay`` caps every delay, jitter included. With ``jitter=True``
    each delay is multiplied by a random factor in [0.5, 1.5) and then
    capped again, so that clients which failed together do not all retry
    at the same moment.
    """
    rng = rng or random.Random()
    delay = base
    while True:
        value = delay if max_delay is None else min(delay, max_delay)
        if jitter:
            value *= 0.5 + rng.random()
            if max_delay is not None:
                # Cap again after jitter: max_delay is a hard limit callers
                # budget for. Capping before as well keeps late delays spread
                # over [max_delay / 2, max_delay] instead of all pinned to it.
                value = min(value, max_delay)
        yield value
        delay *= factor
'''

RK_TEST = r'''import itertools
import random

import pytest

from retrykit.backoff import constant, exponential, linear


def take(iterator, n):
    return list(itertools.islice(iterator, n))


def test_constant():
    assert take(constant(0.2), 3) == [0.2, 0.2, 0.2]


def test_linear_capped():
    assert take(linear(1, 2, max_delay=4), 4) == [1, 3, 4, 4]


def test_exponential_doubles():
    assert take(exponential(base=0.5), 4) == [0.5, 1.0, 2.0, 4.0]


def test_exponential_capped():
    assert take(exponential(base=1, max_delay=3), 4) == [1, 2, 3, 3]


def test_jitter_is_seeded():
    first = take(exponential(jitter=True, rng=random.Random(7)), 5)
    second = take(exponential(jitter=True, rng=random.Random(7)), 5)
    assert first == second


def test_jitter_stays_within_half_and_one_and_a_half():
    plain = take(exponential(base=1), 10)
    jittered = take(exponential(base=1, jitter=True, rng=random.Random(3)), 10)
    for p, j in zip(plain, jittered):
        assert 0.5 * p <= j < 1.5 * p
'''

RK_TEST_OLD = '''    for p, j in zip(plain, jittered):
        assert 0.5 * p <= j < 1.5 * p
'''

RK_TEST_NEW = '''    for p, j in zip(plain, jittered):
        assert 0.5 * p <= j < 1.5 * p


@pytest.mark.parametrize("seed", range(20))
def test_jitter_never_exceeds_max_delay(seed):
    # Regression test for #156: jitter used to be applied after the cap.
    schedule = exponential(base=1, max_delay=5, jitter=True, rng=random.Random(seed))
    delays = take(schedule, 50)
    assert max(delays) <= 5
    # Late delays must still be spread out, not all pinned to the cap.
    assert min(delays[10:]) < 5
'''

RK_CODE1 = '''# Reproduce: sample the jittered schedule and compare it with the cap
import itertools
import random
import sys

sys.path.insert(0, "/workspace/retrykit/src")  # the kernel is not the repo's venv
from retrykit.backoff import exponential

schedule = exponential(base=1, max_delay=5, jitter=True, rng=random.Random(156))
delays = list(itertools.islice(schedule, 200))
print(f"max delay: {max(delays):.3f}")
print(f"over the cap: {sum(d > 5 for d in delays)} of {len(delays)}")
print("first delays:", [round(d, 3) for d in delays[:6]])'''

RK_CODE2 = '''import importlib

import retrykit.backoff

importlib.reload(retrykit.backoff)  # pick up the edited module
schedule = retrykit.backoff.exponential(base=1, max_delay=5, jitter=True, rng=random.Random(156))
delays = list(itertools.islice(schedule, 200))
print(f"max delay: {max(delays):.3f}, over the cap: {sum(d > 5 for d in delays)}")
print(f"pinned at the cap: {sum(d == 5 for d in delays)}, below it: {sum(d < 5 for d in delays[10:])} of 190")
print("first delays:", [round(d, 3) for d in delays[:6]])'''


def _rk_schedule(fixed, base=1, factor=2.0, max_delay=5, seed=156, n=200):
    """The fictional library's exponential(jitter=True), before and after the fix."""
    rng = random.Random(seed)
    delay, out = base, []
    for _ in range(n):
        value = min(delay, max_delay)
        value *= 0.5 + rng.random()
        if fixed:
            value = min(value, max_delay)
        out.append(value)
        delay *= factor
    return out


def retrykit_156():
    iid = "retrykit__156"
    issue = """max_delay is exceeded when jitter=True

`exponential(max_delay=...)` is documented to cap every delay, but with `jitter=True` the delays can go up to 1.5x the cap:

```python
from retrykit import retry
from retrykit.backoff import exponential

@retry(attempts=8, delays=exponential(base=1, max_delay=5, jitter=True))
def fetch():
    ...
```

With a 5 s cap our logs show sleeps of 6-7 s between attempts, which blows the request budget of the job. It looks like the jitter is applied after the cap. retrykit 1.4.0."""
    start = datetime(2026, 3, 2, 10, 11, 12, 345678)
    o = OHBuilder("retrykit", issue, start, iid)
    root = "/workspace/retrykit"
    o.run(
        "Let me explore the repository structure first to find the backoff implementation.",
        f"find {root} -name '*.py' -not -path '*/.venv/*' | sort",
        "\n".join(f"{root}/{p}" for p in [
            "docs/conf.py", "src/retrykit/__init__.py", "src/retrykit/backoff.py",
            "src/retrykit/errors.py", "src/retrykit/retry.py", "tests/conftest.py",
            "tests/test_backoff.py", "tests/test_retry.py"]),
    )
    o.read(
        "The schedules live in backoff.py. Let me read it.",
        f"{root}/src/retrykit/backoff.py",
        RK_BACKOFF,
    )
    o.run(
        "In `exponential` the delay is capped first and then multiplied by a factor in "
        "[0.5, 1.5), so a capped delay of 5 can become up to 7.5. Before changing it, let "
        "me check how `retry` consumes the schedule, in case it applies its own cap.",
        f"cd {root} && grep -n \"max_delay\\|exponential\\|sleep\" src/retrykit/retry.py",
        "5:import time\n"
        "10:from .backoff import exponential\n"
        "18:def retry(attempts=3, delays=None, exceptions=(Exception,), sleep=time.sleep):\n"
        "29:    schedule = iter(delays) if delays is not None else exponential()\n"
        "41:                sleep(next(schedule))",
    )
    bad = _rk_schedule(False)
    out1 = (f"max delay: {max(bad):.3f}\n"
            f"over the cap: {sum(d > 5 for d in bad)} of {len(bad)}\n"
            f"first delays: {[round(d, 3) for d in bad[:6]]}")
    o.ipython(
        "`retry` sleeps for exactly what the schedule yields, so the cap must hold inside "
        "`exponential`. Let me quantify the problem with a seeded schedule in IPython.",
        RK_CODE1,
        out1,
    )
    o.think(
        "Confirmed: with max_delay=5 about half of the late delays exceed the cap, up to "
        "~7.5 s. Options: (a) apply the cap only after jitter, on the uncapped delay. Once "
        "the raw delay passes 2 * max_delay, even the smallest jitter factor 0.5 lands above "
        "the cap, so every late delay would be exactly max_delay and the jitter would be "
        "lost, which brings the thundering-herd problem back. (b) cap before jitter (as "
        "now) and cap again after it: the result never exceeds max_delay and late delays "
        "stay spread over [max_delay/2, max_delay]. (b) keeps the documented promise and "
        "the point of jitter, so I'll do that and update the docstring. The number of "
        "rng.random() calls is unchanged, so seeded schedules stay reproducible below the cap."
    )
    path = f"{root}/src/retrykit/backoff.py"
    backoff2 = o.str_replace(
        "Implementing option (b): cap, jitter, cap again. I'm also renaming `capped` to "
        "`value`, since it is no longer necessarily capped when it is jittered.",
        path, RK_BACKOFF, RK_OLD, RK_NEW,
    )
    good = _rk_schedule(True)
    assert max(good) <= 5 and [round(d, 9) for d in good[:2]] == [round(d, 9) for d in bad[:2]]
    out2 = (f"max delay: {max(good):.3f}, over the cap: {sum(d > 5 for d in good)}\n"
            f"pinned at the cap: {sum(d == 5 for d in good)}, below it: "
            f"{sum(d < 5 for d in good[10:])} of 190\n"
            f"first delays: {[round(d, 3) for d in good[:6]]}")
    o.ipython(
        "Let me reload the module in the same kernel and rerun the same seeded sample.",
        RK_CODE2,
        out2,
    )
    test_path = f"{root}/tests/test_backoff.py"
    o.read(
        "Nothing exceeds the cap anymore, about half of the late delays are still below "
        "it, and the early (uncapped) delays are identical to before. Now a regression "
        "test; let me look at the existing backoff tests.",
        test_path,
        RK_TEST,
    )
    test2 = o.str_replace(
        "I'll add a parametrized test over several seeds that checks both properties: "
        "never above the cap, and still spread out below it.",
        test_path, RK_TEST, RK_TEST_OLD, RK_TEST_NEW,
    )
    for seed in range(20):
        d = _rk_schedule(True, seed=seed, n=50)
        assert max(d) <= 5 and min(d[10:]) < 5
    o.run(
        "Now run the full test suite.",
        f"cd {root} && python -m pytest tests/ -q 2>&1 | tail -n 5",
        pytest_dots("." * 83) + "\n83 passed in 1.42s",
        seconds=2.6,
    )
    diff = git_diff([("src/retrykit/backoff.py", RK_BACKOFF, backoff2),
                     ("tests/test_backoff.py", RK_TEST, test2)])
    o.run(
        "All 83 tests pass. Let me review the complete diff.",
        f"cd {root} && git diff",
        diff,
    )
    o.finish(
        "The change is complete and verified; summarising for the user.",
        "I fixed `exponential()` in `src/retrykit/backoff.py` so that `max_delay` also holds "
        "when `jitter=True`. The delay is capped, jittered by a factor in [0.5, 1.5) and "
        "then capped again. Capping before the jitter keeps late delays spread over "
        "[max_delay/2, max_delay] rather than all equal to the cap. The docstring now says "
        "the cap includes jitter, and `tests/test_backoff.py` has a regression test over 20 "
        "seeds. The full suite passes (83 tests).",
    )
    return iid, o.events


# --- 7. mdtoc__94: anchors drop non-ASCII letters ----------------------------

MD_SLUG = r'''"""GitHub-compatible heading anchors."""

import re

_STRIP = re.compile(r"[^a-z0-9 _-]")


def slugify(heading: str) -> str:
    """Return the anchor GitHub generates for ``heading``."""
    text = heading.strip().lower()
    text = _STRIP.sub("", text)
    return text.replace(" ", "-")


class SlugCounter:
    """Make anchors unique the way GitHub does: foo, foo-1, foo-2, ..."""

    def __init__(self) -> None:
        self._seen: dict = {}

    def __call__(self, heading: str) -> str:
        slug = slugify(heading)
        count = self._seen.get(slug, 0)
        self._seen[slug] = count + 1
        return slug if count == 0 else f"{slug}-{count}"
'''

MD_SLUG_OLD = '''import re

_STRIP = re.compile(r"[^a-z0-9 _-]")


def slugify(heading: str) -> str:
    """Return the anchor GitHub generates for ``heading``."""
    text = heading.strip().lower()
    text = _STRIP.sub("", text)
    return text.replace(" ", "-")
'''

MD_SLUG_NEW = '''import unicodedata


def _keep(ch: str) -> bool:
    # Letters and digits of any script, plus combining marks, so that text
    # typed in decomposed form ("e" followed by U+0301) keeps its accents.
    return ch.isalnum() or ch in " -_" or unicodedata.category(ch).startswith("M")


def slugify(heading: str) -> str:
    """Return the anchor GitHub generates for ``heading``.

    Lowercase the text, drop everything except letters, digits, combining
    marks, spaces, hyphens and underscores (in any script), then turn each
    space into a hyphen.
    """
    text = heading.strip().lower()
    text = "".join(ch for ch in text if _keep(ch))
    return text.replace(" ", "-")
'''

MD_TOC = r'''"""Build a table of contents from Markdown headings."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .slug import SlugCounter

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^(```|~~~)")


@dataclass
class Heading:
    level: int
    title: str
    anchor: str


def headings(markdown: str) -> list[Heading]:
    """Return the ATX headings of ``markdown``, skipping fenced code."""
    counter = SlugCounter()
    found = []
    in_fence = False
    for line in markdown.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
            continue
        if in_fence or not line.startswith("#"):
            continue
        match = _HEADING.match(line)
        if match:
            title = match.group(2)
            found.append(Heading(len(match.group(1)), title, counter(title)))
    return found


def render(markdown: str, min_level: int = 2, max_level: int = 3) -> str:
    """Render a nested bullet list linking to the headings."""
    lines = []
    for h in headings(markdown):
        if min_level <= h.level <= max_level:
            indent = "  " * (h.level - min_level)
            lines.append(f"{indent}- [{h.title}](#{h.anchor})")
    return "\n".join(lines)
'''

MD_TEST = r'''import pytest

from mdtoc.slug import SlugCounter, slugify


@pytest.mark.parametrize(
    "heading, anchor",
    [
        ("Installation", "installation"),
        ("Getting Started", "getting-started"),
        ("What's new in 2.0?", "whats-new-in-20"),
        ("snake_case & kebab-case", "snake_case--kebab-case"),
        ("  padded  ", "padded"),
        ("C++ / CLI", "c--cli"),
    ],
)
def test_slugify(heading, anchor):
    assert slugify(heading) == anchor


def test_counter_makes_duplicates_unique():
    counter = SlugCounter()
    assert [counter("Usage"), counter("Usage"), counter("usage")] == [
        "usage",
        "usage-1",
        "usage-2",
    ]
'''

MD_TEST_OLD = '''        "usage-1",
        "usage-2",
    ]
'''

MD_TEST_NEW = '''        "usage-1",
        "usage-2",
    ]


@pytest.mark.parametrize(
    "heading, anchor",
    [
        ("Café au lait", "café-au-lait"),
        ("Ünïcode Support", "ünïcode-support"),
        ("安装", "安装"),
        ("Привет, мир", "привет-мир"),
        ("cafe\\u0301", "cafe\\u0301"),  # decomposed accent is kept, not dropped
    ],
)
def test_slugify_keeps_non_ascii_letters(heading, anchor):
    # Regression test for #94: the ASCII-only filter dropped these characters.
    assert slugify(heading) == anchor


def test_counter_with_cjk_duplicates():
    counter = SlugCounter()
    assert [counter("使用"), counter("使用")] == ["使用", "使用-1"]
'''

MD_REPRO = r'''from mdtoc.slug import slugify
from mdtoc.toc import render

cases = {
    "Café au lait": "café-au-lait",
    "安装": "安装",
    "Ünïcode Support": "ünïcode-support",
    "What's new in 2.0?": "whats-new-in-20",
    "snake_case & kebab-case": "snake_case--kebab-case",
}
for heading, expected in cases.items():
    got = slugify(heading)
    status = "ok" if got == expected else f"WRONG, want {expected!r}"
    print(f"{heading!r:28} -> {got!r:24} {status}")

print(render("# Title\n\n## 安装\n\n## 使用\n\n### 使用\n"))
assert all(slugify(h) == e for h, e in cases.items())
'''


def _md_slug(heading, fixed):
    text = heading.strip().lower()
    if fixed:
        keep = lambda ch: ch.isalnum() or ch in " -_" or unicodedata.category(ch).startswith("M")
        text = "".join(ch for ch in text if keep(ch))
    else:
        text = re.sub(r"[^a-z0-9 _-]", "", text)
    return text.replace(" ", "-")


def _md_run_repro(fixed):
    cases = {
        "Café au lait": "café-au-lait",
        "安装": "安装",
        "Ünïcode Support": "ünïcode-support",
        "What's new in 2.0?": "whats-new-in-20",
        "snake_case & kebab-case": "snake_case--kebab-case",
    }
    out = []
    for heading, expected in cases.items():
        got = _md_slug(heading, fixed)
        status = "ok" if got == expected else f"WRONG, want {expected!r}"
        out.append(f"{heading!r:28} -> {got!r:24} {status}")
    seen = {}
    for level, title in [(1, "Title"), (2, "安装"), (2, "使用"), (3, "使用")]:
        slug = _md_slug(title, fixed)
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchor = slug if count == 0 else f"{slug}-{count}"
        if 2 <= level <= 3:
            out.append(f"{'  ' * (level - 2)}- [{title}](#{anchor})")
    return "\n".join(out), all(_md_slug(h, fixed) == e for h, e in cases.items())


def mdtoc_94():
    iid = "mdtoc__94"
    issue = """Anchors for headings with accented or non-Latin characters are broken

For a README containing

```markdown
## Café au lait
## 安装
## 使用
```

`mdtoc README.md` generates

```markdown
- [Café au lait](#caf-au-lait)
- [安装](#)
- [使用](#-1)
```

GitHub's anchors for these headings are `#café-au-lait`, `#安装` and `#使用`, so none of the links work. ASCII-only headings are fine. mdtoc 0.6.0."""
    start = datetime(2026, 3, 2, 14, 2, 47, 118204)
    o = OHBuilder("mdtoc", issue, start, iid)
    root = "/workspace/mdtoc"
    o.run(
        "I'll start by exploring the repository to see its layout and recent history.",
        f"cd {root} && git log --oneline -3 && ls -R src tests | grep -v __pycache__",
        "9c4e1d2 (HEAD -> main) cli: add --min-level/--max-level\n"
        "51b7a0e toc: skip headings inside fenced code blocks\n"
        "e03f6c8 Release 0.6.0\n"
        "src:\nmdtoc\n\nsrc/mdtoc:\n__init__.py\ncli.py\nslug.py\ntoc.py\n\n"
        "tests:\nconftest.py\ntest_cli.py\ntest_slug.py\ntest_toc.py",
    )
    o.run(
        "Anchors are probably generated in slug.py. Let me see who uses it besides itself.",
        f"cd {root} && grep -rn \"slug\" src/mdtoc/*.py | grep -v \"^src/mdtoc/slug.py\"  # who consumes slugs?",
        f"src/mdtoc/toc.py:{line_no(MD_TOC, 'from .slug')}:from .slug import SlugCounter\n"
        "src/mdtoc/cli.py:7:from .slug import slugify\n"
        "src/mdtoc/cli.py:52:        print(slugify(args.heading))",
    )
    slug_path = f"{root}/src/mdtoc/slug.py"
    o.read(
        "Both the TOC builder and the CLI go through slug.py. Let me read it.",
        slug_path,
        MD_SLUG,
    )
    repro_path = f"{root}/reproduce_issue.py"
    o.create(
        "`_STRIP` removes everything outside `[a-z0-9 _-]`, so any non-ASCII letter is "
        "dropped: 'café' loses its 'é' and a CJK heading becomes an empty slug, which the "
        "counter then turns into '', '-1', '-2'. Let me reproduce that, including a "
        "rendered TOC with duplicate CJK headings.",
        repro_path,
        MD_REPRO,
    )
    out, ok = _md_run_repro(False)
    assert not ok
    o.run(
        "Run the reproduction script.",
        f"cd {root} && python reproduce_issue.py",
        out + "\nTraceback (most recent call last):\n"
        f'  File "{repro_path}", line {line_no(MD_REPRO, "assert all(")}, in <module>\n'
        "    assert all(slugify(h) == e for h, e in cases.items())\n"
        "AssertionError",
        exit_code=1,
    )
    o.think(
        "GitHub's anchor algorithm lowercases the heading, removes everything that is not "
        "a letter, digit, space, hyphen or underscore, Unicode-aware, and turns spaces "
        "into hyphens. The ASCII character class is the bug. Switching to `[^\\w\\- ]` "
        "would be close, but Python's `\\w` does not match combining marks, so a heading "
        "typed in decomposed form (e + U+0301) would silently lose its accent. A small "
        "predicate using str.isalnum() plus the Unicode category 'M*' handles both, and "
        "ASCII headings behave exactly as before, since isalnum() on ASCII is [a-z0-9] "
        "after lowercasing. I'll leave text unnormalised, as GitHub does."
    )
    slug2 = o.str_replace(
        "Replacing the regex with the predicate and documenting the rule in the docstring.",
        slug_path, MD_SLUG, MD_SLUG_OLD, MD_SLUG_NEW,
    )
    out, ok = _md_run_repro(True)
    assert ok
    o.run(
        "Rerun the reproduction script.",
        f"cd {root} && python reproduce_issue.py",
        out,
    )
    test_path = f"{root}/tests/test_slug.py"
    o.read(
        "All headings now get GitHub's anchors, and duplicates are numbered from a real "
        "slug. Let me look at the existing slug tests before adding regression tests.",
        test_path,
        MD_TEST,
    )
    test2 = o.str_replace(
        "I'll add a parametrized test for accented Latin, CJK and Cyrillic headings, plus "
        "a decomposed accent (written as an escape in the source), and a test for "
        "duplicate CJK headings.",
        test_path, MD_TEST, MD_TEST_OLD, MD_TEST_NEW,
    )
    for heading, anchor in [("Café au lait", "café-au-lait"), ("Ünïcode Support", "ünïcode-support"),
                            ("安装", "安装"), ("Привет, мир", "привет-мир"),
                            ("cafe\u0301", "cafe\u0301"), ("C++ / CLI", "c--cli"),
                            ("What's new in 2.0?", "whats-new-in-20")]:
        assert _md_slug(heading, True) == anchor, heading
    header = (
        " test session starts ".center(80, "=")
        + "\nplatform linux -- Python 3.12.3, pytest-8.2.1, pluggy-1.5.0\n"
        f"rootdir: {root}\nconfigfile: pyproject.toml\ncollected 40 items\n\n"
    )
    o.run(
        "Now run the full test suite.",
        f"cd {root} && python -m pytest tests",
        header
        + pytest_files([("tests/test_cli.py", "." * 8), ("tests/test_slug.py", "." * 13),
                        ("tests/test_toc.py", "." * 19)])
        + "\n\n" + " 40 passed in 0.11s ".center(80, "="),
        seconds=1.9,
    )
    diff = git_diff([("src/mdtoc/slug.py", MD_SLUG, slug2), ("tests/test_slug.py", MD_TEST, test2)])
    o.run(
        "All 40 tests pass. Removing the reproduction script and reviewing the diff.",
        f"cd {root} && rm reproduce_issue.py && git status --short && git diff",
        " M src/mdtoc/slug.py\n M tests/test_slug.py\n" + diff,
    )
    o.finish(
        "Done; summarising the change.",
        "Heading anchors now keep non-ASCII letters the way GitHub does. In "
        "`src/mdtoc/slug.py`, the ASCII-only regex is replaced by a Unicode-aware "
        "predicate that keeps letters and digits of any script, combining marks, spaces, "
        "hyphens and underscores. `## Café au lait` now links to `#café-au-lait`, and CJK "
        "headings get `#安装` / `#使用` instead of empty anchors. ASCII headings are "
        "unchanged. I added regression tests to `tests/test_slug.py`; all 40 tests pass.",
    )
    return iid, o.events


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------


def write_json(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        json.dump(obj, fh, ensure_ascii=False, indent=2)
        fh.write("\n")


def main():
    with open(os.path.join(HERE, "chat.jsonl"), "w", encoding="utf-8", newline="\n") as fh:
        for record in (csvkit_lite_412(), tinydate_87(), objpath_63()):
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    for make in (confload_203, semverlite_77):
        iid, traj = make()
        write_json(os.path.join(HERE, "swe-agent", f"{iid}.traj"), traj)
    for make in (retrykit_156, mdtoc_94):
        iid, events = make()
        write_json(os.path.join(HERE, "openhands", f"{iid}.json"), events)


if __name__ == "__main__":
    main()
