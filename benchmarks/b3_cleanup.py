"""B3: bulk cleanup against its lower bound, with realistic delete/mutex times and 2% faults.

Each contender gets a fresh emulator (its own process; 100 requests per sliding second per
action; a delete keeps the tunnel ``DELETING`` and holds the gateway's mutex for
``delete_seconds``; 2% of requests meet an injected fault spread over every kind; a stalled
answer comes after ``stall_seconds``, shorter than either client's timeout):

* ``tcvpc cleanup``: the command itself, in its own process, on a CSV of every tunnel;
* ``users today``: the official async client with its ``StandardRetryer``, one delete per tunnel
  in ``asyncio.gather`` behind ``asyncio.Semaphore(concurrency)``;
* ``careful user``: what a careful user writes today with the official async client: one loop
  per gateway, each delete followed by polling ``DescribeVpnConnections`` until the tunnel is
  gone, every request behind a correct ``aiolimiter.AsyncLimiter(1, 1/99)`` per action (at most
  100 in any sliding second), every error retried after a pause a bounded number of times (so
  each retry takes a token too), ``ResourceNotFound`` counted as gone, and a tunnel reported
  deleted once Describe no longer lists it.

Lower bound = max(requests needed / 100 per s, busiest gateway's serial time), where requests
needed = tunnels / (1 - fault rate) (each faulted attempt must be repeated) and the serial time
= its tunnels x the mutex hold. Afterwards the tunnels still present are listed (Describe) and
compared with what each tool said: a tunnel still there that the tool did not report as failed
(or reported nothing about) is **lost**.

With ``--gateway-bound`` (2,000 tunnels on 20 gateways, 0.25 s mutex, 2% faults, 2 s stalls) the
busiest gateway's serial time (25 s) is the bound, well above the rate's (20.4 s): every stalled
answer or retry wait on a gateway's chain shows in the wall time.

    python -m benchmarks.b3_cleanup [--quick | --gateway-bound]
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click
from aiolimiter import AsyncLimiter
from tencentcloud.common import credential as sdk_credential
from tencentcloud.common import retry_async as sdk_retry_async
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.vpc.v20170312 import models as sdk_models
from tencentcloud.vpc.v20170312 import vpc_client_async as sdk_async

from benchmarks.common import (
    DEMO_REGION,
    DEMO_SECRET_ID,
    DEMO_SECRET_KEY,
    EmulatorProcess,
    Report,
    save_results,
    start_emulator,
    tcvpc_command,
    tunnel_ids,
    write_seed_csv,
)
from tcvpc import Credential, RetryPolicy, VpcClient

Tunnels = Sequence[tuple[str, str]]
SERVER_RATE = 100.0
GOAL_WALL = 1.05
GOAL_EXTRA_REQUESTS = 1.05
DELETE = "DeleteVpnConnection"


@dataclass(frozen=True)
class Settings:
    gateways: int
    per_gateway: int
    delete_seconds: float
    fault_rate: float
    stall_seconds: float
    concurrency: int

    @property
    def tunnels(self) -> int:
        return self.gateways * self.per_gateway


QUICK = Settings(20, 50, 0.2, 0.02, 1.0, 32)
FULL = Settings(100, 100, 1.0, 0.02, 2.0, 32)
GATEWAY_BOUND = Settings(20, 100, 0.25, 0.02, 2.0, 32)


def lower_bound(s: Settings) -> dict[str, float]:
    needed = s.tunnels / (1 - s.fault_rate)
    by_rate = needed / SERVER_RATE
    serial = s.per_gateway * s.delete_seconds
    return {
        "requests_needed": needed,
        "by_rate_s": by_rate,
        "serial_s": serial,
        "lower_bound_s": max(by_rate, serial),
    }


@dataclass
class Outcome:
    tool: str
    wall_seconds: float
    reported: dict[str, str]
    """tunnel id → what the tool said (``deleted``, ``already_gone``, ``failed:CODE``...)."""
    exit_status: int | None = None


async def _remaining(emu: EmulatorProcess) -> set[str]:
    """Tunnel IDs still listed (any state but gone), once DELETING ones had time to vanish."""
    async with VpcClient(
        Credential(DEMO_SECRET_ID, DEMO_SECRET_KEY),
        region=DEMO_REGION,
        endpoint=emu.url,
        retry_policy=RetryPolicy.patient(),
    ) as client:
        return {t.vpn_connection_id async for t in client.describe_vpn_connections()}


def run_tcvpc(emu: EmulatorProcess, seed: Path, tmp: Path, s: Settings) -> Outcome:
    report = tmp / "report.jsonl"
    args = [
        "cleanup", "--input", str(seed), "--region", DEMO_REGION, "--endpoint", emu.url,
        "--journal", str(tmp / "journal.sqlite"), "--report", str(report),
        "--concurrency", str(s.concurrency),
    ]  # fmt: skip
    env = {**os.environ, "TENCENTCLOUD_SECRET_ID": DEMO_SECRET_ID,
           "TENCENTCLOUD_SECRET_KEY": DEMO_SECRET_KEY}  # fmt: skip
    t0 = time.monotonic()
    with (tmp / "cleanup.log").open("w") as log:
        proc = subprocess.run(
            tcvpc_command(*args, max_seconds=1800),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            check=False,
        )
    wall = time.monotonic() - t0
    reported: dict[str, str] = {}
    if report.exists():
        for line in report.read_text().splitlines():
            row = json.loads(line)
            outcome = str(row["outcome"])
            if outcome == "failed":
                outcome += f":{row['code']}"
            reported[row["VpnConnectionId"]] = outcome
    return Outcome("tcvpc cleanup", wall, reported, proc.returncode)


async def _users_today(url: str, tunnels: Tunnels, concurrency: int) -> dict[str, str]:
    http = HttpProfile(protocol="http", endpoint=url.removeprefix("http://"))
    profile = ClientProfile(httpProfile=http, retryer=sdk_retry_async.StandardRetryer())
    client = sdk_async.VpcClient(
        sdk_credential.Credential(DEMO_SECRET_ID, DEMO_SECRET_KEY), DEMO_REGION, profile
    )
    semaphore = asyncio.Semaphore(concurrency)

    async def delete(gateway: str, tunnel: str) -> object:
        async with semaphore:
            request = sdk_models.DeleteVpnConnectionRequest()
            request.VpnGatewayId = gateway
            request.VpnConnectionId = tunnel
            return await client.DeleteVpnConnection(request)

    async with client:
        results = await asyncio.gather(*(delete(g, t) for g, t in tunnels), return_exceptions=True)
    reported: dict[str, str] = {}
    for (_, tunnel), result in zip(tunnels, results, strict=True):
        if isinstance(result, BaseException):
            code = getattr(result, "code", None) or type(result).__name__
            reported[tunnel] = f"failed:{code}"
        else:
            reported[tunnel] = "deleted"
    return reported


def run_users_today(emu: EmulatorProcess, tunnels: Tunnels, s: Settings) -> Outcome:
    t0 = time.monotonic()
    reported = asyncio.run(asyncio.wait_for(_users_today(emu.url, tunnels, s.concurrency), 1800))
    return Outcome("users today (SDK async + gather)", time.monotonic() - t0, reported)


CAREFUL_ATTEMPTS = 10
CAREFUL_PAUSE = 0.5
CAREFUL_POLL = 0.2
CAREFUL_WAIT = 120.0
GONE_CODES = ("ResourceNotFound", "UnsupportedOperation.RecordNotExists")


async def _careful_user(url: str, tunnels: Tunnels) -> dict[str, str]:
    http = HttpProfile(protocol="http", endpoint=url.removeprefix("http://"), reqTimeout=30)
    client = sdk_async.VpcClient(
        sdk_credential.Credential(DEMO_SECRET_ID, DEMO_SECRET_KEY),
        DEMO_REGION,
        ClientProfile(httpProfile=http),
    )
    delete_limit, describe_limit = AsyncLimiter(1, 1 / 99), AsyncLimiter(1, 1 / 99)
    reported: dict[str, str] = {}

    async def delete(gateway: str, tunnel: str) -> str | None:
        """Delete until accepted (or gone); ``None`` then, else the last error's code."""
        code = "unknown"
        for _ in range(CAREFUL_ATTEMPTS):
            request = sdk_models.DeleteVpnConnectionRequest()
            request.VpnGatewayId, request.VpnConnectionId = gateway, tunnel
            try:
                async with delete_limit:
                    await client.DeleteVpnConnection(request)
                return None
            except Exception as exc:  # the careful user retries whatever went wrong
                code = getattr(exc, "code", None) or type(exc).__name__
                if code in GONE_CODES or code.endswith("DeleteVpnConnInvalidState"):
                    return None  # gone, or DELETING after an attempt whose answer was lost
            await asyncio.sleep(CAREFUL_PAUSE)
        return code

    async def gone(tunnel: str) -> bool:
        request = sdk_models.DescribeVpnConnectionsRequest()
        request.VpnConnectionIds = [tunnel]
        try:
            async with describe_limit:
                answer = await client.DescribeVpnConnections(request)
        except Exception as exc:
            return getattr(exc, "code", None) in GONE_CODES
        return not answer.VpnConnectionSet

    async def gateway_loop(gateway: str, mine: list[str]) -> None:
        for tunnel in mine:
            failed = await delete(gateway, tunnel)
            if failed is not None:
                reported[tunnel] = f"failed:{failed}"
                continue
            deadline = time.monotonic() + CAREFUL_WAIT
            while not (done := await gone(tunnel)) and time.monotonic() < deadline:
                await asyncio.sleep(CAREFUL_POLL)
            reported[tunnel] = "deleted" if done else "failed:still-there"

    by_gateway: dict[str, list[str]] = {}
    for gateway, tunnel in tunnels:
        by_gateway.setdefault(gateway, []).append(tunnel)
    async with client:
        await asyncio.gather(*(gateway_loop(g, mine) for g, mine in by_gateway.items()))
    return reported


