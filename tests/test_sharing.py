"""Clients of one account in one process share one budget (issue 9), against the emulator."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tcvpc import Credential, LimiterRegistry, VpcClient
from tcvpc.emulator import DEMO_REGION, DEMO_SECRET_ID, DEMO_SECRET_KEY, Emulator, EmulatorConfig

DEMO = Credential(DEMO_SECRET_ID, DEMO_SECRET_KEY)


async def _two_clients_delete(emu: Emulator, per_client: int, **kw: object) -> None:
    tunnels = [(str(t["gateway"]), str(t["id"])) for t in emu.tunnels()]
    halves = [tunnels[:per_client], tunnels[per_client : 2 * per_client]]

    async def run(client: VpcClient, todo: list[tuple[str, str]]) -> None:
        sem = asyncio.Semaphore(50)

        async def one(gateway: str, tunnel: str) -> None:
            async with sem:
                await client.delete_vpn_connection(vpn_gateway_id=gateway, vpn_connection_id=tunnel)

        await asyncio.gather(*(one(g, t) for g, t in todo))

    credential = kw.pop("credential", DEMO)
    async with (
        VpcClient(credential, region=DEMO_REGION, endpoint=emu.url, **kw) as a,  # type: ignore[arg-type]
        VpcClient(credential, region=DEMO_REGION, endpoint=emu.url, **kw) as b,  # type: ignore[arg-type]
    ):
        await asyncio.gather(run(a, halves[0]), run(b, halves[1]))


@pytest.mark.slow
async def test_two_default_clients_stay_under_the_limit_together() -> None:
    config = EmulatorConfig(gateways=60, tunnels_per_gateway=5, delete_seconds=0, mutex_seconds=0)
    async with Emulator(config) as emu:
        await _two_clients_delete(emu, 150)
        stats = emu.stats()
    assert stats["max_requests_per_second"]["by_action"]["DeleteVpnConnection"] <= 100
    assert stats["throttled"] == 0
    assert stats["tunnels_deleted"] == 300


@pytest.mark.slow
async def test_two_clients_with_keys_from_the_environment_share_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The most common set-up: no credential argument, keys in TENCENTCLOUD_SECRET_ID/_KEY.
    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", DEMO_SECRET_ID)
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", DEMO_SECRET_KEY)
    config = EmulatorConfig(gateways=60, tunnels_per_gateway=5, delete_seconds=0, mutex_seconds=0)
    async with Emulator(config) as emu:
        await _two_clients_delete(emu, 150, credential=None)
        stats = emu.stats()
    assert stats["max_requests_per_second"]["by_action"]["DeleteVpnConnection"] <= 100
    assert stats["throttled"] == 0
    assert stats["tunnels_deleted"] == 300


@pytest.mark.slow
async def test_separate_registries_do_not_share() -> None:
    """The counter-check: with a registry each, the server sees both clients' full rates."""
    config = EmulatorConfig(
        gateways=60, tunnels_per_gateway=5, delete_seconds=0, mutex_seconds=0, rate_limit=None
    )
    async with Emulator(config) as emu:
        tunnels = [(str(t["gateway"]), str(t["id"])) for t in emu.tunnels()]
        registries = [LimiterRegistry(), LimiterRegistry()]
        clients = [
            VpcClient(DEMO, region=DEMO_REGION, endpoint=emu.url, limiters=r) for r in registries
        ]
        async with clients[0], clients[1]:
            await asyncio.gather(
                *(
                    clients[i % 2].delete_vpn_connection(vpn_gateway_id=g, vpn_connection_id=t)
                    for i, (g, t) in enumerate(tunnels[:300])
                )
            )
        stats = emu.stats()
    assert stats["max_requests_per_second"]["by_action"]["DeleteVpnConnection"] > 120


def test_default_clients_work_in_loops_run_one_after_another() -> None:
    async def once() -> int:
        config = EmulatorConfig(gateways=2, tunnels_per_gateway=3, delete_seconds=0)
        async with Emulator(config) as emu:
            await _two_clients_delete(emu, 3)
            return int(emu.stats()["tunnels_deleted"])

    assert asyncio.run(once()) == 6
    assert asyncio.run(once()) == 6


@pytest.mark.slow
def test_the_readme_sharing_example_runs() -> None:
    text = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    section = text.split("**One budget per account in a process.**", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None
    done = subprocess.run(
        [sys.executable, "-c", match.group(1)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    max_per_second, throttled = map(int, done.stdout.split())
    assert max_per_second <= 100
    assert throttled == 0
