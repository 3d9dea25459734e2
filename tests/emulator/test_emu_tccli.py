"""tccli, Tencent's own command-line client (from PyPI, unchanged), driving the emulator.

tccli takes ``--endpoint http://127.0.0.1:PORT`` (a full URL: plain HTTP to loopback) and reads
credentials and region from ``TENCENTCLOUD_*``; HOME is a temporary directory so its config and
logs never touch the user's. Each call is a real ``tccli`` process.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from emu_helpers import require

from tcvpc.emulator import DEMO_REGION, DEMO_SECRET_ID, DEMO_SECRET_KEY, Emulator, EmulatorConfig

pytestmark = pytest.mark.slow

RUN_TCCLI = "import sys; from tccli.main import main; sys.exit(main())"


@pytest.fixture(autouse=True)
def _needs_tccli() -> None:
    require(importlib.util.find_spec("tccli") is not None, "tccli (pip install tccli)")


async def tccli(
    home: Path, emu: Emulator, action: str, *args: str, secret_key: str = DEMO_SECRET_KEY
) -> tuple[int, Any, str]:
    """Run ``tccli vpc ACTION ...``; return (exit status, parsed stdout or None, stderr)."""
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}  # loopback only
    env.update(
        HOME=str(home),
        TENCENTCLOUD_SECRET_ID=DEMO_SECRET_ID,
        TENCENTCLOUD_SECRET_KEY=secret_key,
        TENCENTCLOUD_REGION=DEMO_REGION,
        NO_PROXY="127.0.0.1,localhost",
    )
    env.pop("TCCLI_PROFILE", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        RUN_TCCLI,
        "vpc",
        action,
        "--endpoint",
        emu.url,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=90)
    assert proc.returncode is not None
    text = out.decode()
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    return proc.returncode, parsed, err.decode() + text


def sdk_code(output: str) -> str:
    """The code tccli prints for a TencentCloudSDKException (``code:X message:...``)."""
    marker = "code:"
    assert marker in output, output
    return output.split(marker, 1)[1].split()[0]


@pytest.fixture
async def emu() -> Any:
    config = EmulatorConfig(
        gateways=2, tunnels_per_gateway=3, delete_seconds=30, mutex_seconds=30, seed=5
    )
    async with Emulator(config) as emulator:
        yield emulator


async def test_tccli_lists_with_filters_and_paging(emu: Emulator, tmp_path: Path) -> None:
    gateway = emu.tunnels()[0]["gateway"]
    filters = json.dumps([{"Name": "vpn-gateway-id", "Values": [gateway]}])
    status, page, output = await tccli(
        tmp_path, emu, "DescribeVpnConnections", "--Filters", filters, "--Limit", "2"
    )
    assert status == 0, output
    assert page["TotalCount"] == 3
    assert [t["VpnGatewayId"] for t in page["VpnConnectionSet"]] == [gateway, gateway]
    assert page["VpnConnectionSet"][0]["VpnProto"] == "IPSEC"


async def test_tccli_deletes_then_meets_the_busy_gateway(emu: Emulator, tmp_path: Path) -> None:
    gateway = emu.tunnels()[0]["gateway"]
    first, second = [t for t in emu.tunnels() if t["gateway"] == gateway][:2]
    args = ("--VpnGatewayId", first["gateway"], "--VpnConnectionId", first["id"])
    status, answer, output = await tccli(tmp_path, emu, "DeleteVpnConnection", *args)
    assert status == 0, output
    assert answer["RequestId"]
    assert emu.tunnel(first["id"])["state"] == "DELETING"  # type: ignore[index]
    # the gateway's mutex is held for 30 s: a second delete on it is refused
    args = ("--VpnGatewayId", second["gateway"], "--VpnConnectionId", second["id"])
    status, _, output = await tccli(tmp_path, emu, "DeleteVpnConnection", *args)
    assert status != 0
    assert sdk_code(output) == "UnsupportedOperation.MutexOperationTaskRunning"
    assert emu.tunnel(second["id"])["state"] == "AVAILABLE"  # type: ignore[index]


async def test_tccli_with_a_wrong_key(emu: Emulator, tmp_path: Path) -> None:
    status, _, output = await tccli(
        tmp_path, emu, "DescribeVpnConnections", secret_key="not-the-key"
    )
    assert status != 0
    assert sdk_code(output) == "AuthFailure.SignatureFailure"
    assert "not-the-key" not in output


async def test_tccli_is_throttled(tmp_path: Path) -> None:
    """tccli's ``--waiter`` polls in one process, faster than a 3/s budget allows."""
    config = EmulatorConfig(gateways=1, tunnels_per_gateway=1, rate_limit=3)
    async with Emulator(config) as emu:
        waiter = "{'expr': 'TotalCount', 'to': -1, 'timeout': 30, 'interval': 0}"
        status, _, output = await tccli(tmp_path, emu, "DescribeVpnConnections", "--waiter", waiter)
        assert status != 0
        assert sdk_code(output) == "RequestLimitExceeded"
        assert emu.stats()["throttled"] >= 1


async def test_tccli_meets_an_injected_throttle(tmp_path: Path) -> None:
    config = EmulatorConfig(
        gateways=1, tunnels_per_gateway=1, inject={"LimitExceeded.ActionLimited": 1.0}
    )
    async with Emulator(config) as emu:
        status, _, output = await tccli(tmp_path, emu, "DescribeVpnConnections")
        assert status != 0
        assert sdk_code(output) == "LimitExceeded.ActionLimited"
