"""Each fault kind with probability 1, burst semantics and seeded reproducibility."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from emu_helpers import call

from tcvpc.emulator import FAULT_KINDS, Emulator, EmulatorConfig, FaultConfig
from tcvpc.emulator.faults import FaultInjector


def delete_params(emu: Emulator, n: int = 0) -> dict[str, str]:
    t = emu.tunnels()[n]
    return {"VpnGatewayId": t["gateway"], "VpnConnectionId": t["id"]}


@pytest.fixture
async def emu() -> Any:
    config = EmulatorConfig(
        gateways=2, tunnels_per_gateway=3, delete_seconds=30, mutex_seconds=0, stall_seconds=3
    )
    async with Emulator(config) as emulator:
        yield emulator


@pytest.mark.parametrize(
    ("kind", "code"),
    [("internal_error", "InternalError"), ("service_unavailable", "ServiceUnavailable")],
)
async def test_error_envelope_faults(
    emu: Emulator, http: aiohttp.ClientSession, kind: str, code: str
) -> None:
    emu.set_faults(FaultConfig.only(kind))
    params = delete_params(emu)
    answer = await call(http, emu.url, "DeleteVpnConnection", params)
    assert answer.status == 200
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.code == code
    assert emu.tunnel(params["VpnConnectionId"])["state"] == "AVAILABLE"  # type: ignore[index]
    assert emu.stats()["faults"] == {kind: 1}


async def test_http_502_html(emu: Emulator, http: aiohttp.ClientSession) -> None:
    emu.set_faults(FaultConfig.only("http_502_html"))
    params = delete_params(emu)
    answer = await call(http, emu.url, "DeleteVpnConnection", params)
    assert answer.status == 502
    assert answer.headers["Content-Type"].startswith("text/html")
    assert b"502 Bad Gateway" in answer.raw
    assert emu.tunnel(params["VpnConnectionId"])["state"] == "AVAILABLE"  # type: ignore[index]


@pytest.mark.parametrize(
    ("kind", "done"), [("drop_before_action", False), ("drop_after_action", True)]
)
async def test_dropped_connections(
    emu: Emulator, http: aiohttp.ClientSession, kind: str, done: bool
) -> None:
    emu.set_faults(FaultConfig.only(kind))
    params = delete_params(emu)
    with pytest.raises(aiohttp.ClientError):
        await call(http, emu.url, "DeleteVpnConnection", params)
    state = emu.tunnel(params["VpnConnectionId"])["state"]  # type: ignore[index]
    assert state == ("DELETING" if done else "AVAILABLE")
    emu.set_faults(FaultConfig())  # the server goes on serving
    assert (await call(http, emu.url, "DescribeVpnConnections", {})).code is None


async def test_stall_outlasts_a_client_timeout(emu: Emulator) -> None:
    emu.set_faults(FaultConfig.only("stall"))
    params = delete_params(emu)
    timeout = aiohttp.ClientTimeout(total=0.5)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        with pytest.raises(asyncio.TimeoutError):
            await call(http, emu.url, "DeleteVpnConnection", params)
    # the action happened even though the answer never arrived in time
    assert emu.tunnel(params["VpnConnectionId"])["state"] == "DELETING"  # type: ignore[index]


async def test_stalled_answer_eventually_arrives(http: aiohttp.ClientSession) -> None:
    config = EmulatorConfig(
        gateways=1, tunnels_per_gateway=1, stall_seconds=0.3, faults=FaultConfig(stall=1.0)
    )
    async with Emulator(config) as emu:
        answer = await call(http, emu.url, "DescribeVpnConnections", {})
        assert answer.code is None


async def test_truncated_json(emu: Emulator, http: aiohttp.ClientSession) -> None:
    emu.set_faults(FaultConfig.only("truncated_json"))
    answer = await call(http, emu.url, "DescribeVpnConnections", {})
    assert answer.status == 200
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.raw.startswith(b'{"Response"')
    with pytest.raises(json.JSONDecodeError):
        json.loads(answer.raw)


async def test_throttle_burst(emu: Emulator, http: aiohttp.ClientSession) -> None:
    emu.set_faults(FaultConfig(throttle_burst=1.0, burst_length=4))
    codes = [(await call(http, emu.url, "DescribeVpnConnections", {})).code for _ in range(3)]
    assert codes == ["RequestLimitExceeded"] * 3
    emu.set_faults(FaultConfig(throttle_burst=0.0000001, burst_length=4))
    # the change of config ends the running burst; a tiny probability almost never starts one
    assert (await call(http, emu.url, "DescribeVpnConnections", {})).code is None


def test_burst_covers_the_following_requests() -> None:
    injector = FaultInjector(FaultConfig(throttle_burst=0.2, burst_length=5), seed=3)
    draws = [injector.draw() for _ in range(400)]
    first = draws.index("throttle_burst")  # type: ignore[arg-type]
    assert draws[first : first + 5] == ["throttle_burst"] * 5


def test_burst_ends_after_burst_seconds_however_few_requests() -> None:
    # Only the first draw can start a burst (probability ~0 afterwards): what follows is burst.
    injector = FaultInjector(FaultConfig(throttle_burst=1.0, burst_length=5, burst_seconds=0.5), 3)
    assert injector.draw(now=10.0) == "throttle_burst"
    injector._config = FaultConfig(throttle_burst=1e-12, burst_length=5, burst_seconds=0.5)
    injector._total = 1e-12
    assert injector.draw(now=10.2) == "throttle_burst"  # inside the burst's time
    assert injector.draw(now=10.6) is None  # its time is over, with requests left in it


async def test_faults_skip_requests_that_fail_auth(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    emu.set_faults(FaultConfig.only("internal_error"))
    answer = await call(http, emu.url, "DescribeVpnConnections", {}, secret_key="bad")
    assert answer.code == "AuthFailure.SignatureFailure"
    answer = await call(http, emu.url, "DescribeVpnConnections", {}, region="nowhere-1")
    assert answer.code == "UnsupportedRegion"
    assert emu.stats()["faults"] == {}


def test_draws_are_reproducible_per_seed() -> None:
    config = FaultConfig.spread(0.5)
    a = [FaultInjector(config, seed=42).draw() for _ in range(1)]
    one = FaultInjector(config, seed=42)
    two = FaultInjector(config, seed=42)
    other = FaultInjector(config, seed=43)
    seq1 = [one.draw() for _ in range(300)]
    seq2 = [two.draw() for _ in range(300)]
    seq3 = [other.draw() for _ in range(300)]
    assert seq1 == seq2
    assert seq1 != seq3
    assert a[0] == seq1[0]
    kinds = {k for k in seq1 if k is not None}
    assert len(kinds) >= 6  # spread reaches (almost surely all) kinds
    assert 0.35 < sum(k is not None for k in seq1) / 300 < 0.75


async def test_server_fault_sequence_is_reproducible(http: aiohttp.ClientSession) -> None:
    async def run() -> list[tuple[int | None, str | None]]:
        config = EmulatorConfig(
            gateways=1,
            tunnels_per_gateway=1,
            seed=5,
            faults=FaultConfig(internal_error=0.3, service_unavailable=0.3),
        )
        async with Emulator(config) as emu:
            return [
                (a.status, a.code)
                for a in [
                    await call(http, emu.url, "DescribeVpnConnections", {}) for _ in range(30)
                ]
            ]

    assert await run() == await run()


def test_seeded_ids_are_reproducible() -> None:
    def ids(seed: int) -> list[str]:
        return [
            t["id"]
            for t in Emulator(
                EmulatorConfig(gateways=3, tunnels_per_gateway=5, seed=seed)
            ).tunnels()
        ]

    assert ids(1) == ids(1)
    assert ids(1) != ids(2)
    emu = Emulator(EmulatorConfig(gateways=3, tunnels_per_gateway=5, seed=1))
    tunnels = emu.tunnels()
    assert len({t["gateway"] for t in tunnels}) == 3
    for t in tunnels:
        assert t["id"][:5] == "vpnx-"
        assert len(t["id"]) == 13
        assert t["id"][5:].isalnum()
        assert t["gateway"].startswith("vpngw-")
        assert len(t["gateway"]) == 14
        assert t["vpc"].startswith("vpc-")
        assert len(t["vpc"]) == 12
        assert t["state"] == "AVAILABLE"
        assert t["id"] == t["id"].lower()


def test_fault_config_validation() -> None:
    with pytest.raises(ValueError, match="probability"):
        FaultConfig(stall=1.5)
    with pytest.raises(ValueError, match="probability"):
        FaultConfig(stall=-0.1)
    with pytest.raises(ValueError, match="sum"):
        FaultConfig(stall=0.6, internal_error=0.6)
    with pytest.raises(ValueError, match="burst_length"):
        FaultConfig(burst_length=0)
    with pytest.raises(ValueError, match="unknown fault kind"):
        FaultConfig.only("meteor")
    spread = FaultConfig.spread(0.4)
    assert spread.total == pytest.approx(0.4)
    assert all(p == pytest.approx(0.05) for _, p in spread.probabilities())
    assert [k for k, _ in spread.probabilities()] == list(FAULT_KINDS)
