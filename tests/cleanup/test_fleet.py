"""Several ``tcvpc cleanup`` processes sharing one account's quota through one real Redis.

One emulator (limit 100 per sliding second, counted on arrival) serves 4 CLI processes, each with
its own input file and journal. Bounds are generous (the machine is shared); the measured figures
live in benchmarks/b5_fleet.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

import pytest

from redis_fixture import RedisFactory, RedisServer, free_port
from tcvpc.emulator import DEMO_REGION, DEMO_SECRET_ID, DEMO_SECRET_KEY, Emulator, EmulatorConfig

WORKERS = 4
PER_WORKER = 100
CLI = (
    "import sys; from tcvpc.cleanup.command import cleanup_command; "
    "cleanup_command(sys.argv[1:], prog_name='tcvpc cleanup')"
)

pytestmark = pytest.mark.slow


def env_for(tmp_path: Path, redis_url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TENCENTCLOUD_", "TCVPC_"))}
    env.update(
        HOME=str(tmp_path),
        TENCENTCLOUD_SECRET_ID=DEMO_SECRET_ID,
        TENCENTCLOUD_SECRET_KEY=DEMO_SECRET_KEY,
        TENCENTCLOUD_REGION=DEMO_REGION,
    )
    if redis_url is not None:
        env["TCVPC_REDIS_URL"] = redis_url
    return env


async def start_worker(
    tmp_path: Path, emu: Emulator, i: int, *args: str, env: dict[str, str]
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CLI,
        "--input", str(tmp_path / f"w{i}.csv"),
        "--journal", str(tmp_path / f"w{i}.sqlite"),
        "--report", str(tmp_path / f"w{i}.jsonl"),
        "--endpoint", emu.url,
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


def split_input(emu: Emulator, tmp_path: Path) -> list[list[tuple[str, str]]]:
    # Each worker gets whole gateways: two jobs on one gateway would meet its mutex.
    pairs = sorted((t["gateway"], t["id"]) for t in emu.tunnels())
    size = -(-len(pairs) // WORKERS)
    shares = [pairs[i * size : (i + 1) * size] for i in range(WORKERS)]
    for i, share in enumerate(shares):
        lines = "".join(f"{g},{c}\n" for g, c in share)
        (tmp_path / f"w{i}.csv").write_text("VpnGatewayId,VpnConnectionId\n" + lines)
    return shares


def fleet_emulator() -> Emulator:
    # 100 gateways x 4 tunnels: the gateways' mutex never limits 4 x 32 concurrent calls.
    return Emulator(
        EmulatorConfig(
            gateways=WORKERS * PER_WORKER // 4,
            tunnels_per_gateway=4,
            delete_seconds=0.05,
            rate_limit=100,
            seed=7,
        )
    )


def delete_codes(emu: Emulator) -> dict[str, int]:
    requests = emu.stats()["requests"]
    assert isinstance(requests, dict)
    return dict(requests.get("DeleteVpnConnection", {}))


def server_max(emu: Emulator) -> int:
    per_second = emu.stats()["max_requests_per_second"]
    assert isinstance(per_second, dict)
    return int(per_second["by_action"]["DeleteVpnConnection"])


def check_reports(tmp_path: Path, shares: list[list[tuple[str, str]]]) -> None:
    for i, share in enumerate(shares):
        records = [json.loads(line) for line in (tmp_path / f"w{i}.jsonl").read_text().splitlines()]
        assert len(records) == len(share)
        assert {r["outcome"] for r in records} == {"deleted"}


async def test_four_processes_share_one_budget(redis_server: RedisServer, tmp_path: Path) -> None:
    async with fleet_emulator() as emu:
        shares = split_input(emu, tmp_path)
        env = env_for(tmp_path, redis_server.url.replace("/0", "/1"))  # the env var, a fresh db
        t0 = time.monotonic()
        procs = [await start_worker(tmp_path, emu, i, env=env) for i in range(WORKERS)]
        results = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in procs)), 120)
        elapsed = time.monotonic() - t0
        for proc, (_, err) in zip(procs, results, strict=True):
            assert proc.returncode == 0, err.decode()[-2000:]
        check_reports(tmp_path, shares)
        codes = delete_codes(emu)
        assert codes == {"OK": WORKERS * PER_WORKER}  # no throttle, nothing sent twice
        assert server_max(emu) <= 100
        assert emu.tunnels() == [] or all(t["state"] == "DELETING" for t in emu.tunnels())
    # 400 deletes at the fleet's 99.5/s take 4 s; process start-up and a loaded machine add to it
    # (generous: a fleet that lost most of its rate fails). Four separate budgets would finish in
    # about a second and be throttled.
    assert 3.5 <= elapsed < 40


async def test_redis_killed_and_restarted_mid_run(
    redis_factory: RedisFactory, tmp_path: Path
) -> None:
    server = redis_factory()
    async with fleet_emulator() as emu:
        shares = split_input(emu, tmp_path)
        env = env_for(tmp_path)
        procs = [
            await start_worker(tmp_path, emu, i, "--redis-url", server.url, env=env)
            for i in range(WORKERS)
        ]
        # Kill Redis once deletes are flowing, keep it down for 2 s, bring it back.
        for _ in range(600):
            if delete_codes(emu).get("OK", 0) >= 60:
                break
            await asyncio.sleep(0.05)
        server.stop()
        await asyncio.sleep(0.5)
        sent_while_down = sum(delete_codes(emu).values())
        await asyncio.sleep(1.5)
        assert sum(delete_codes(emu).values()) == sent_while_down  # no slot, no request
        server.start()
        results = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in procs)), 120)
        for proc, (_, err) in zip(procs, results, strict=True):
            assert proc.returncode == 0, err.decode()[-2000:]
        stderr = " ".join("".join(err.decode() for _, err in results).split())
        assert "unreachable" in stderr
        assert "is back" in stderr
        check_reports(tmp_path, shares)
        assert delete_codes(emu) == {"OK": WORKERS * PER_WORKER}  # every one deleted, once
        assert server_max(emu) <= 100


async def test_unreachable_redis_is_exit_2_and_nothing_sent(tmp_path: Path) -> None:
    async with fleet_emulator() as emu:
        split_input(emu, tmp_path)
        url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
        proc = await start_worker(tmp_path, emu, 0, env=env_for(tmp_path, url))
        _, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 2
        text = " ".join(err.decode().split())  # rich wraps long lines
        assert "cannot reach Redis at redis://:***@127.0.0.1" in text
        assert "hunter2" not in text
        assert emu.stats()["requests_total"] == 0
        assert not (tmp_path / "w0.sqlite").exists()


async def test_non_redis_port_is_exit_2(tmp_path: Path) -> None:
    async with fleet_emulator() as emu:
        split_input(emu, tmp_path)
        url = f"redis://127.0.0.1:{emu.port}/0"
        proc = await start_worker(tmp_path, emu, 0, "--redis-url", url, env=env_for(tmp_path))
        _, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 2
        assert "is it a Redis server" in " ".join(err.decode().split())
        assert emu.stats()["requests_total"] == 0
