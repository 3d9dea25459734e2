"""B6: sharing the quota with a stranger that spends 40 of the 100 requests per second.

Each run gets a fresh emulator (its own process, ``--rate-limit 100 --stranger-rate 40
--stranger-seconds S``), so the server admits us 60/s until the stranger stops, then 100/s. Two
workloads, each with three limiters, on the same tunnels (10 per gateway):

* **cleanup**: the cleanup engine (what ``tcvpc cleanup`` runs, in this process so the limiter
  can be chosen) on every tunnel, with the job's retry policy, against B3's gateways (a delete
  holds its gateway's mutex for 1 s, so a slow retry stretches its gateway's chain);
* **library**: 50 tasks looping on ``VpcClient.delete_vpn_connection`` (default retry policy),
  no gateway mutex.

Limiters: ``adaptive`` (tcvpc today: CUBIC over the admitted rate, ``adaptive.py``); ``landed
pacer`` (the 0.1 pacer: 0.7x per throttle, back to full within 4 s, reimplemented below); and
``naive`` (the strict limiter, no slow-down; the library user's loop retries a throttled delete
at once, the cleanup engine with its backoff). The library run is repeated with botocore's CUBIC
constants, to show why ``adaptive.py`` has its own. All numbers come from the **server**: the
emulator's per-second counts of our admitted and throttled requests and the stranger's, and
its exact maximum of our requests in any sliding second.

    python -m benchmarks.b6_strangers [--quick]
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click
from aiolimiter import AsyncLimiter

from benchmarks.common import (
    DEMO_REGION,
    DEMO_SECRET_ID,
    DEMO_SECRET_KEY,
    RESULTS,
    Report,
    save_results,
    start_emulator,
    tunnel_ids,
    write_seed_csv,
)
from tcvpc import Credential, ThrottledError, VpcClient
from tcvpc.adaptive import BETA, C
from tcvpc.cleanup import CleanupEngine, EngineConfig, Journal, read_input
from tcvpc.ratelimit import (
    DEFAULT_RATE,
    AdaptiveLimiter,
    LimiterRegistry,
    Limiters,
    Permit,
    RateLimiter,
    StrictRateLimiter,
)
from tcvpc.retry import RetryPolicy

Tunnels = Sequence[tuple[str, str]]
SERVER_LIMIT = 100
STRANGER = 40.0
LEFT = SERVER_LIMIT - STRANGER
SETTLE = 5
"""Seconds after our first request that the goals leave out (finding the share)."""
GOAL_THROTTLED = 0.03
GOAL_SHARE = 0.95
GOAL_RECOVERED = 98
GOAL_RECOVERY_SECONDS = 10
TASKS = 50
CLEANUP_HOLD = 1.0
"""Seconds a delete keeps its tunnel DELETING and its gateway's mutex in the cleanup runs."""
PER_GATEWAY = 10


@dataclass(frozen=True)
class Settings:
    tunnels: int
    stranger_seconds: float


QUICK = Settings(tunnels=1800, stranger_seconds=12)
FULL = Settings(tunnels=3000, stranger_seconds=30)


# -- the landed pacer (tcvpc 0.1), for comparison -----------------------------------------------


class LandedPacer:
    """tcvpc 0.1's ``AdaptivePacer``: 0.7x per throttle (once per 500 ms), full rate within 4 s."""

    def __init__(self, inner: StrictRateLimiter) -> None:
        self.inner = inner
        self._dropped_to = 1.0
        self._dropped_at = -1e9
        self._pacer: AsyncLimiter | None = None
        self._pacer_factor = 1.0

    def factor(self) -> float:
        elapsed = time.monotonic() - self._dropped_at
        if elapsed >= 4.0:
            return 1.0
        return 1.0 - (1.0 - self._dropped_to) * (1.0 - elapsed / 4.0) ** 3

    def on_throttled(self) -> None:
        now = time.monotonic()
        if now - self._dropped_at < 0.5:
            return
        self._dropped_to = max(0.05, self.factor() * 0.7)
        self._dropped_at = now

    def on_admitted(self) -> None:
        pass

    async def acquire(self) -> Permit:
        factor = self.factor()
        if factor < 0.999:
            if self._pacer is None or abs(factor - self._pacer_factor) > 0.05 * factor:
                self._pacer = AsyncLimiter(1, 1 / (self.inner.rate * factor))
                self._pacer_factor = factor
            await self._pacer.acquire()
        return await self.inner.acquire()

    @property
    def rate(self) -> float:
        return self.inner.rate * self.factor()


