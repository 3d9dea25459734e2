"""The README's "As a library" example runs as printed (against its in-process emulator)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import tcvpc

README = Path(__file__).resolve().parents[2] / "README.md"
SRC = str(Path(tcvpc.__file__).resolve().parents[1])


def library_example() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("### As a library", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None, "no python block under 'As a library'"
    return match.group(1)


@pytest.mark.slow
def test_the_readme_library_example_runs(tmp_path: Path) -> None:
    path = os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path}
    done = subprocess.run(
        [sys.executable, "-c", library_example()],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert sum(line.endswith(" deleted") for line in lines) == 12, done.stdout
    records = [json.loads(r) for r in (tmp_path / "report.jsonl").read_text().splitlines()]
    assert [r["outcome"] for r in records] == ["deleted"] * 12
