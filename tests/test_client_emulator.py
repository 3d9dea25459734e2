"""VpcClient against the emulator over real loopback HTTP, through the whole fault menu."""

from __future__ import annotations

import asyncio

import pytest

from tcvpc import (
    AuthError,
    Credential,
    DeleteOutcome,
    InvalidStateError,
    NotFoundError,
    RetryPolicy,
    VpcClient,
)
from tcvpc.emulator import (
    DEMO_REGION,
    DEMO_SECRET_ID,
    DEMO_SECRET_KEY,
    FAULT_KINDS,
    Emulator,
    EmulatorConfig,
    FaultConfig,
)
from tcvpc.retry import Backoff

DEMO = Credential(DEMO_SECRET_ID, DEMO_SECRET_KEY)
# Quick schedules, but room for many attempts: with 30% of requests starting a throttle burst,
# one call may meet a dozen in a row.
FAST = RetryPolicy(
    max_attempts=40,
    deadline=30,
    throttled=Backoff(0.05, 0.5, 40),
    transient=Backoff(0.01, 0.1, 10),
    gateway_busy=Backoff(0.02, 0.2, 20),
    invalid_state=Backoff(0.02, 0.2, 20),
)


def client_for(emu: Emulator, credential: Credential = DEMO, **kw: object) -> VpcClient:
    options: dict[str, object] = {
        "region": DEMO_REGION,
        "endpoint": emu.url,
        "retry_policy": FAST,
        "timeout": 2.0,
    }
    options.update(kw)
    return VpcClient(credential, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", FAULT_KINDS)
async def test_every_tunnel_deleted_through_each_fault(kind: str) -> None:
    config = EmulatorConfig(
        gateways=4,
        tunnels_per_gateway=6,
        delete_seconds=0.05,
        faults=FaultConfig.only(kind, 0.3, burst_length=3),
        stall_seconds=5.0,
        seed=7,
    )
    async with Emulator(config) as emu, client_for(emu, timeout=0.5) as client:
        tunnels = [
            c
            async for c in client.describe_vpn_connections(
                filters={"vpc-id": [t["vpc"] for t in emu.tunnels()][:1]}
            )
        ]
        refs = [(t["gateway"], t["id"]) for t in emu.tunnels()]
        assert tunnels  # discovery works through faults too

        async def delete_all_on(gateway: str) -> list[DeleteOutcome]:
            out = []
            for gw, conn in refs:
                if gw == gateway:
                    result = await client.delete_vpn_connection(
                        vpn_gateway_id=gw, vpn_connection_id=conn, missing_ok=True
                    )
                    out.append(result.outcome)
            return out

        gateways = sorted({gw for gw, _ in refs})
        outcomes = [o for res in await asyncio.gather(*map(delete_all_on, gateways)) for o in res]
        assert len(outcomes) == len(refs)
        await asyncio.sleep(0.2)
        remaining = [t for t in emu.tunnels() if t["state"] != "DELETING"]
        assert remaining == []
        # Only inferred deletions may have come back "already gone": nothing was there before.
        assert DeleteOutcome.ALREADY_GONE not in outcomes or kind in (
            "drop_after_action",
            "stall",
            "truncated_json",
        )
        assert emu.stats()["faults"][kind] > 0  # type: ignore[index]


async def test_mutex_and_invalid_state_are_ridden_out() -> None:
    config = EmulatorConfig(gateways=1, tunnels_per_gateway=5, delete_seconds=0.1, seed=3)
    async with Emulator(config) as emu, client_for(emu) as client:
        refs = [(t["gateway"], t["id"]) for t in emu.tunnels()]
        results = await asyncio.gather(
            *(client.delete_vpn_connection(vpn_gateway_id=g, vpn_connection_id=c) for g, c in refs)
        )
        assert all(r.outcome is DeleteOutcome.DELETED for r in results)
        assert client.stats.retries_by_code["UnsupportedOperation.MutexOperationTaskRunning"] > 0
        # A second delete of a tunnel that is DELETING hits the invalid state, then not found.
        g, c = refs[0]
        with pytest.raises((InvalidStateError, NotFoundError)):
            await client.delete_vpn_connection(
                vpn_gateway_id=g, vpn_connection_id=c, retry_policy=RetryPolicy.no_retries()
            )


async def test_clock_skew_is_corrected_by_resigning() -> None:
    config = EmulatorConfig(gateways=1, tunnels_per_gateway=1, clock_skew_seconds=3600, seed=1)
    async with Emulator(config) as emu, client_for(emu) as client:
        (t,) = emu.tunnels()
        result = await client.delete_vpn_connection(
            vpn_gateway_id=t["gateway"], vpn_connection_id=t["id"]
        )
        assert result.attempts == 2
        assert client.stats.errors_by_code["AuthFailure.SignatureExpire"] == 1
        # The learnt offset sticks: the next call signs right the first time.
        await client.call("DescribeVpnConnections", {})
        assert client.stats.errors_by_code["AuthFailure.SignatureExpire"] == 1


async def test_wrong_key_is_not_retried() -> None:
    config = EmulatorConfig(gateways=1, tunnels_per_gateway=1, seed=1)
    async with (
        Emulator(config) as emu,
        client_for(emu, credential=Credential(DEMO_SECRET_ID, "wrong-key")) as client,
    ):
        with pytest.raises(AuthError) as info:
            await client.call("DescribeVpnConnections", {})
        assert info.value.code == "AuthFailure.SignatureFailure"
        assert client.stats.requests_sent == 1
        assert "wrong-key" not in str(info.value)


async def test_server_side_throttling_slows_client_without_losing_calls() -> None:
    config = EmulatorConfig(gateways=1, tunnels_per_gateway=1, rate_limit=20, seed=1)
    async with Emulator(config) as emu, client_for(emu, rate=60) as client:
        await asyncio.gather(*(client.call("DescribeVpnConnections", {}) for _ in range(60)))
        assert client.stats.throttled > 0
        assert client.stats.retries_by_code["RequestLimitExceeded"] == client.stats.throttled


async def test_caller_timeout_cancels_without_retry_or_leak() -> None:
    config = EmulatorConfig(
        gateways=1,
        tunnels_per_gateway=2,
        faults=FaultConfig.only("stall", 1.0),
        stall_seconds=5.0,
        seed=1,
    )
    async with Emulator(config) as emu, client_for(emu, rate=5) as client:
        first, second = emu.tunnels()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(
                client.delete_vpn_connection(
                    vpn_gateway_id=first["gateway"], vpn_connection_id=first["id"]
                ),
                timeout=0.3,
            )
        assert client.stats.requests_sent == 1  # cancelled, not retried
        emu.set_faults(FaultConfig())
        loop = asyncio.get_running_loop()
        start = loop.time()
        for _ in range(6):  # more than a window at rate 5: the cancelled permit blocks nothing
            await client.call("DescribeVpnConnections", {})
        assert loop.time() - start < 3.0
        result = await client.delete_vpn_connection(
            vpn_gateway_id=second["gateway"], vpn_connection_id=second["id"]
        )
        assert result.attempts == 1
