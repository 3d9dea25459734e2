"""The service example under load: examples/service.py in a subprocess (``-X dev -W error``)
against the emulator with 2% faults, 2,000 deletes at concurrency 200, under asyncio and uvloop.

Each delete must succeed or fail with a typed error within its deadline, the emulator must never
see more than 100 deletes in a second, a 200 must mean the tunnel is really deleting or gone,
the process must stay silent on stderr (no warning, no unclosed resource) and stop cleanly on
SIGTERM, and /metrics must export the client's telemetry.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tcvpc import Backoff, Credential, RetryPolicy, VpcClient
from tcvpc.emulator import DEMO_REGION, DEMO_SECRET_ID, DEMO_SECRET_KEY

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).parent.parent / "examples" / "service.py"
REQUESTS = 2000
CONCURRENCY = 200
DEADLINE = 8.0
SLACK = 3.0  # the example's own handling, a loaded 2-core CI machine
TYPED_ERRORS = {"DeadlineExceededError", "QueueFullError"}  # plus any ApiError/TransportError


def _loop_kinds() -> list[Any]:
    kinds: list[Any] = ["asyncio"]
    try:
        import uvloop  # noqa: F401
    except ImportError:
        if os.environ.get("CI") == "true":
            kinds.append("uvloop")  # CI installs the dev extra: a missing uvloop fails there
        else:
            kinds.append(pytest.param("uvloop", marks=pytest.mark.skip(reason="uvloop missing")))
    else:
        kinds.append("uvloop")
    return kinds


async def _start(*args: str, env: dict[str, str] | None = None) -> tuple[Any, str]:
    """Start a Python subprocess that prints its URL as the last word of its first line."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        env=env or dict(os.environ),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
    if not line.strip():
        proc.kill()
        _, err = await proc.communicate()
        pytest.fail(f"{args[:4]} did not start: {err.decode()[-2000:]}")
    return proc, line.decode().split()[-1]


async def _stop(proc: Any) -> bytes:
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    return bytes(err)


async def _start_emulator() -> tuple[Any, str]:
    # Its own process, as the real API is: the load generator's loop cannot delay its clock.
    return await _start(
        "-c",
        "from tcvpc.cli import main; main()",
        "emulator",
        "--gateways=400",
        "--tunnels-per-gateway=5",
        "--delete-seconds=0.5",
        "--mutex-seconds=0",
        "--fault-rate=0.02",
        "--stall-seconds=3",
        "--seed=16",
    )


async def _tunnels(url: str) -> dict[str, dict[str, str]]:
    """Every listed tunnel, id → {gateway, state}, through the client itself."""
    # Throttles wait (jittered, from 50 ms): the emulator's throttle bursts last up to 0.5 s,
    # and retries without a wait would all land inside one.
    policy = dataclasses.replace(
        RetryPolicy(max_attempts=30).without_waits(), throttled=Backoff(0.05, 1.0, 20)
    )
    async with VpcClient(
        Credential(DEMO_SECRET_ID, DEMO_SECRET_KEY),
        region=DEMO_REGION,
        endpoint=url,
        retry_policy=policy,
        timeout=5.0,
    ) as client:
        return {
            t.vpn_connection_id: {"gateway": t.vpn_gateway_id, "state": t.state.value}
            async for t in client.describe_vpn_connections()
        }


async def _start_service(emu_url: str, loop_kind: str) -> tuple[Any, str]:
    env = {
        **os.environ,
        "TENCENTCLOUD_SECRET_ID": DEMO_SECRET_ID,
        "TENCENTCLOUD_SECRET_KEY": DEMO_SECRET_KEY,
    }
    return await _start(
        "-X",
        "dev",
        "-W",
        "error",
        str(EXAMPLE),
        "--region",
        DEMO_REGION,
        "--endpoint",
        emu_url,
        "--port",
        "0",
        "--deadline",
        str(DEADLINE),
        "--loop",
        loop_kind,
        env=env,
    )