def run_careful_user(emu: EmulatorProcess, tunnels: Tunnels) -> Outcome:
    t0 = time.monotonic()
    reported = asyncio.run(asyncio.wait_for(_careful_user(emu.url, tunnels), 1800))
    return Outcome("careful user (SDK async, loop per gateway)", time.monotonic() - t0, reported)


@dataclass
class ToolResult:
    tool: str
    wall_seconds: float
    wall_vs_lower_bound: float
    delete_requests: int
    requests_per_tunnel: float
    injected_faults_on_deletes: int
    extra_requests_per_tunnel: float
    non_ok_answers_by_code: dict[str, int]
    reported: dict[str, int]
    deleted_at_end: int
    left_undeleted: int
    lost: int
    server_max_per_sliding_second: int
    exit_status: int | None


def _summarise(
    outcome: Outcome, stats: dict[str, Any], remaining: set[str], tunnels: Tunnels, bound: float
) -> ToolResult:
    codes: dict[str, int] = stats["requests"].get(DELETE, {})
    requests = sum(codes.values())
    # Faults are drawn per API request (Describe too) and the stats do not split them by action:
    # the deletes' share is estimated in proportion to their share of all requests.
    total_requests = max(1, int(stats["requests_total"]))
    faults = round(sum(stats["faults"].values()) * requests / total_requests)
    n = len(tunnels)
    lost = 0
    for _, tunnel in tunnels:
        said = outcome.reported.get(tunnel)
        if said is None or (tunnel in remaining and not said.startswith("failed")):
            lost += 1
    return ToolResult(
        tool=outcome.tool,
        wall_seconds=outcome.wall_seconds,
        wall_vs_lower_bound=outcome.wall_seconds / bound,
        delete_requests=requests,
        requests_per_tunnel=requests / n,
        injected_faults_on_deletes=faults,
        extra_requests_per_tunnel=(requests - faults) / n,
        non_ok_answers_by_code={k: v for k, v in sorted(codes.items()) if k != "OK"},
        reported=dict(Counter(v.split(":")[0] for v in outcome.reported.values())),
        deleted_at_end=n - len(remaining),
        left_undeleted=len(remaining),
        lost=lost,
        server_max_per_sliding_second=int(stats["max_requests_per_second"]["by_action"][DELETE]),
        exit_status=outcome.exit_status,
    )


