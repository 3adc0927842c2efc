"""Fixtures of the Python package's tests: the CLI binary to compare with, a tiny random-weight
model (written by the binary itself), and the real default model when it is fetched."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any, Dict, List

import pytest

import hesnr

REPO = Path(__file__).resolve().parents[2]


def _ci() -> bool:
    return os.environ.get("CI", "") not in ("", "0", "false")


@pytest.fixture(scope="session")
def cli() -> Path:
    """The CLI to compare the Python results with: $HESNR_CLI, else this repository's release
    build (target/release/hesnr)."""
    p = Path(os.environ.get("HESNR_CLI", REPO / "target" / "release" / "hesnr"))
    if not p.is_file():
        pytest.skip(f"no CLI binary at {p} (cargo build --release)")
    return p


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return hesnr._tiny_model(tmp_path_factory.mktemp("models") / "tiny.gguf")


@pytest.fixture(scope="session")
def real_model() -> Path:
    """The default model; the tests that need it skip without it (and fail under CI, where
    scripts/setup.sh fetches it)."""
    home = os.environ.get("HESNR_HOME") or (
        Path(os.environ["XDG_CACHE_HOME"]) / "hesnr"
        if os.environ.get("XDG_CACHE_HOME")
        else Path.home() / ".cache" / "hesnr"
    )
    models = [Path(home, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")]
    models = [m for m in models if m.is_file()]
    if not models:
        if _ci():
            pytest.fail(f"default model not fetched in {home} (scripts/setup.sh fetches it)")
        pytest.skip(f"default model not fetched in {home} (hesnr fetch-model)")
    return models[0]


def run_cli(cli: Path, *args: Any) -> str:
    """Runs the CLI the way a user would (no Python in between); returns its stdout."""
    done = subprocess.run(
        [str(cli), *map(str, args)], capture_output=True, text=True, env=hesnr._runner.environment()
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def read_rows(path: Path) -> List[Dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def without_nulls(v: Any) -> Any:
    """JSON where a null field and an absent one are the same (Arrow has a column for every
    field: a row without `metadata` has it null there)."""
    if isinstance(v, dict):
        return {k: without_nulls(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [without_nulls(x) for x in v]
    return v


#: Summary fields that differ between any two runs: the clock.
CLOCK = ("seconds", "tokens_per_second", "context_tokens_per_second")


def same_summary(a: Dict[str, Any], b: Dict[str, Any]) -> None:
    strip = lambda s: {k: v for k, v in s.items() if k not in CLOCK}  # noqa: E731
    assert strip(a) == strip(b)
