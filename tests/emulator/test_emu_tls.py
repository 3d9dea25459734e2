"""``tls=True`` / ``--tls``: HTTPS with a throwaway CA made for the run, verification on."""

from __future__ import annotations

import asyncio
import signal
import ssl
import stat
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from click.testing import CliRunner
from emu_helpers import call

from tcvpc.emulator import Emulator, EmulatorConfig
from tcvpc.emulator.command import emulator_command

LAUNCH = "from tcvpc.emulator.command import emulator_command; emulator_command()"


async def test_https_with_the_runs_ca() -> None:
    config = EmulatorConfig(gateways=1, tunnels_per_gateway=2, tls=True)
    async with Emulator(config) as emu:
        assert emu.url.startswith("https://127.0.0.1:")
        ca_path = emu.ca_path
        context = ssl.create_default_context(cafile=str(ca_path))
        connector = aiohttp.TCPConnector(ssl=context)
        async with aiohttp.ClientSession(connector=connector) as session:
            answer = await call(session, emu.url, "DescribeVpnConnections", {})
        assert answer.response["TotalCount"] == 2
        # a client that trusts only the system's CAs refuses the certificate
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await call(session, emu.url, "DescribeVpnConnections", {})
    assert not ca_path.exists()
    assert not ca_path.parent.exists()


async def test_the_ca_file_is_private() -> None:
    async with Emulator(EmulatorConfig(gateways=0, tls=True)) as emu:
        assert stat.S_IMODE(emu.ca_path.stat().st_mode) == 0o600
        assert stat.S_IMODE(emu.ca_path.parent.stat().st_mode) == 0o700
        assert b"BEGIN CERTIFICATE" in emu.ca_path.read_bytes()
        assert b"PRIVATE KEY" not in emu.ca_path.read_bytes()


async def test_each_run_has_its_own_ca() -> None:
    async with (
        Emulator(EmulatorConfig(gateways=0, tls=True)) as one,
        Emulator(EmulatorConfig(gateways=0, tls=True)) as two,
    ):
        assert one.ca_path != two.ca_path
        assert one.ca_path.read_bytes() != two.ca_path.read_bytes()
        # one run's CA does not vouch for the other's certificate
        context = ssl.create_default_context(cafile=str(one.ca_path))
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as s:
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await call(s, two.url, "DescribeVpnConnections", {})


async def test_plain_http_has_no_ca() -> None:
    async with Emulator(EmulatorConfig(gateways=0)) as emu:
        assert emu.url.startswith("http://")
        with pytest.raises(RuntimeError, match="tls=True"):
            _ = emu.ca_path


def test_cli_explains_a_missing_trustme(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "trustme", None)  # makes `import trustme` fail
    result = CliRunner().invoke(emulator_command, ["--tls"])
    assert result.exit_code == 2
    assert "pip install 'tcvpc[emulator]'" in result.output


async def test_python_api_explains_a_missing_trustme(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "trustme", None)
    emu = Emulator(EmulatorConfig(gateways=0, tls=True))
    with pytest.raises(RuntimeError, match="trustme"):
        await emu.start()


@pytest.mark.slow
async def test_cli_prints_the_ca_path_second_and_removes_it() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCH, "--tls", "--gateways", "1", "--tunnels-per-gateway", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        ca_path = Path(proc.stdout.readline().strip())
        assert url.startswith("https://127.0.0.1:")
        assert ca_path.is_file()
        context = ssl.create_default_context(cafile=str(ca_path))
        async with (
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as s,
            s.get(url + "/_emulator/stats") as resp,
        ):
            assert (await resp.json())["tunnels"]["total"] == 1
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 20) == 0
        assert not ca_path.exists()
        assert not ca_path.parent.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
