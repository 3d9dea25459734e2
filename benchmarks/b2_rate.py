"""B2: rate accuracy under saturating demand, against a server that enforces 100 per sliding second.

Each client gets a fresh emulator (its own process, ``--rate-limit 100``, no gateway mutex) and
``calls`` deletes of distinct tunnels from ``concurrency`` concurrent tasks:

* ``tcvpc``: ``VpcClient`` at its defaults (99/s, window guard, retries);
* ``naive AsyncLimiter(100, 1)``: aiohttp, a signed request per call inside ``async with limiter``
  (no retries: a throttled answer is a failed call);
* ``sdk-async, no limiter``: the official async client with its ``StandardRetryer``.

Two sources, never mixed up: the **server** counts the most requests that *arrived* in any sliding
second and the ``RequestLimitExceeded`` answers (``GET /_emulator/stats``); the emulator exposes no
timeline, so the **timeline** (requests started per 100 ms) is recorded client-side, from
aiohttp trace hooks / httpx event hooks at the moment each request is handed to the transport.

    python -m benchmarks.b2_rate [--quick]
"""

from __future__ import annotations

import asyncio
import bisect
import json
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace

import aiohttp
import click
import httpx
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
    RESULTS,
    Report,
    save_results,
    sign_request,
    start_emulator,
    tunnel_ids,
    write_seed_csv,
)
from tcvpc import Credential, VpcClient

Tunnels = Sequence[tuple[str, str]]
SERVER_LIMIT = 100
GOAL_RATE = 99.0
BIN = 0.1


@dataclass(frozen=True)
class Settings:
    calls: int
    concurrency: int


QUICK = Settings(calls=600, concurrency=200)
FULL = Settings(calls=3000, concurrency=200)


@dataclass
class Recorder:
    """Client-side send times (``time.monotonic``) and call outcomes."""

    sends: list[float] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    last_answer: float = 0.0

    def trace_config(self) -> aiohttp.TraceConfig:
        trace = aiohttp.TraceConfig()

        async def on_start(
            session: aiohttp.ClientSession, ctx: SimpleNamespace, params: object
        ) -> None:
            self.sends.append(time.monotonic())

        trace.on_request_start.append(on_start)
        return trace

    async def httpx_hook(self, request: httpx.Request) -> None:
        self.sends.append(time.monotonic())


async def _workers(
    rec: Recorder, concurrency: int, tunnels: Tunnels, one: Callable[[str, str], Awaitable[str]]
) -> None:
    todo = iter(tunnels)

    async def worker() -> None:
        for gateway, tunnel in todo:
            try:
                rec.outcomes[await one(gateway, tunnel)] += 1
            except Exception as exc:  # the SDK raises its exception with the API code
                code = getattr(exc, "code", None) or type(exc).__name__
                rec.outcomes[str(code)] += 1
            rec.last_answer = time.monotonic()

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def run_tcvpc(url: str, tunnels: Tunnels, concurrency: int, rec: Recorder) -> None:
    # The client's own defaults (rate 99, retry policy, timeout 30 s, 100 connections); the session
    # is passed in only to carry the trace hook that timestamps each request.
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=100),
        timeout=aiohttp.ClientTimeout(total=30),
        trace_configs=[rec.trace_config()],
    )
    async with (
        session,
        VpcClient(
            Credential(DEMO_SECRET_ID, DEMO_SECRET_KEY),
            region=DEMO_REGION,
            endpoint=url,
            session=session,
        ) as client,
    ):

        async def one(gateway: str, tunnel: str) -> str:
            await client.delete_vpn_connection(vpn_gateway_id=gateway, vpn_connection_id=tunnel)
            return "OK"

        await _workers(rec, concurrency, tunnels, one)


async def run_naive(url: str, tunnels: Tunnels, concurrency: int, rec: Recorder) -> None:
    host = url.removeprefix("http://")
    limiter = AsyncLimiter(100, 1)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(
        connector=connector, trace_configs=[rec.trace_config()]
    ) as session:

        async def one(gateway: str, tunnel: str) -> str:
            body = json.dumps({"VpnGatewayId": gateway, "VpnConnectionId": tunnel}).encode()
            async with limiter:
                headers = sign_request(
                    host=host, action="DeleteVpnConnection", body=body, timestamp=int(time.time())
                )
                async with session.post(url + "/", data=body, headers=headers) as resp:
                    answer = json.loads(await resp.read())["Response"]
            return str(answer["Error"]["Code"]) if "Error" in answer else "OK"

        await _workers(rec, concurrency, tunnels, one)


