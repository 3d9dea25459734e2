"""The README's "Services" snippets run as written against the emulator (endpoint swapped in)."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import pytest

from tcvpc.emulator import Emulator, EmulatorConfig

README = Path(__file__).parent.parent / "README.md"
SNIPPET_ENDPOINT = '"http://127.0.0.1:8600"'


def _services_snippets() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Services\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


def test_the_services_section_has_snippets() -> None:
    snippets = _services_snippets()
    assert snippets
    assert all(SNIPPET_ENDPOINT in s for s in snippets)


@pytest.mark.parametrize("index", range(len(_services_snippets())))
async def test_services_snippet_runs_against_the_emulator(index: int) -> None:
    code = _services_snippets()[index]
    async with Emulator(EmulatorConfig(gateways=2, tunnels_per_gateway=2)) as emu:
        code = code.replace(SNIPPET_ENDPOINT, repr(emu.url))
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-X",
            "dev",
            "-W",
            "error",
            "-c",
            code,
            env=dict(os.environ),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
        deleting = [t for t in emu.tunnels() if t["state"] == "DELETING"]
    assert proc.returncode == 0, err.decode()
    assert err.decode() == ""
    lines = out.decode().splitlines()
    assert lines[0].startswith("DescribeVpnConnections ok in ")
    assert lines[1].startswith("DeleteVpnConnection ok in ")
    assert lines[2] == "deleted False 1"
    assert lines[3].startswith("0 0 {'DescribeVpnConnections': 99.5, 'DeleteVpnConnection': 99.5}")
    assert len(deleting) == 1
