"""Rough emulator throughput check (not a test; the formal benchmark lives in benchmarks/).

Starts ``tcvpc emulator`` in its own process, drives it from this process with raw aiohttp and
many concurrent signed requests (a mix of DescribeVpnConnections and DeleteVpnConnection), and
reports requests/s and the server's CPU time per request (from /proc), i.e. what one core of
the server could serve even when the client is the slower side.

    python tests/emulator/measure_throughput.py [--seconds 5] [--concurrency 256]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).parent))
from emu_helpers import sign_headers


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def drive(
    url: str, seconds: float, concurrency: int, gateways: list[str], describe_every: int
) -> int:
    host = url.removeprefix("http://")
    done = 0
    deadline = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker(n: int) -> None:
            nonlocal done
            i = 0
            while time.monotonic() < deadline:
                i += 1
                if describe_every and i % describe_every == 0:
                    action, params = "DescribeVpnConnections", {"Limit": 10, "Offset": n % 50}
                else:  # unknown tunnel: full checks, then ResourceNotFound
                    gw = gateways[(n + i) % len(gateways)]
                    action = "DeleteVpnConnection"
                    params = {"VpnGatewayId": gw, "VpnConnectionId": f"vpnx-zzzz{i % 10000:04d}"}
                body = json.dumps(params).encode()
                headers = sign_headers(host=host, action=action, body=body)
                async with session.post(url + "/", data=body, headers=headers) as resp:
                    payload = await resp.json()
                    assert "RequestId" in payload["Response"], payload
                done += 1

        await asyncio.gather(*(worker(n) for n in range(concurrency)))
    return done


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument(
        "--describe-every", type=int, default=2, help="every Nth request is a Describe (0: none)"
    )
    args = parser.parse_args()
    cmd = [
        sys.executable, "-c",
        "from tcvpc.emulator.command import emulator_command; emulator_command()",
        "--gateways", "100", "--tunnels-per-gateway", "100", "--rate-limit", "1000000",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()

        async def run() -> tuple[int, float, float]:
            async with aiohttp.ClientSession() as s:
                body = json.dumps({"Limit": 100}).encode()
                headers = sign_headers(
                    host=url.removeprefix("http://"), action="DescribeVpnConnections", body=body
                )
                async with s.post(url + "/", data=body, headers=headers) as r:
                    data = await r.json()
            gateways = sorted({t["VpnGatewayId"] for t in data["Response"]["VpnConnectionSet"]})
            cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
            n = await drive(url, args.seconds, args.concurrency, gateways, args.describe_every)
            return n, time.monotonic() - t0, cpu_seconds(proc.pid) - cpu0

        n, wall, cpu = asyncio.run(run())
        print(f"{n} signed requests in {wall:.2f} s: {n / wall:.0f} req/s observed")
        print(f"server CPU {cpu:.2f} s: {n / cpu:.0f} req/s per server core")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
