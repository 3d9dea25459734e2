"""Checked by ``mypy --strict`` (tests/test_typing.py), never run: what users' type checkers see."""

from __future__ import annotations

import contextlib
from typing import Any, assert_type

from tcvpc import (
    CallEvent,
    DeleteVpnConnectionResponse,
    DescribeVpnConnectionsResponse,
    VpcClient,
    VpnConnection,
    VpnConnectionDict,
)


async def typed_answers(client: VpcClient) -> None:
    params = {"VpnGatewayId": "g", "VpnConnectionId": "c"}
    deleted = await client.call("DeleteVpnConnection", params)
    assert_type(deleted, DeleteVpnConnectionResponse)
    assert_type(deleted["RequestId"], str)

    described = await client.call("DescribeVpnConnections", {"Limit": 1})
    assert_type(described, DescribeVpnConnectionsResponse)
    assert_type(described["TotalCount"], int)
    for item in described["VpnConnectionSet"]:
        assert_type(item, VpnConnectionDict)
        assert_type(item.get("State"), str | None)

    other = await client.call("DescribeVpnGateways")
    assert_type(other, dict[str, Any])


async def early_exit(client: VpcClient) -> VpnConnection | None:
    # The iterator is an async generator: aclosing() accepts it, so stopping early closes it.
    async with contextlib.aclosing(client.describe_vpn_connections()) as tunnels:
        async for tunnel in tunnels:
            assert_type(tunnel.raw, VpnConnectionDict)
            return tunnel
    return None


def on_call(event: CallEvent) -> None:
    print(event.action, event.outcome, event.latency)


def hooks() -> VpcClient:
    return VpcClient(region="ap-guangzhou", on_call=on_call, max_waiting=100)
