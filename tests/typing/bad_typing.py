"""Mistakes mypy must catch (tests/test_typing.py expects exactly these errors)."""

from __future__ import annotations

from tcvpc import VpcClient


async def mistakes(client: VpcClient) -> None:
    deleted = await client.call("DeleteVpnConnection", {})
    deleted["RequestID"]  # E: typo in a key
    described = await client.call("DescribeVpnConnections", {})
    described["TotalCount"].upper()  # E: an int has no upper()
    async for tunnel in client.describe_vpn_connections():
        tunnel.raw["VpnConnectionID"]  # E: typo in a key