async def run_sdk(url: str, tunnels: Tunnels, concurrency: int, rec: Recorder) -> None:
    http = HttpProfile(protocol="http", endpoint=url.removeprefix("http://"), reqTimeout=30)
    profile = ClientProfile(httpProfile=http, retryer=sdk_retry_async.StandardRetryer())
    cred = sdk_credential.Credential(DEMO_SECRET_ID, DEMO_SECRET_KEY)
    client = sdk_async.VpcClient(cred, DEMO_REGION, profile)
    client.http_client.event_hooks = {"request": [rec.httpx_hook], "response": []}
    async with client:

        async def one(gateway: str, tunnel: str) -> str:
            request = sdk_models.DeleteVpnConnectionRequest()
            request.VpnGatewayId = gateway
            request.VpnConnectionId = tunnel
            await client.DeleteVpnConnection(request)
            return "OK"

        await _workers(rec, concurrency, tunnels, one)


CLIENTS: dict[str, Callable[[str, Tunnels, int, Recorder], Awaitable[None]]] = {
    "tcvpc (defaults)": run_tcvpc,
    "naive AsyncLimiter(100, 1)": run_naive,
    "sdk-async, no limiter": run_sdk,
}


def max_in_window(times: Sequence[float], width: float = 1.0) -> int:
    """The most events in any half-open window ``(t - width, t]`` (exact: windows end on events)."""
    ordered = sorted(times)
    best = 0
    for i, t in enumerate(ordered):
        best = max(best, i - bisect.bisect_right(ordered, t - width) + 1)
    return best


def timeline(times: Sequence[float], start: float) -> list[int]:
    if not times:
        return []
    bins = [0] * (int((max(times) - start) / BIN) + 1)
    for t in times:
        bins[int((t - start) / BIN)] += 1
    return bins


@dataclass
class ClientResult:
    client: str
    calls: int
    ok: int
    failed_calls: dict[str, int]
    requests_sent_client: int
    server_requests: int
    server_max_per_sliding_second: int
    server_throttled_answers: int
    client_max_per_sliding_second: int
    wall_seconds: float
    achieved_ok_per_second: float
    sustained_start_rate: float
    timeline_per_100ms: list[int]


def measure(name: str, tunnels: Tunnels, concurrency: int, seed_file: Path) -> ClientResult:
    rec = Recorder()
    with start_emulator(seed_file=seed_file, rate_limit=SERVER_LIMIT, max_seconds=900) as emu:
        t0 = time.monotonic()
        asyncio.run(asyncio.wait_for(CLIENTS[name](emu.url, tunnels, concurrency, rec), 600))
        stats = emu.stats()
    action = "DeleteVpnConnection"
    server_codes: dict[str, int] = stats["requests"].get(action, {})
    sends = sorted(rec.sends)
    span = sends[-1] - sends[0] if len(sends) > 1 else float("nan")
    wall = rec.last_answer - (sends[0] if sends else t0)
    return ClientResult(
        client=name,
        calls=len(tunnels),
        ok=rec.outcomes["OK"],
        failed_calls={k: v for k, v in rec.outcomes.items() if k != "OK"},
        requests_sent_client=len(sends),
        server_requests=sum(server_codes.values()),
        server_max_per_sliding_second=int(stats["max_requests_per_second"]["by_action"][action]),
        server_throttled_answers=int(server_codes.get("RequestLimitExceeded", 0)),
        client_max_per_sliding_second=max_in_window(sends),
        wall_seconds=wall,
        achieved_ok_per_second=rec.outcomes["OK"] / wall if wall > 0 else float("nan"),
        sustained_start_rate=(len(sends) - 1) / span if span > 0 else float("nan"),
        timeline_per_100ms=timeline(sends, sends[0] if sends else t0),
    )


