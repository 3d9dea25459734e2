"""Every README example runs as written, against an emulator over loopback.

Each ```python block runs in a subprocess; a block that defines ``test_`` functions is run by
pytest instead (the fixture-in-another-repository example). Each ```bash / ```sh block runs under
``bash -e -o pipefail`` with ``tcvpc`` on the PATH (``python -m tcvpc`` from this tree). A shell
block that leaves a process in the background (the credentials example starts an emulator the
next block uses) runs as the setup of the block after it. Every block gets its own working
directory and its own emulator, seeded with the README's demo tunnels, and the environment the
README tells the reader to export: the demo key pair, the region and ``TCVPC_ENDPOINT`` (and
``TCVPC_REDIS_URL``, a redis-server of the test's own, for the fleet-quota section).

A Python block that names ``"http://127.0.0.1:PORT"`` (standing for ``tcvpc emulator --port
PORT``, as the Services example does) gets the test emulator's URL in its place.

Only the install and development lines are not run (they install packages or run this suite);
:func:`test_only_install_blocks_are_skipped` keeps that list honest.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import tcvpc
from tcvpc.emulator import DEMO_REGION, DEMO_SECRET_ID, DEMO_SECRET_KEY, Emulator, EmulatorConfig

README = Path(__file__).resolve().parents[1] / "README.md"
SRC = str(Path(tcvpc.__file__).resolve().parents[1])
DEMO_TUNNELS = (
    "VpnGatewayId,VpnConnectionId\n"
    "vpngw-demo0001,vpnx-demo0001\n"
    "vpngw-demo0001,vpnx-demo0002\n"
    "vpngw-demo0002,vpnx-demo0003\n"
)
_NOT_RUN = ("pip install", "python3 -m pytest", "bash .ci/run")
_FIXED_PORT = re.compile(r'"http://127\.0\.0\.1:\d+"')

# What some blocks must print (a block that runs but says the wrong thing is a failure too).
EXPECT = {
    "locate_tunnels(client": ["on_another_gateway", "deleted"],
    "### As a library": [" deleted"],
    "tcvpc cleanup --input tunnels.csv --dry-run": ["would delete vpngw-demo0001/vpnx-demo0001"],
}


@dataclass(frozen=True)
class Block:
    lang: str
    code: str
    line: int
    section: str

    @property
    def shell(self) -> bool:
        return self.lang in ("bash", "sh")

    @property
    def leaves_background(self) -> bool:
        """A shell block that starts a background job and does not stop it."""
        return (
            self.shell
            and re.search(r"&\s*($|#)", self.code, re.M) is not None
            and ("kill " not in self.code)
        )


def blocks() -> list[Block]:
    text = README.read_text(encoding="utf-8")
    found = []
    section = ""
    fence = re.compile(r"^```(\w*)\n(.*?)^```$", re.M | re.S)
    pos = 0
    for match in fence.finditer(text):
        for heading in re.findall(r"^#+ .*$", text[pos : match.start()], re.M):
            section = heading
        pos = match.end()
        line = text.count("\n", 0, match.start()) + 1
        found.append(Block(match.group(1), match.group(2), line, section))
    return found


def runnable() -> list[list[Block]]:
    """Runnable blocks, grouped: a background-leaving shell block with the block after it."""
    groups: list[list[Block]] = []
    pending: Block | None = None
    for block in blocks():
        if block.lang not in ("python", "bash", "sh"):
            continue
        if block.shell and any(marker in block.code for marker in _NOT_RUN):
            continue
        if pending is not None:
            groups.append([pending, block])
            pending = None
        elif block.leaves_background:
            pending = block
        else:
            groups.append([block])
    if pending is not None:
        groups.append([pending])
    return groups


def test_only_install_blocks_are_skipped() -> None:
    skipped = [
        b for b in blocks() if b.lang in ("bash", "sh") and any(m in b.code for m in _NOT_RUN)
    ]
    assert 1 <= len(skipped) <= 3, [b.line for b in skipped]
    for block in skipped:
        for line in block.code.splitlines():
            assert line.startswith(("pip install", "python3 -m pytest", "ruff", "bash .ci")), line
    assert {b.lang for b in blocks()} <= {"python", "bash", "sh", ""}
    assert sum(len(g) for g in runnable()) + len(skipped) == sum(
        1 for b in blocks() if b.lang in ("python", "bash", "sh")
    )


def env_for(tmp_path: Path, url: str) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / "tcvpc"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m tcvpc "$@"\n')
    script.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENCENTCLOUD_")}
    env.update(
        PYTHONPATH=os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p),
        PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        HOME=str(tmp_path),
        TENCENTCLOUD_SECRET_ID=DEMO_SECRET_ID,
        TENCENTCLOUD_SECRET_KEY=DEMO_SECRET_KEY,
        TENCENTCLOUD_REGION=DEMO_REGION,
        TCVPC_ENDPOINT=url,
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    return env


def run_block(block: Block, cwd: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    code = block.code
    if not block.shell:  # "http://127.0.0.1:8600" stands for `tcvpc emulator --port 8600`
        code = _FIXED_PORT.sub(repr(env["TCVPC_ENDPOINT"]), code)
    if block.shell:
        args = ["bash", "-e", "-o", "pipefail", "-c", block.code]
    elif "def test_" in block.code:
        (cwd / "test_readme_block.py").write_text(code)
        args = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "test_readme_block.py",
        ]
    else:
        args = [sys.executable, "-c", code]
    proc = subprocess.Popen(  # its own session: whatever it leaves behind is killed with it
        args, cwd=cwd, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    return proc, code


def finish(proc: subprocess.Popen[str], *, background: bool = False) -> str:
    try:
        # A block that leaves a process behind holds the pipe open: only wait for the shell.
        if background:
            proc.wait(timeout=60)
            return ""
        out, _ = proc.communicate(timeout=180)
        return out
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"timed out:\n{out}")


def kill_session(proc: subprocess.Popen[str]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return


@pytest.mark.slow
@pytest.mark.parametrize("group", runnable(), ids=lambda g: f"README-line-{g[-1].line}")
async def test_readme_block_runs(
    group: list[Block], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    seed = tmp_path / "seed.csv"
    seed.write_text(DEMO_TUNNELS)
    work = tmp_path / "work"
    work.mkdir()
    config = EmulatorConfig(seed_file=seed, delete_seconds=0.1, mutex_seconds=0.1)
    async with Emulator(config) as emu:
        env = env_for(tmp_path, emu.url)
        if any("Redis" in b.section for b in group):  # the fleet quota: a real redis-server
            redis = request.getfixturevalue("redis_server")  # fails in CI when missing
            env["TCVPC_REDIS_URL"] = redis.url
        setups: list[subprocess.Popen[str]] = []
        try:
            for block in group[:-1]:
                proc, _ = run_block(block, work, env)
                setups.append(proc)
                await _in_thread(finish, proc, background=True)
                assert proc.returncode == 0, f"setup block at line {block.line} failed"
            last = group[-1]
            proc, _ = run_block(last, work, env)
            setups.append(proc)
            out = await _in_thread(finish, proc)
        finally:
            for p in setups:
                kill_session(p)
    assert proc.returncode == 0, f"README block at line {last.line} ({last.section}):\n{out}"
    if last.section == "### As a library":  # 3 gateways x 4 tunnels, each deleted once
        assert sum(line.endswith(" deleted") for line in out.splitlines()) == 12, out
        report = (work / "report.jsonl").read_text().splitlines()
        assert [json.loads(r)["outcome"] for r in report] == ["deleted"] * 12
    for marker, wanted in EXPECT.items():
        if marker in last.code or marker == last.section:
            for text in wanted:
                assert text in out, f"{text!r} not in the output of line {last.line}:\n{out}"


async def _in_thread(fn: object, *args: object, **kw: object) -> str:
    assert callable(fn)
    result = await asyncio.to_thread(fn, *args, **kw)
    return str(result)