@pytest.mark.parametrize("loop_kind", _loop_kinds())
async def test_service_example_under_load(loop_kind: str) -> None:
    emulator, emu_url = await _start_emulator()
    try:
        before = await _tunnels(emu_url)
        ids = sorted(before)[:REQUESTS]
        proc, base = await _start_service(emu_url, loop_kind)
        try:
            results, health = await _load(base, [(before[i]["gateway"], i) for i in ids])
            async with aiohttp.ClientSession() as session:
                async with session.get(f"{base}/metrics") as r:
                    assert r.status == 200
                    metrics = await r.text()
                async with session.get(f"{emu_url}/_emulator/stats") as r:
                    stats = await r.json()
        finally:
            err = await _stop(proc)
        after = await _tunnels(emu_url)
    finally:
        await _stop(emulator)

    assert proc.returncode == 0, err.decode()[-3000:]
    stderr = err.decode()
    for bad in ("Warning", "Traceback", "Exception ignored", "never awaited", "Unclosed"):
        assert bad not in stderr, stderr[-3000:]

    statuses = Counter(status for status, _, _ in results)
    assert len(results) == REQUESTS
    for (status, body, elapsed), tunnel_id in zip(results, ids, strict=True):
        assert elapsed <= DEADLINE + SLACK, (status, body, elapsed)
        if status == 200:
            # Only we delete these tunnels: a not-found can only follow one of our own attempts
            # (a dropped answer), so it must read "deleted" (inferred), never "already_gone".
            assert body["outcome"] == "deleted", body
            state = after.get(tunnel_id, {}).get("state", "gone")
            assert state in ("gone", "DELETING"), (body, state)
        else:
            assert status in (502, 503, 504), (status, body)
            assert body["error"].endswith("Error"), body  # a tcvpc exception, by name
    assert statuses[200] >= REQUESTS * 0.9, statuses  # 2% faults are retried, not surfaced

    rate: dict[str, Any] = stats["max_requests_per_second"]
    assert rate["by_action"]["DeleteVpnConnection"] <= 100, rate

    assert all(s == 200 for s in health)
    for name in (
        'tcvpc_calls_total{action="DeleteVpnConnection",outcome="ok"}',
        "tcvpc_call_latency_seconds_bucket",
        "tcvpc_limiter_wait_seconds_total",
        'tcvpc_limiter_rate{action="DeleteVpnConnection"}',
        "tcvpc_waiting_calls 0",
        "tcvpc_in_flight_calls 0",
        "tcvpc_requests_sent_total",
        "tcvpc_retries_total",
        "tcvpc_retry_budget_available",
    ):
        assert name in metrics, name
    calls = [m for m in metrics.splitlines() if m.startswith("tcvpc_calls_total{")]
    assert sum(int(m.split()[-1]) for m in calls) == REQUESTS  # one call per request


async def _load(
    base: str, tunnels: list[tuple[str, str]]
) -> tuple[list[tuple[int, dict[str, Any], float]], list[int]]:
    """DELETE every tunnel at CONCURRENCY; probe /health meanwhile."""
    results: list[tuple[int, dict[str, Any], float]] = [(0, {}, 0.0)] * len(tunnels)
    health: list[int] = []
    next_index = iter(range(len(tunnels)))
    connector = aiohttp.TCPConnector(limit=CONCURRENCY + 10)
    timeout = aiohttp.ClientTimeout(total=DEADLINE + 30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker() -> None:
            for i in next_index:
                gateway, tunnel = tunnels[i]
                url = f"{base}/tunnels/{gateway}/{tunnel}"
                start = time.monotonic()
                async with session.delete(url) as response:
                    body = await response.json()
                    results[i] = (response.status, body, time.monotonic() - start)

        async def prober(done: asyncio.Event) -> None:
            while not done.is_set():
                async with session.get(f"{base}/health") as response:
                    health.append(response.status)
                await asyncio.sleep(0.5)

        done = asyncio.Event()
        probe = asyncio.create_task(prober(done))
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        done.set()
        await probe
    return results, health