def draw(results: Sequence[ClientResult], path: Path) -> bool:
    """The timeline PNG; False (and a note) when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[bench]'): no PNG drawn")
        return False
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True)
    for r in results:
        xs = [i * BIN for i in range(len(r.timeline_per_100ms))]
        top.step(xs, r.timeline_per_100ms, where="post", label=r.client, linewidth=1)
        # Sliding 1 s count at each 100 ms boundary (client-side send times).
        window = round(1 / BIN)
        sliding = [
            sum(r.timeline_per_100ms[max(0, i - window + 1) : i + 1])
            for i in range(len(r.timeline_per_100ms))
        ]
        bottom.plot(xs, sliding, label=r.client, linewidth=1)
    top.set_ylabel("requests started / 100 ms")
    top.set_title("B2: saturating demand against a server limit of 100 per sliding second")
    top.legend(fontsize=8)
    bottom.axhline(SERVER_LIMIT, color="red", linestyle="--", linewidth=1, label="server limit")
    bottom.set_ylabel("started in the last 1 s\n(100 ms steps)")
    bottom.set_xlabel("seconds since the first request (client-side send times)")
    bottom.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def run(quick: bool = False) -> Report:
    s = QUICK if quick else FULL
    tunnels = tunnel_ids(100, -(-s.calls // 100))[: s.calls]
    results: list[ClientResult] = []
    with tempfile.TemporaryDirectory() as tmp:
        seed = write_seed_csv(Path(tmp) / "seed.csv", tunnels)
        for name in CLIENTS:
            result = measure(name, tunnels, s.concurrency, seed)
            results.append(result)
            print(
                f"  {name:28} ok={result.ok} server max/s={result.server_max_per_sliding_second} "
                f"throttled={result.server_throttled_answers} "
                f"rate={result.sustained_start_rate:.1f}/s",
                flush=True,
            )
    report = Report("b2_rate", quick)
    report.add_table(
        f"B2 rate accuracy: {s.calls:,} deletes, {s.concurrency} concurrent calls, server limit "
        f"{SERVER_LIMIT} per sliding second",
        [
            "client",
            "calls OK",
            "failed calls",
            "sustained start rate /s (client)",
            "OK answers /s",
            "max in any sliding second (server)",
            "RequestLimitExceeded (server)",
            "requests sent (server)",
        ],
        [
            [
                r.client,
                r.ok,
                sum(r.failed_calls.values()),
                r.sustained_start_rate,
                r.achieved_ok_per_second,
                r.server_max_per_sliding_second,
                r.server_throttled_answers,
                r.server_requests,
            ]
            for r in results
        ],
    )
    t = results[0]
    report.add_table(
        "B2 goals (tcvpc at its defaults)",
        ["goal", "measured", "goal met"],
        [
            [
                f"sustained ≥ {GOAL_RATE:g} req/s",
                f"{t.sustained_start_rate:.2f}/s",
                t.sustained_start_rate >= GOAL_RATE,
            ],
            [
                f"≤ {SERVER_LIMIT} in any sliding second (server-counted)",
                str(t.server_max_per_sliding_second),
                t.server_max_per_sliding_second <= SERVER_LIMIT,
            ],
            [
                "zero RequestLimitExceeded",
                str(t.server_throttled_answers),
                t.server_throttled_answers == 0,
            ],
            ["every call OK", f"{t.ok}/{t.calls}", t.ok == t.calls],
        ],
    )
    png = RESULTS / ("b2_timeline" + ("-quick" if quick else "") + ".png")
    RESULTS.mkdir(parents=True, exist_ok=True)
    drawn = draw(results, png)
    report.data = {
        "settings": asdict(s),
        "sources": {
            "server": "max_in_any_sliding_second, RequestLimitExceeded, requests sent: "
            "GET /_emulator/stats of a fresh emulator per client",
            "client": "timeline_per_100ms, sustained_start_rate, client_max_per_sliding_second: "
            "send times from aiohttp trace / httpx event hooks",
        },
        "timeline_png": png.name if drawn else None,
        "results": [asdict(r) for r in results],
    }
    return report


@click.command()
@click.option("--quick", is_flag=True, help="Short version (fewer calls).")
def main(quick: bool) -> None:
    """B2: rate accuracy against a server limit of 100 per sliding second."""
    save_results(run(quick=quick))


if __name__ == "__main__":
    main()