class LandedRegistry:
    def __init__(self) -> None:
        self._limiters: dict[tuple[str, str, str], LandedPacer] = {}

    def get(self, *, account: str, region: str, action: str) -> RateLimiter:
        key = (account, region, action)
        if key not in self._limiters:
            self._limiters[key] = LandedPacer(StrictRateLimiter(DEFAULT_RATE))
        return self._limiters[key]


class ConstantsRegistry:
    """tcvpc's adaptive limiter with other CUBIC constants (to show why adaptive.py's)."""

    def __init__(self, beta: float, c: float) -> None:
        self._beta, self._c = beta, c
        self._limiters: dict[tuple[str, str, str], AdaptiveLimiter] = {}

    def get(self, *, account: str, region: str, action: str) -> RateLimiter:
        key = (account, region, action)
        if key not in self._limiters:
            strict = StrictRateLimiter(DEFAULT_RATE)
            self._limiters[key] = AdaptiveLimiter(strict, beta=self._beta, c=self._c)
        return self._limiters[key]


OURS = f"adaptive (tcvpc: β={BETA:g}, C={C:g})"
LIMITERS: dict[str, Callable[[], Limiters]] = {
    OURS: lambda: LimiterRegistry(DEFAULT_RATE),
    "landed pacer (0.1)": LandedRegistry,
    "naive (strict, no slow-down)": lambda: LimiterRegistry(DEFAULT_RATE, adaptive=False),
}
CONSTANTS: dict[str, Callable[[], Limiters]] = {
    "adaptive β=0.7, C=0.4 (botocore's)": lambda: ConstantsRegistry(0.7, 0.4),
    f"adaptive β={BETA:g}, C=0.4 (botocore's C)": lambda: ConstantsRegistry(BETA, 0.4),
}
ALL_LIMITERS = {**LIMITERS, **CONSTANTS}


# -- workloads ------------------------------------------------------------------------------------


def _client(url: str, limiters: Limiters, policy: RetryPolicy | None = None) -> VpcClient:
    return VpcClient(
        Credential(DEMO_SECRET_ID, DEMO_SECRET_KEY),
        region=DEMO_REGION,
        endpoint=url,
        limiters=limiters,
        retry_policy=policy,
    )


async def run_cleanup(url: str, seed: Path, limiter: str, tmp: Path) -> dict[str, int]:
    journal = Journal(tmp / f"{limiter[:8]}-{time.monotonic_ns()}.sqlite")
    try:
        journal.ingest(read_input(seed))
        async with _client(url, ALL_LIMITERS[limiter]()) as client:
            engine = CleanupEngine(
                client,
                journal,
                EngineConfig(concurrency=32),  # the job's retry policy
            )
            summary = await engine.run()
            return dict(summary.counts)
    finally:
        journal.close()


async def run_library(url: str, tunnels: Tunnels, limiter: str) -> dict[str, int]:
    naive = limiter.startswith("naive")
    policy = RetryPolicy.no_retries() if naive else None
    todo = iter(tunnels)
    outcomes: dict[str, int] = {}
    async with _client(url, ALL_LIMITERS[limiter](), policy) as client:

        async def task() -> None:
            for gateway, tunnel in todo:
                while True:
                    try:
                        result = await client.delete_vpn_connection(
                            vpn_gateway_id=gateway, vpn_connection_id=tunnel
                        )
                    except ThrottledError:
                        if naive:  # the naive loop: try again at once
                            continue
                        raise
                    outcomes[result.outcome.value] = outcomes.get(result.outcome.value, 0) + 1
                    break

        await asyncio.gather(*(task() for _ in range(TASKS)))
    return outcomes


# -- one run, measured at the server ------------------------------------------------------------


@dataclass
class RunResult:
    workload: str
    limiter: str
    tunnels: int
    outcomes: dict[str, int]
    our_requests: int
    throttled: int
    throttled_fraction: float
    throttled_fraction_settled: float
    share_used: float
    """Our admitted requests per second / the 60 left to us, while the stranger runs, after
    the first SETTLE seconds."""
    recovery_seconds: float
    """From the stranger's stop to the first second in which we got ≥ GOAL_RECOVERED."""
    max_in_sliding_second: int
    wall_seconds: float
    stranger_admitted: int
    first_second: int
    stranger_end_second: float
    per_second: list[list[int]]


