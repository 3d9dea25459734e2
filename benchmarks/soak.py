"""The soak and the fuzzers at benchmark size: ``python -m benchmarks soak``.

Runs ``tests/cleanup/test_soak.py`` (every fault, every injectable code, a stranger, two
``kill -9`` cycles) on a larger job than CI's, and the decoder and input fuzzers with the
``fuzz`` Hypothesis profile (10,000 cases each). The tests hold the assertions; this module
only sizes them and tabulates what they saw.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import Report

ROOT = Path(__file__).resolve().parents[1]
FUZZERS = ("tests/test_decode.py", "tests/cleanup/test_fuzz_sources.py")


def _pytest(targets: tuple[str, ...], env: dict[str, str]) -> tuple[bool, float, str]:
    started = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--timeout=1800",
            *targets,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    last = (proc.stdout.strip().splitlines() or ["(no output)"])[-1]
    return proc.returncode == 0, time.monotonic() - started, last


def run(quick: bool = False) -> Report:
    report = Report("soak", quick)
    scale = "1" if quick else "8"
    with tempfile.TemporaryDirectory() as tmp:
        summary_path = Path(tmp) / "soak.json"
        env = {**os.environ, "TCVPC_SOAK_SCALE": scale, "TCVPC_SOAK_SUMMARY": str(summary_path)}
        soak_ok, soak_s, soak_line = _pytest(("tests/cleanup/test_soak.py",), env)
        summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    fuzz_env = {**os.environ}
    if not quick:
        fuzz_env["HYPOTHESIS_PROFILE"] = "fuzz"
    fuzz_ok, fuzz_s, fuzz_line = _pytest(FUZZERS, fuzz_env)
    cases = "100 each (default profile)" if quick else "10,000 each (fuzz profile)"
    report.add_table(
        "Soak and fuzz: pass/fail (the assertions live in the tests)",
        ["run", "passed", "seconds", "pytest said"],
        [
            (f"soak, scale {scale}", "yes" if soak_ok else "**NO**", round(soak_s, 1), soak_line),
            (
                f"fuzz decoder + input readers, {cases}",
                "yes" if fuzz_ok else "**NO**",
                round(fuzz_s, 1),
                fuzz_line,
            ),
        ],
    )
    if summary:
        faults = summary.get("faults", {})
        report.add_table(
            f"Soak: {summary['tunnels']} tunnels; faults and injected codes the emulator served",
            ["fault or code", "count"],
            sorted(faults.items()),
        )
        report.add_table(
            "Soak: most requests of one action in any sliding second (server-counted)",
            ["action", "max"],
            sorted(summary.get("max_per_second", {}).items()),
        )
    report.data.update(soak_passed=soak_ok, fuzz_passed=fuzz_ok, summary=summary)
    return report
