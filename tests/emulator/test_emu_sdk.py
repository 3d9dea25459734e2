"""The official Tencent Cloud Python SDK, unchanged, against the emulator.

``HttpProfile(protocol="http", endpoint="127.0.0.1:PORT")`` points it here. The SDK's client is
blocking, so each call runs in a thread while the emulator serves in the test's event loop.
Every signing mode it offers (TC3 over POST and GET, HmacSHA256/HmacSHA1 over POST and GET),
HTTPS with the run's CA, its default ``zh-CN`` language and every injectable code are covered.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.vpc.v20170312 import models, vpc_client

from tcvpc.emulator import DEMO_REGION, DEMO_SECRET_ID, DEMO_SECRET_KEY, Emulator, EmulatorConfig
from tcvpc.emulator.codes import INJECTABLE


def sdk_client(
    emu: Emulator,
    secret_id: str = DEMO_SECRET_ID,
    secret_key: str = DEMO_SECRET_KEY,
    *,
    sign_method: str = "TC3-HMAC-SHA256",
    req_method: str = "POST",
    language: str = "zh-CN",  # the SDK's own default
) -> vpc_client.VpcClient:
    tls = emu.url.startswith("https://")
    http_profile = HttpProfile(
        protocol="https" if tls else "http",
        endpoint=emu.endpoint,
        reqTimeout=10,
        reqMethod=req_method,
        certification=str(emu.ca_path) if tls else None,
    )
    return vpc_client.VpcClient(
        credential.Credential(secret_id, secret_key),
        DEMO_REGION,
        ClientProfile(signMethod=sign_method, httpProfile=http_profile, language=language),
    )


def describe(client: vpc_client.VpcClient, **params: Any) -> Any:
    request = models.DescribeVpnConnectionsRequest()
    request.from_json_string(json.dumps(params))
    return client.DescribeVpnConnections(request)


def delete(client: vpc_client.VpcClient, gateway: str, tunnel: str) -> Any:
    request = models.DeleteVpnConnectionRequest()
    request.VpnGatewayId = gateway
    request.VpnConnectionId = tunnel
    return client.DeleteVpnConnection(request)


async def sdk_error(fn: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(TencentCloudSDKException) as info:
        await asyncio.to_thread(fn, *args, **kwargs)
    return str(info.value.get_code())


async def test_sdk_lists_pages_and_deletes_everything() -> None:
    config = EmulatorConfig(
        gateways=5, tunnels_per_gateway=30, delete_seconds=0.05, mutex_seconds=0, rate_limit=None
    )
    async with Emulator(config) as emu:
        client = sdk_client(emu)
        listed: list[tuple[str, str]] = []
        offset = 0
        while True:
            page = await asyncio.to_thread(describe, client, Offset=offset, Limit=100)
            assert page.TotalCount == 150
            if not page.VpnConnectionSet:
                break
            listed.extend((t.VpnGatewayId, t.VpnConnectionId) for t in page.VpnConnectionSet)
            assert all(t.State == "AVAILABLE" and t.CreatedTime for t in page.VpnConnectionSet)
            offset += len(page.VpnConnectionSet)
        assert sorted(listed) == sorted((t["gateway"], t["id"]) for t in emu.tunnels())
        for gateway, tunnel in listed:
            answer = await asyncio.to_thread(delete, client, gateway, tunnel)
            assert answer.RequestId
        for _ in range(100):
            if not emu.tunnels():
                break
            await asyncio.sleep(0.05)
        page = await asyncio.to_thread(describe, client)
        assert page.TotalCount == 0


async def test_sdk_sees_the_real_error_codes() -> None:
    config = EmulatorConfig(gateways=2, tunnels_per_gateway=3, delete_seconds=30, rate_limit=3)
    async with Emulator(config) as emu:
        client = sdk_client(emu)
        tunnels = emu.tunnels()
        gw, t0, t1 = tunnels[0]["gateway"], tunnels[0]["id"], None
        t1 = next(t["id"] for t in tunnels[1:] if t["gateway"] == gw)
        bad_key = sdk_client(emu, secret_key="not-the-key")
        assert await sdk_error(describe, bad_key) == "AuthFailure.SignatureFailure"
        unknown = sdk_client(emu, secret_id="AKIDsomeoneelse000000000000000000000")
        assert await sdk_error(describe, unknown) == "AuthFailure.SecretIdNotFound"
        assert await sdk_error(delete, client, gw, "vpnx-00000000") == "ResourceNotFound"
        await asyncio.to_thread(delete, client, gw, t0)
        # DeleteVpnConnection's budget is 3 per sliding second: quick repeats get throttled
        codes = [await sdk_error(delete, client, gw, t0) for _ in range(6)]
        assert "RequestLimitExceeded" in codes
        await asyncio.sleep(1.1)
        assert await sdk_error(delete, client, gw, t0) == (
            "UnsupportedOperation.DeleteVpnConnInvalidState"
        )
        assert await sdk_error(delete, client, gw, t1) == (
            "UnsupportedOperation.MutexOperationTaskRunning"
        )


MODES = [
    ("TC3-HMAC-SHA256", "GET"),
    ("HmacSHA256", "POST"),
    ("HmacSHA256", "GET"),
    ("HmacSHA1", "POST"),
    ("HmacSHA1", "GET"),
]


@pytest.mark.parametrize(("sign_method", "req_method"), MODES)
async def test_sdk_signing_modes(sign_method: str, req_method: str) -> None:
    config = EmulatorConfig(gateways=2, tunnels_per_gateway=3, delete_seconds=30, seed=4)
    async with Emulator(config) as emu:
        client = sdk_client(emu, sign_method=sign_method, req_method=req_method)
        gateway = emu.tunnels()[0]["gateway"]
        filters = [{"Name": "vpn-gateway-id", "Values": [gateway]}]
        page = await asyncio.to_thread(describe, client, Filters=filters, Offset=1, Limit=1)
        assert page.TotalCount == 3
        assert [t.VpnGatewayId for t in page.VpnConnectionSet] == [gateway]
        tunnel = page.VpnConnectionSet[0].VpnConnectionId
        await asyncio.to_thread(delete, client, gateway, tunnel)
        assert emu.tunnel(tunnel)["state"] == "DELETING"  # type: ignore[index]
        wrong = sdk_client(emu, secret_key="wrong", sign_method=sign_method, req_method=req_method)
        assert await sdk_error(describe, wrong) == "AuthFailure.SignatureFailure"


async def test_sdk_messages_follow_its_language() -> None:
    async with Emulator(EmulatorConfig(gateways=1, tunnels_per_gateway=1)) as emu:
        for language, message in [("zh-CN", "资源不存在。"), ("en-US", "The resource `vpnx")]:
            client = sdk_client(emu, language=language)
            with pytest.raises(TencentCloudSDKException) as info:
                await asyncio.to_thread(delete, client, "vpngw-00000000", "vpnx-00000000")
            assert info.value.get_code() == "ResourceNotFound"
            assert str(info.value.get_message()).startswith(message)


async def test_sdk_over_tls_with_the_runs_ca() -> None:
    config = EmulatorConfig(gateways=1, tunnels_per_gateway=2, tls=True)
    async with Emulator(config) as emu:
        assert emu.url.startswith("https://127.0.0.1:")
        page = await asyncio.to_thread(describe, sdk_client(emu))
        assert page.TotalCount == 2
        # without the CA (the SDK then trusts certifi's bundle) verification fails
        http_profile = HttpProfile(protocol="https", endpoint=emu.endpoint, reqTimeout=10)
        untrusting = vpc_client.VpcClient(
            credential.Credential(DEMO_SECRET_ID, DEMO_SECRET_KEY),
            DEMO_REGION,
            ClientProfile(httpProfile=http_profile),
        )
        with pytest.raises(TencentCloudSDKException) as info:
            await asyncio.to_thread(describe, untrusting)
        assert "CERTIFICATE_VERIFY_FAILED" in str(info.value.get_message())


@pytest.mark.parametrize("code", sorted(INJECTABLE))
async def test_every_injectable_code_reaches_the_sdk(code: str) -> None:
    config = EmulatorConfig(gateways=1, tunnels_per_gateway=1, inject={code: 1.0})
    async with Emulator(config) as emu:
        client = sdk_client(emu)
        tunnel = emu.tunnels()[0]
        actions, _ = INJECTABLE[code]
        if "DeleteVpnConnection" in actions:
            assert await sdk_error(delete, client, tunnel["gateway"], tunnel["id"]) == code
            assert emu.tunnel(tunnel["id"])["state"] == "AVAILABLE"  # type: ignore[index]
        else:
            await asyncio.to_thread(delete, client, tunnel["gateway"], tunnel["id"])
        if "DescribeVpnConnections" in actions:
            assert await sdk_error(describe, client) == code
        else:
            assert (await asyncio.to_thread(describe, client)).TotalCount == 1


ODD_NAME = "隧道 一/+&=%"  # every character that URL-encoding changes


@pytest.mark.parametrize(("sign_method", "req_method"), [*MODES, ("TC3-HMAC-SHA256", "POST")])
async def test_sdk_encodes_odd_values_in_every_mode(sign_method: str, req_method: str) -> None:
    """The canonical query string is the query as sent, not as decoded by the server."""
    async with Emulator(EmulatorConfig(gateways=1, tunnels_per_gateway=2)) as emu:
        emu.add_tunnel("vpnx-0dd0dd00", "vpngw-0dd0dd00", name=ODD_NAME)
        client = sdk_client(emu, sign_method=sign_method, req_method=req_method)
        filters = [{"Name": "vpn-connection-name", "Values": [ODD_NAME]}]
        page = await asyncio.to_thread(describe, client, Filters=filters)
        assert [t.VpnConnectionId for t in page.VpnConnectionSet] == ["vpnx-0dd0dd00"]
        assert page.VpnConnectionSet[0].VpnConnectionName == ODD_NAME
