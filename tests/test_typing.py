"""The user-facing types, checked the way users check them: ``mypy --strict`` on sample code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent / "typing"
SRC = Path(__file__).parent.parent / "src"

pytestmark = pytest.mark.slow


def _mypy(path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MYPYPATH": str(SRC)}
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=SRC.parent,
        timeout=300,
        check=False,
    )


def test_typed_answers_and_aclosing_pass_mypy_strict() -> None:
    result = _mypy(HERE / "typing_check.py")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_catches_the_mistakes_the_types_exist_for() -> None:
    result = _mypy(HERE / "bad_typing.py")
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    lines = sorted(int(line.split(":")[1]) for line in errors)
    assert lines == [10, 12, 14], result.stdout
