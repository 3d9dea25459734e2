"""locate_tunnels against the emulator: a not-found is checked before it is believed."""

from __future__ import annotations

from tcvpc import Credential, TunnelRef, VpcClient
from tcvpc.emulator import DEMO_REGION, DEMO_SECRET_ID, DEMO_SECRET_KEY, Emulator, EmulatorConfig
from tcvpc.verify import WhereaboutsKind, locate_tunnels


async def test_locate_tells_gone_present_deleting_and_wrong_gateway() -> None:
    config = EmulatorConfig(gateways=2, tunnels_per_gateway=8, delete_seconds=30, seed=5)
    async with Emulator(config) as emu:
        tunnels = emu.tunnels()
        gateways = sorted({t["gateway"] for t in tunnels})
        on_a = [t for t in tunnels if t["gateway"] == gateways[0]]
        present, deleting = on_a[0], on_a[1]
        async with VpcClient(
            Credential(DEMO_SECRET_ID, DEMO_SECRET_KEY), region=DEMO_REGION, endpoint=emu.url
        ) as client:
            await client.delete_vpn_connection(
                vpn_gateway_id=deleting["gateway"], vpn_connection_id=deleting["id"]
            )
            refs = [
                TunnelRef(present["gateway"], present["id"]),
                TunnelRef(deleting["gateway"], deleting["id"]),
                TunnelRef(gateways[1], on_a[2]["id"]),  # real tunnel, wrong gateway
                TunnelRef(gateways[0], "vpnx-zz000000"),  # no such tunnel anywhere
            ]
            # Nine IDs: more than one filter holds (5), so the lookup is split and merged.
            extra = [TunnelRef(gateways[0], t["id"]) for t in on_a[3:]]
            found = await locate_tunnels(client, [*refs, *extra, refs[0]])
    kinds = [w.kind for w in found]
    assert kinds[:4] == [
        WhereaboutsKind.PRESENT,
        WhereaboutsKind.DELETING,
        WhereaboutsKind.ON_ANOTHER_GATEWAY,
        WhereaboutsKind.GONE,
    ]
    assert len(found) == 4 + len(extra)  # the duplicate is looked up once
    assert found[2].found is not None
    assert found[2].found.vpn_gateway_id == gateways[0]
    assert found[3].gone
    assert not found[0].gone


async def test_locate_nothing_sends_nothing() -> None:
    class NoCalls:
        def describe_vpn_connections(self, **kw: object) -> object:
            raise AssertionError("nothing to look up, nothing to send")

    assert await locate_tunnels(NoCalls(), []) == []  # type: ignore[arg-type]
