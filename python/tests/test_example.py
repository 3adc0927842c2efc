"""examples/python_quickstart.py, the README's notebook-style walk-through, runs as a script."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO


def test_the_quickstart_runs_on_a_tiny_model(tiny, tmp_path):
    done = subprocess.run(
        [sys.executable, str(REPO / "examples" / "python_quickstart.py"), "--model", str(tiny)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert "pooled HE-SNR" in done.stdout
    assert "the dataset scores like the file: 5 rows" in done.stdout
    assert "kept:" in done.stdout