def _measure(
    workload: str, limiter: str, settings: Settings, seed: Path, tunnels: Tunnels, tmp: Path
) -> RunResult:
    extra = [
        "--stranger-rate",
        f"{STRANGER:g}",
        "--stranger-seconds",
        f"{settings.stranger_seconds:g}",
    ]
    # The job meets B3's realistic gateways (a delete holds the gateway's mutex for 1 s); the
    # library loop has no gateway scheduler, so its emulator has no mutex.
    hold = CLEANUP_HOLD if workload == "cleanup" else 0.0
    with start_emulator(
        seed_file=seed,
        rate_limit=SERVER_LIMIT,
        delete_seconds=hold,
        mutex_seconds=hold,
        max_seconds=900,
        extra_args=extra,
    ) as emu:
        t0 = time.monotonic()
        work: Awaitable[dict[str, int]] = (
            run_cleanup(emu.url, seed, limiter, tmp)
            if workload == "cleanup"
            else run_library(emu.url, tunnels, limiter)
        )
        outcomes = asyncio.run(asyncio.wait_for(work, 600))
        wall = time.monotonic() - t0
        stats = emu.stats()
    limits: dict[str, Any] = stats["rate_limit"]["by_action"]["DeleteVpnConnection"]
    seconds = [row for row in limits["per_second"] if row[1] or row[2]]
    first = seconds[0][0] if seconds else 0
    last = seconds[-1][0] if seconds else 0
    end = settings.stranger_seconds
    by_index = {row[0]: row for row in limits["per_second"]}
    admitted = limits["ours"]["admitted"]
    throttled = limits["ours"]["throttled"]
    # Full seconds while the stranger ran, after the settling time, before our last second.
    settled = [
        by_index.get(i, [i, 0, 0, 0]) for i in range(first + SETTLE, min(math.floor(end), last))
    ]
    settled_admitted = sum(row[1] for row in settled)
    settled_throttled = sum(row[2] for row in settled)
    recovery = next(
        (i + 1 - end for i in range(math.ceil(end), last) if by_index.get(i, [0, 0])[1] >= 98),
        math.nan,
    )
    return RunResult(
        workload=workload,
        limiter=limiter,
        tunnels=len(tunnels),
        outcomes=outcomes,
        our_requests=admitted + throttled,
        throttled=throttled,
        throttled_fraction=throttled / max(1, admitted + throttled),
        throttled_fraction_settled=settled_throttled / max(1, settled_admitted + settled_throttled),
        share_used=settled_admitted / len(settled) / LEFT if settled else math.nan,
        recovery_seconds=recovery,
        max_in_sliding_second=int(
            stats["max_requests_per_second"]["by_action"]["DeleteVpnConnection"]
        ),
        wall_seconds=wall,
        stranger_admitted=limits["stranger"]["admitted"],
        first_second=first,
        stranger_end_second=end,
        per_second=limits["per_second"],
    )


