"""B7: a service that simply gathers its deletes, with and without gateway lanes.

``asyncio.gather`` of one ``delete_vpn_connection`` call per tunnel (200 tunnels on 10 gateways)
with a default ``VpcClient`` (its default retry policy, budget and rate), once with gateway lanes
(the default) and once with ``gateway_lanes=False``. Each run gets a fresh emulator in its own
process at the emulator's defaults: 100 requests per sliding second per action, a delete keeps
its tunnel ``DELETING`` and holds the gateway's mutex for 1 s, no injected faults.

The reference is the busiest gateway's serial time: its tunnels x the mutex hold (each delete
must wait for the previous one's task on that gateway), which no client can beat.

    python -m benchmarks.b7_gather [--quick]
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import click

from benchmarks.common import (
    DEMO_REGION,
    DEMO_SECRET_ID,
    DEMO_SECRET_KEY,
    Report,
    save_results,
    start_emulator,
    tunnel_ids,
    write_seed_csv,
)
from tcvpc import Credential, VpcClient

DELETE = "DeleteVpnConnection"
GOAL_WALL = 1.3


@dataclass(frozen=True)
class Settings:
    gateways: int
    per_gateway: int
    mutex_seconds: float
    """The emulator's delete duration and mutex hold (its default is 1 s for both)."""

    @property
    def tunnels(self) -> int:
        return self.gateways * self.per_gateway

    @property
    def serial_seconds(self) -> float:
        return self.per_gateway * self.mutex_seconds


QUICK = Settings(gateways=10, per_gateway=8, mutex_seconds=0.5)
FULL = Settings(gateways=10, per_gateway=20, mutex_seconds=1.0)


@dataclass
class GatherResult:
    client: str
    calls_ok: int
    calls_failed: int
    failures_by_error: dict[str, int]
    wall_seconds: float
    wall_vs_serial: float
    delete_requests: int
    busy_answers: int
    retry_budget_left: int
    retry_budget_capacity: int
    lane_busy_retries: int


async def gather_deletes(
    url: str, tunnels: list[tuple[str, str]], lanes: bool
) -> dict[str, object]:
    """The service's code: one gather, a default client; what each call returned or raised."""
    client = VpcClient(
        Credential(DEMO_SECRET_ID, DEMO_SECRET_KEY),
        region=DEMO_REGION,
        endpoint=url,
        gateway_lanes=lanes,
    )
    async with client:
        t0 = time.monotonic()
        results = await asyncio.gather(
            *(
                client.delete_vpn_connection(vpn_gateway_id=g, vpn_connection_id=t)
                for g, t in tunnels
            ),
            return_exceptions=True,
        )
        wall = time.monotonic() - t0
    failures: Counter[str] = Counter()
    for result in results:
        if isinstance(result, BaseException):
            failures[type(result).__name__] += 1
    return {
        "wall": wall,
        "ok": len(results) - sum(failures.values()),
        "failures": dict(failures),
        "budget_left": client.retry_budget.available,
        "budget_capacity": client.retry_budget.capacity,
        "lane_busy": client.gateway_lanes.stats.busy if client.gateway_lanes else 0,
    }


def run(quick: bool = False) -> Report:
    s = QUICK if quick else FULL
    tunnels = tunnel_ids(s.gateways, s.per_gateway)
    results: list[GatherResult] = []
    with tempfile.TemporaryDirectory(prefix="tcvpc-b7-") as tmp:
        seed = write_seed_csv(Path(tmp) / "tunnels.csv", tunnels)
        for lanes in (True, False):
            with start_emulator(
                seed_file=seed,
                rate_limit=100,
                delete_seconds=s.mutex_seconds,
                mutex_seconds=s.mutex_seconds,
                max_seconds=600,
            ) as emu:
                got = asyncio.run(asyncio.wait_for(gather_deletes(emu.url, tunnels, lanes), 300))
                stats = emu.stats()
            codes: dict[str, int] = stats["requests"].get(DELETE, {})
            wall = float(got["wall"])  # type: ignore[arg-type]
            failures: dict[str, int] = got["failures"]  # type: ignore[assignment]
            result = GatherResult(
                client="tcvpc, gateway lanes (default)" if lanes else "tcvpc, gateway_lanes=False",
                calls_ok=int(got["ok"]),  # type: ignore[call-overload]
                calls_failed=sum(failures.values()),
                failures_by_error=failures,
                wall_seconds=wall,
                wall_vs_serial=wall / s.serial_seconds,
                delete_requests=sum(codes.values()),
                busy_answers=codes.get("UnsupportedOperation.MutexOperationTaskRunning", 0),
                retry_budget_left=int(got["budget_left"]),  # type: ignore[call-overload]
                retry_budget_capacity=int(got["budget_capacity"]),  # type: ignore[call-overload]
                lane_busy_retries=int(got["lane_busy"]),  # type: ignore[call-overload]
            )
            results.append(result)
            print(
                f"  {result.client:32} ok {result.calls_ok}/{s.tunnels} wall "
                f"{result.wall_seconds:.1f}s ({result.wall_vs_serial:.2f}x serial) "
                f"busy answers {result.busy_answers}",
                flush=True,
            )
    return _report(s, quick, results)


def _report(s: Settings, quick: bool, results: list[GatherResult]) -> Report:
    report = Report("b7_gather", quick)
    report.add_table(
        f"B7 gather: {s.tunnels} delete calls in one asyncio.gather over {s.gateways} gateways, "
        f"default VpcClient; emulator: delete/mutex {s.mutex_seconds:g} s, 100 req/s; busiest "
        f"gateway's serial time {s.serial_seconds:g} s",
        [
            "client",
            "calls OK",
            "calls failed",
            "failures",
            "wall s",
            "wall / serial time",
            "delete requests (server)",
            "MutexOperationTaskRunning (server)",
            "retry budget left",
        ],
        [
            [
                r.client,
                r.calls_ok,
                r.calls_failed,
                ", ".join(f"{k} {v}" for k, v in sorted(r.failures_by_error.items())) or "-",
                r.wall_seconds,
                r.wall_vs_serial,
                r.delete_requests,
                r.busy_answers,
                f"{r.retry_budget_left}/{r.retry_budget_capacity}",
            ]
            for r in results
        ],
    )
    on = results[0]
    report.add_table(
        "B7 goals (gateway lanes on, the default)",
        ["goal", "measured", "goal met"],
        [
            [
                "every call succeeds",
                f"{on.calls_ok}/{s.tunnels}",
                on.calls_ok == s.tunnels,
            ],
            [
                f"wall ≤ {GOAL_WALL}x the busiest gateway's serial time",
                f"{on.wall_vs_serial:.3f}x",
                on.wall_vs_serial <= GOAL_WALL,
            ],
            [
                "expected contention spends no retry budget",
                f"{on.retry_budget_left}/{on.retry_budget_capacity} left",
                on.retry_budget_left == on.retry_budget_capacity,
            ],
        ],
    )
    report.data = {"settings": asdict(s), "results": [asdict(r) for r in results]}
    return report


@click.command()
@click.option("--quick", is_flag=True, help="80 tunnels, 0.5 s mutex.")
def main(quick: bool) -> None:
    """B7: a gather of deletes with a default client, gateway lanes on and off."""
    save_results(run(quick=quick))


if __name__ == "__main__":
    main()
