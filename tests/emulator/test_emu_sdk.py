"""The official Tencent Cloud Python SDK, unchanged, against the emulator.

``HttpProfile(protocol="http", endpoint="127.0.0.1:PORT")`` points it here. The SDK's client is
blocking, so each call runs in a thread while the emulator serves in the test's event loop.
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


def sdk_client(
    emu: Emulator, secret_id: str = DEMO_SECRET_ID, secret_key: str = DEMO_SECRET_KEY
) -> vpc_client.VpcClient:
    http_profile = HttpProfile(protocol="http", endpoint=emu.endpoint, reqTimeout=10)
    return vpc_client.VpcClient(
        credential.Credential(secret_id, secret_key),
        DEMO_REGION,
        ClientProfile(httpProfile=http_profile),
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