def draw(results: Sequence[RunResult], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[bench]'): no PNG drawn")
        return False
    workloads = sorted({r.workload for r in results})
    fig, axes = plt.subplots(len(workloads), 1, figsize=(10, 4 * len(workloads)), squeeze=False)
    colours = dict(zip(LIMITERS, ("tab:blue", "tab:orange", "tab:green"), strict=True))
    for ax, workload in zip(axes[:, 0], workloads, strict=True):
        for r in (r for r in results if r.workload == workload and r.limiter in LIMITERS):
            xs = [row[0] - r.first_second for row in r.per_second]
            colour = colours.get(r.limiter)
            ax.step(
                xs,
                [row[1] for row in r.per_second],
                where="post",
                color=colour,
                label=f"{r.limiter}: admitted",
            )
            ax.step(
                xs,
                [row[2] for row in r.per_second],
                where="post",
                color=colour,
                linestyle=":",
                label=f"{r.limiter}: throttled",
            )
            if r.limiter == OURS:
                ax.step(
                    xs,
                    [row[3] for row in r.per_second],
                    where="post",
                    color="grey",
                    label="stranger: admitted",
                )
                ax.axvline(
                    r.stranger_end_second - r.first_second,
                    color="grey",
                    linestyle="--",
                    linewidth=1,
                )
        ax.axhline(LEFT, color="red", linestyle="--", linewidth=0.8, label="left to us (60/s)")
        ax.set_title(f"B6 {workload}: a stranger spends {STRANGER:g}/s of 100/s, then stops")
        ax.set_ylabel("requests per second (server)")
        ax.legend(fontsize=7, ncol=2)
    axes[-1, 0].set_xlabel("seconds since our first request")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def run(quick: bool = False) -> Report:
    s = QUICK if quick else FULL
    # The job's deletion watcher polls without retries: its throttled polls (the stranger takes
    # the Describe budget too) are logged as warnings, which would drown the progress lines.
    logging.getLogger("tcvpc").setLevel(logging.ERROR)
    tunnels = tunnel_ids(-(-s.tunnels // PER_GATEWAY), PER_GATEWAY)[: s.tunnels]
    results: list[RunResult] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        seed = write_seed_csv(tmp / "seed.csv", tunnels)
        runs = [*itertools.product(("cleanup", "library"), LIMITERS)]
        runs += [("library", name) for name in CONSTANTS]
        for workload, limiter in runs:
            r = _measure(workload, limiter, s, seed, tunnels, tmp)
            results.append(r)
            print(
                f"  {workload:8} {limiter:30} throttled={r.throttled_fraction_settled:.1%} "
                f"share={r.share_used:.1%} recovery={r.recovery_seconds:.0f}s "
                f"max/s={r.max_in_sliding_second} wall={r.wall_seconds:.1f}s",
                flush=True,
            )
    report = Report("b6_strangers", quick)
    headers = [
        "workload",
        "limiter",
        f"throttled (after {SETTLE} s)",
        f"share of the {LEFT:g}/s used (after {SETTLE} s)",
        f"≥{GOAL_RECOVERED}/s again after the stranger stops",
        "throttled (whole run)",
        "our requests",
        "max in any sliding second",
        "wall s",
    ]

    def row(r: RunResult) -> list[object]:
        recovered = r.recovery_seconds == r.recovery_seconds  # not NaN
        return [
            r.workload,
            r.limiter,
            f"{r.throttled_fraction_settled:.1%}",
            f"{r.share_used:.1%}",
            f"{r.recovery_seconds:.0f} s" if recovered else "never",
            f"{r.throttled_fraction:.1%}",
            r.our_requests,
            r.max_in_sliding_second,
            r.wall_seconds,
        ]

    report.add_table(
        f"B6 strangers: {s.tunnels:,} deletes, a stranger spends {STRANGER:g} of the "
        f"{SERVER_LIMIT}/s for {s.stranger_seconds:g} s (server-counted)",
        headers,
        [row(r) for r in results if r.limiter in LIMITERS],
    )
    report.add_table(
        "B6 constants: the same library run with other CUBIC constants",
        headers,
        [row(r) for r in results if r.workload == "library" and r.limiter in (OURS, *CONSTANTS)],
    )
    goal_rows = []
    for r in results:
        if r.limiter != OURS:
            continue
        goal_rows += [
            [
                r.workload,
                f"≤ {GOAL_THROTTLED:.0%} throttled",
                f"{r.throttled_fraction_settled:.1%}",
                r.throttled_fraction_settled <= GOAL_THROTTLED,
            ],
            [
                r.workload,
                f"≥ {GOAL_SHARE:.0%} of {LEFT:g}/s",
                f"{r.share_used:.1%}",
                r.share_used >= GOAL_SHARE,
            ],
            [
                r.workload,
                f"≥ {GOAL_RECOVERED}/s within {GOAL_RECOVERY_SECONDS} s of the stop",
                f"{r.recovery_seconds:.0f} s",
                r.recovery_seconds <= GOAL_RECOVERY_SECONDS,
            ],
        ]
    for r in results:
        goal_rows.append(
            [
                r.workload,
                f"{r.limiter}: ≤ {SERVER_LIMIT} in any sliding second",
                str(r.max_in_sliding_second),
                r.max_in_sliding_second <= SERVER_LIMIT,
            ]
        )
    report.add_table("B6 goals", ["workload", "goal", "measured", "goal met"], goal_rows)
    png = RESULTS / ("b6_timeline" + ("-quick" if quick else "") + ".png")
    RESULTS.mkdir(parents=True, exist_ok=True)
    drawn = draw(results, png)
    report.data = {
        "settings": asdict(s),
        "stranger_rate": STRANGER,
        "server_limit": SERVER_LIMIT,
        "source": "GET /_emulator/stats of a fresh emulator per run (rate_limit.per_second: "
        "[second, ours admitted, ours throttled, stranger admitted])",
        "timeline_png": png.name if drawn else None,
        "results": [asdict(r) for r in results],
    }
    return report


@click.command()
@click.option("--quick", is_flag=True, help="Short version (fewer tunnels, a shorter stranger).")
def main(quick: bool) -> None:
    """B6: sharing the quota with a stranger."""
    save_results(run(quick=quick))


if __name__ == "__main__":
    main()