def run(quick: bool = False, gateway_bound: bool = False) -> Report:
    s = GATEWAY_BOUND if gateway_bound else QUICK if quick else FULL
    bound = lower_bound(s)
    tunnels = tunnel_ids(s.gateways, s.per_gateway)
    results: list[ToolResult] = []
    with tempfile.TemporaryDirectory(prefix="tcvpc-b3-") as tmp_name:
        tmp = Path(tmp_name)
        seed = write_seed_csv(tmp / "tunnels.csv", tunnels)
        for tool in ("tcvpc", "careful-user", "users-today"):
            with start_emulator(
                seed_file=seed,
                rate_limit=SERVER_RATE,
                delete_seconds=s.delete_seconds,
                mutex_seconds=s.delete_seconds,
                fault_rate=s.fault_rate,
                stall_seconds=s.stall_seconds,
                seed=7,
                max_seconds=2400,
            ) as emu:
                if tool == "tcvpc":
                    outcome = run_tcvpc(emu, seed, tmp, s)
                elif tool == "careful-user":
                    outcome = run_careful_user(emu, tunnels)
                else:
                    outcome = run_users_today(emu, tunnels, s)
                stats = emu.stats()
                time.sleep(s.delete_seconds + 0.5)
                remaining = asyncio.run(_remaining(emu))
            result = _summarise(outcome, stats, remaining, tunnels, bound["lower_bound_s"])
            results.append(result)
            print(
                f"  {result.tool:34} wall {result.wall_seconds:.1f}s "
                f"({result.wall_vs_lower_bound:.2f}x bound) left={result.left_undeleted} "
                f"lost={result.lost}",
                flush=True,
            )
    return _report(s, quick, bound, results, "b3_gateway_bound" if gateway_bound else "b3_cleanup")


