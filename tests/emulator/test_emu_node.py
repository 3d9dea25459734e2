"""The official Node.js SDK (``tencentcloud-sdk-nodejs-common``, unchanged) against the emulator.

It signs ``host:`` without the port while sending ``Host`` with it, and takes its credential
scope's service from the endpoint's first label, so it is pointed at ``vpc.localhost:PORT``
with an HTTP agent that resolves every name to 127.0.0.1 (it can reach nothing else). The SDK is
installed with npm into a temporary directory once per session; without node and npm the tests
are skipped with the reason, and a failed install skips them too, except in CI where it fails.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tcvpc.emulator import DEMO_REGION, DEMO_SECRET_ID, DEMO_SECRET_KEY, Emulator, EmulatorConfig

pytestmark = pytest.mark.slow

PACKAGE = "tencentcloud-sdk-nodejs-common"

PROBE = """
const http = require("http");
const { CommonClient } = require("tencentcloud-sdk-nodejs-common");
const [port, action, params, signMethod, reqMethod, language] = process.argv.slice(2);
// Every name resolves to loopback: the SDK can reach the emulator and nothing else.
const lookup = (host, opts, cb) =>
  opts && opts.all ? cb(null, [{ address: "127.0.0.1", family: 4 }]) : cb(null, "127.0.0.1", 4);
const client = new CommonClient("vpc.localhost:" + port, "2017-03-12", {
  credential: {
    secretId: process.env.TENCENTCLOUD_SECRET_ID,
    secretKey: process.env.TENCENTCLOUD_SECRET_KEY,
  },
  region: process.env.TENCENTCLOUD_REGION,
  profile: {
    signMethod,
    language: language || undefined,
    httpProfile: {
      protocol: "http://",
      agent: new http.Agent({ lookup }),
      reqMethod,
      reqTimeout: 10,
    },
  },
});
client.request(action, JSON.parse(params)).then(
  (r) => console.log(JSON.stringify({ ok: r })),
  (e) => console.log(JSON.stringify({ code: e.code, message: e.message })),
);
"""


def _unavailable(reason: str) -> None:
    print(f"\nNode.js SDK tests skipped: {reason}")  # visible with -s and in CI logs
    pytest.skip(reason)


@pytest.fixture(scope="session")
def node_sdk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with the SDK installed and the probe script, or a skip with the reason."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        _unavailable("node and npm are not both on PATH")
    workdir = tmp_path_factory.mktemp("node-sdk")
    try:
        done = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--prefix", str(workdir), PACKAGE],
            capture_output=True,
            text=True,
            timeout=300,
        )
    except subprocess.TimeoutExpired:
        done = None
    if done is None or done.returncode != 0:
        detail = "timed out" if done is None else done.stderr.strip()[-300:]
        reason = f"npm install {PACKAGE} failed: {detail}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        _unavailable(reason)
    (workdir / "probe.js").write_text(PROBE)
    return workdir


async def node_call(
    workdir: Path,
    emu: Emulator,
    action: str,
    params: dict[str, Any] | None = None,
    *,
    sign_method: str = "TC3-HMAC-SHA256",
    req_method: str = "POST",
    language: str = "",
    secret_key: str = DEMO_SECRET_KEY,
) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update(
        TENCENTCLOUD_SECRET_ID=DEMO_SECRET_ID,
        TENCENTCLOUD_SECRET_KEY=secret_key,
        TENCENTCLOUD_REGION=DEMO_REGION,
    )
    proc = await asyncio.create_subprocess_exec(
        "node",
        "probe.js",
        str(emu.port),
        action,
        json.dumps(params or {}),
        sign_method,
        req_method,
        language,
        cwd=workdir,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


@pytest.fixture
async def emu() -> Any:
    config = EmulatorConfig(gateways=2, tunnels_per_gateway=3, delete_seconds=30, seed=6)
    async with Emulator(config) as emulator:
        yield emulator


@pytest.mark.parametrize(
    ("sign_method", "req_method"),
    [
        ("TC3-HMAC-SHA256", "POST"),
        ("TC3-HMAC-SHA256", "GET"),
        ("HmacSHA256", "POST"),
        ("HmacSHA1", "GET"),
    ],
)
async def test_node_sdk_lists(
    node_sdk: Path, emu: Emulator, sign_method: str, req_method: str
) -> None:
    gateway = emu.tunnels()[0]["gateway"]
    params = {"Filters": [{"Name": "vpn-gateway-id", "Values": [gateway]}], "Limit": 2}
    result = await node_call(
        node_sdk,
        emu,
        "DescribeVpnConnections",
        params,
        sign_method=sign_method,
        req_method=req_method,
    )
    assert "ok" in result, result
    assert result["ok"]["TotalCount"] == 3
    assert [t["VpnGatewayId"] for t in result["ok"]["VpnConnectionSet"]] == [gateway, gateway]


async def test_node_sdk_deletes_and_meets_errors(node_sdk: Path, emu: Emulator) -> None:
    tunnel = emu.tunnels()[0]
    params = {"VpnGatewayId": tunnel["gateway"], "VpnConnectionId": tunnel["id"]}
    result = await node_call(node_sdk, emu, "DeleteVpnConnection", params)
    assert "ok" in result, result
    assert emu.tunnel(tunnel["id"])["state"] == "DELETING"  # type: ignore[index]
    result = await node_call(node_sdk, emu, "DeleteVpnConnection", params, language="zh-CN")
    assert result["code"] == "UnsupportedOperation.DeleteVpnConnInvalidState"
    assert "删除" in result["message"]
    result = await node_call(node_sdk, emu, "DescribeVpnConnections", secret_key="wrong")
    assert result["code"] == "AuthFailure.SignatureFailure"


async def test_node_sdk_meets_an_injected_code(node_sdk: Path) -> None:
    config = EmulatorConfig(
        gateways=1, tunnels_per_gateway=1, inject={"InternalError.ModuleError": 1}
    )
    async with Emulator(config) as emu:
        result = await node_call(node_sdk, emu, "DescribeVpnConnections")
    assert result["code"] == "InternalError.ModuleError"


async def test_node_sdk_encodes_odd_values(node_sdk: Path, emu: Emulator) -> None:
    name = "隧道 一/+&=%"
    emu.add_tunnel("vpnx-0dd0dd00", "vpngw-0dd0dd00", name=name)
    params = {"Filters": [{"Name": "vpn-connection-name", "Values": [name]}]}
    for sign_method, req_method in [("TC3-HMAC-SHA256", "GET"), ("HmacSHA256", "GET")]:
        result = await node_call(
            node_sdk,
            emu,
            "DescribeVpnConnections",
            params,
            sign_method=sign_method,
            req_method=req_method,
        )
        assert "ok" in result, (sign_method, result)
        assert [t["VpnConnectionName"] for t in result["ok"]["VpnConnectionSet"]] == [name]
