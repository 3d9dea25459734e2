"""``tcvpc emulator`` as a process and through click's runner."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from tcvpc.emulator.command import emulator_command, resolve_credentials
from tcvpc.emulator.config import DEMO_SECRET_ID, DEMO_SECRET_KEY

LAUNCH = "from tcvpc.emulator.command import emulator_command; emulator_command()"


def start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", LAUNCH, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_prints_url_first_and_stops_on_signal(signum: int) -> None:
    proc = start("--gateways", "2", "--tunnels-per-gateway", "3", "--seed", "9")
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url + "/_emulator/stats", timeout=10) as resp:
            stats = json.load(resp)
        assert stats["tunnels"]["total"] == 6
        proc.send_signal(signum)
        assert proc.wait(timeout=20) == 0
        assert proc.stdout.read() == ""  # nothing but the URL on stdout
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_refuses_remote_host_without_flag() -> None:
    result = CliRunner().invoke(emulator_command, ["--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert "--allow-remote" in result.output


def test_rejects_bad_values() -> None:
    result = CliRunner().invoke(emulator_command, ["--fault-rate", "1.5"])
    assert result.exit_code == 2
    result = CliRunner().invoke(emulator_command, ["--delete-seconds", "-1"])
    assert result.exit_code == 2
    result = CliRunner().invoke(emulator_command, ["--secret-id", "AKIDonly"])
    assert result.exit_code == 2


def test_help_lists_the_options() -> None:
    result = CliRunner().invoke(emulator_command, ["--help"])
    assert result.exit_code == 0
    for option in (
        "--host",
        "--port",
        "--gateways",
        "--tunnels-per-gateway",
        "--seed-file",
        "--secret-id",
        "--secret-key",
        "--region",
        "--rate-limit",
        "--delete-seconds",
        "--mutex-seconds",
        "--fault-rate",
        "--inject",
        "--tls",
        "--seed",
    ):
        assert option in result.output


def test_credentials_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TENCENTCLOUD_SECRET_ID", raising=False)
    monkeypatch.delenv("TENCENTCLOUD_SECRET_KEY", raising=False)
    assert resolve_credentials(None, None) == (DEMO_SECRET_ID, DEMO_SECRET_KEY, "demo pair")
    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", "AKIDenv")
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", "envkey")
    assert resolve_credentials(None, None) == ("AKIDenv", "envkey", "environment")
    assert resolve_credentials("AKIDflag", "flagkey") == ("AKIDflag", "flagkey", "flags")


@pytest.mark.slow
def test_seed_file_through_the_cli(tmp_path: Path) -> None:
    seed = tmp_path / "tunnels.csv"
    seed.write_text(
        "VpnGatewayId,VpnConnectionId,State\n"
        "vpngw-aaaaaaaa,vpnx-aaaaaaa1,AVAILABLE\n"
        "vpngw-aaaaaaaa,vpnx-aaaaaaa2,PENDING\n"
    )
    proc = start("--seed-file", str(seed))
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        with urllib.request.urlopen(url + "/_emulator/stats", timeout=10) as resp:
            stats = json.load(resp)
        assert stats["tunnels"] == {"PENDING": 1, "AVAILABLE": 1, "DELETING": 0, "total": 2}
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