def _report(
    s: Settings, quick: bool, bound: dict[str, float], results: list[ToolResult], name: str
) -> Report:
    report = Report(name, quick)
    report.add_table(
        f"B3 bulk cleanup: {s.tunnels:,} tunnels over {s.gateways} gateways, delete/mutex "
        f"{s.delete_seconds:g} s, {s.fault_rate:.0%} faults (stall {s.stall_seconds:g} s), server "
        f"limit 100/s; lower bound {bound['lower_bound_s']:.1f} s (rate "
        f"{bound['by_rate_s']:.1f} s, busiest gateway {bound['serial_s']:.1f} s)",
        [
            "tool",
            "wall s",
            "wall / lower bound",
            "delete requests / tunnel",
            "beyond injected faults / tunnel (est.)",
            "deleted (server)",
            "left undeleted",
            "lost",
            "max in a sliding second (server)",
        ],
        [
            [
                r.tool,
                r.wall_seconds,
                r.wall_vs_lower_bound,
                r.requests_per_tunnel,
                r.extra_requests_per_tunnel,
                r.deleted_at_end,
                r.left_undeleted,
                r.lost,
                r.server_max_per_sliding_second,
            ]
            for r in results
        ],
    )
    codes = sorted({c for r in results for c in r.non_ok_answers_by_code})
    report.add_table(
        "B3 non-OK answers to deletes by code (server-counted: each one is a retry or a failure)",
        ["code", *(r.tool for r in results)],
        [[c, *(r.non_ok_answers_by_code.get(c, 0) for r in results)] for c in codes],
    )
    t = results[0]
    report.add_table(
        "B3 goals (tcvpc cleanup)",
        ["goal", "measured", "goal met"],
        [
            [
                f"wall ≤ {GOAL_WALL}x lower bound",
                f"{t.wall_vs_lower_bound:.3f}x",
                t.wall_vs_lower_bound <= GOAL_WALL,
            ],
            [
                f"≤ {GOAL_EXTRA_REQUESTS} delete requests per tunnel beyond injected faults",
                f"{t.extra_requests_per_tunnel:.3f}",
                t.extra_requests_per_tunnel <= GOAL_EXTRA_REQUESTS,
            ],
            ["tunnels lost = 0", str(t.lost), t.lost == 0],
            [
                "every tunnel deleted",
                f"{t.deleted_at_end:,}/{s.tunnels:,}",
                t.deleted_at_end == s.tunnels,
            ],
        ],
    )
    report.data = {
        "settings": asdict(s),
        "lower_bound": bound,
        "results": [asdict(r) for r in results],
    }
    return report


@click.command()
@click.option("--quick", is_flag=True, help="1,000 tunnels over 20 gateways, 0.2 s deletes.")
@click.option(
    "--gateway-bound", is_flag=True, help="2,000 tunnels on 20 gateways, 0.25 s mutex, 2 s stalls."
)
def main(quick: bool, gateway_bound: bool) -> None:
    """B3: tcvpc cleanup and the usual gather-the-SDK script against the lower bound."""
    if quick and gateway_bound:
        raise click.UsageError("--quick and --gateway-bound are two different scenarios")
    save_results(run(quick=quick, gateway_bound=gateway_bound))


if __name__ == "__main__":
    main()
