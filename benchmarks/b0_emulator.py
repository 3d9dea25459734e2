"""B0: the emulator is never the bottleneck of a measurement.

``tcvpc emulator`` runs in its own process with every check on (signature verification, protocol
checks, the tunnel state machine; its rate limit lifted). This process drives it with many
concurrent signed requests on raw aiohttp (a mix of DescribeVpnConnections and deletes of unknown
tunnels, which pass every check and end in ``ResourceNotFound``) and reads the server's CPU time
from ``/proc``: requests per second of server CPU is what one core of the emulator can serve,
even when this client (sharing the machine) is the slower side.

    python -m benchmarks b0 [--quick]        or        python -m benchmarks.b0_emulator
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import aiohttp
import click

from benchmarks.common import Report, fmt, save_results, sign_request, start_emulator

GOAL_PER_CORE = 2000
CONCURRENCY = 128


def _process_cpu(pid: int) -> float:
    """User+sys CPU seconds of ``pid`` and its children (the emulator runs under ``timeout``)."""
    total = 0.0
    pending = [pid]
    while pending:
        current = pending.pop()
        stat = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
        children = Path(f"/proc/{current}/task/{current}/children")
        if children.exists():
            pending += [int(c) for c in children.read_text().split()]
    return total


async def _drive(url: str, seconds: float, gateways: list[str]) -> int:
    """Send signed requests from ``CONCURRENCY`` workers for ``seconds``; count the answers."""
    host = url.removeprefix("http://")
    done = 0
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY)) as http:

        async def worker(n: int) -> None:
            nonlocal done
            i = 0
            while time.monotonic() < deadline:
                i += 1
                if i % 2:
                    action, params = "DescribeVpnConnections", {"Limit": 10, "Offset": n % 50}
                else:
                    gw = gateways[(n + i) % len(gateways)]
                    action = "DeleteVpnConnection"
                    params = {"VpnGatewayId": gw, "VpnConnectionId": f"vpnx-zz{i % 999999:06d}"}
                body = json.dumps(params).encode()
                headers = sign_request(
                    host=host, action=action, body=body, timestamp=int(time.time())
                )
                async with http.post(url + "/", data=body, headers=headers) as resp:
                    answer = json.loads(await resp.read())["Response"]
                if "RequestId" not in answer:
                    raise RuntimeError(f"not an API answer: {answer!r}")
                done += 1

        await asyncio.gather(*(worker(n) for n in range(CONCURRENCY)))
    return done


def run(*, quick: bool) -> Report:
    seconds = 4.0 if quick else 15.0
    report = Report("b0_emulator", quick)
    with start_emulator(gateways=100, tunnels_per_gateway=100, max_seconds=300) as emu:
        gateways = ["vpngw-aaaaaaaa", "vpngw-bbbbbbbb"]
        cpu0, t0 = _process_cpu(emu.proc.pid), time.monotonic()
        answered = asyncio.run(_drive(emu.url, seconds, gateways))
        wall, cpu = time.monotonic() - t0, _process_cpu(emu.proc.pid) - cpu0
    per_core = answered / cpu if cpu > 0 else float("inf")
    report.add_table(
        f"B0 emulator throughput: signed requests from {CONCURRENCY} concurrent workers for "
        f"{seconds:g} s, all checks on",
        ["signed requests", "wall s", "observed req/s", "server CPU s", "req/s per server core"],
        [[answered, fmt(wall), fmt(answered / wall), fmt(cpu), fmt(per_core)]],
    )
    report.add_table(
        "B0 goal",
        ["goal", "measured", "goal met"],
        [
            [
                f"≥ {GOAL_PER_CORE} signed req/s per server core",
                fmt(per_core),
                "yes" if per_core >= GOAL_PER_CORE else "**NO**",
            ]
        ],
    )
    report.data = {
        "answered": answered,
        "wall_s": wall,
        "server_cpu_s": cpu,
        "per_core": per_core,
        "seconds": seconds,
        "concurrency": CONCURRENCY,
    }
    return report


@click.command()
@click.option("--quick", is_flag=True, help="Drive it for 4 s instead of 15 s.")
def main(quick: bool) -> None:
    """B0: signed requests per second of emulator CPU, with every check on."""
    save_results(run(quick=quick))


if __name__ == "__main__":
    main()
