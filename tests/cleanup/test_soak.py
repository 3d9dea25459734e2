"""The soak: ``tcvpc cleanup`` against an emulator with every fault on at once, killed twice.

Every fault kind, every injectable code, clock skew, busy gateways, invalid states and a
stranger spending part of the quota; the job is ``kill -9``-ed twice and resumed. Afterwards:
every tunnel is gone, the report names each exactly once as ``deleted``, no second held more
than 100 requests of an action at the server, and no secret or signature is in any output.

``TCVPC_SOAK_SCALE`` multiplies the tunnel count (the benchmark-side run uses a larger one).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sqlite3
from pathlib import Path

import pytest
from test_command import read_report, run_cli, start_cli, write_input

from tcvpc.emulator import DEMO_SECRET_KEY, INJECTABLE, Emulator, EmulatorConfig, FaultConfig

SCALE = float(os.environ.get("TCVPC_SOAK_SCALE", "1"))
GATEWAYS = 12
TUNNELS_PER_GATEWAY = max(4, round(25 * SCALE))

# Probability of each injected code: small, so that every code shows up without drowning the job.
INJECT = {code: 0.004 for code in INJECTABLE}


def soak_config(seed: int) -> EmulatorConfig:
    return EmulatorConfig(
        gateways=GATEWAYS,
        tunnels_per_gateway=TUNNELS_PER_GATEWAY,
        delete_seconds=0.2,
        faults=FaultConfig.spread(0.04, burst_length=4),
        stall_seconds=3.0,
        clock_skew_seconds=420.0,  # beyond the 5-minute window: the first call must re-sign
        inject=INJECT,
        stranger_rate=30.0,
        seed=seed,
    )


def _done(journal: Path) -> int:
    try:
        db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    except sqlite3.OperationalError:
        return 0
    try:
        return int(db.execute("SELECT COUNT(*) FROM tunnels WHERE state = 'done'").fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        db.close()


async def _kill_after_progress(
    tmp_path: Path, args: tuple[str, ...], journal: Path, at: int
) -> str:
    """Start the job, SIGKILL it once ``at`` outcomes are journalled (plus a random moment)."""
    proc = await start_cli(tmp_path, *args)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 120
    while _done(journal) < at:
        assert loop.time() < deadline, "the job made no progress"
        assert proc.returncode is None, "the job ended before it could be killed"
        await asyncio.sleep(0.02)
    await asyncio.sleep(random.uniform(0, 0.3))
    proc.kill()
    out, err = await proc.communicate()
    return out.decode() + err.decode()


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_soak_every_fault_two_kills_nothing_lost_nothing_leaked(tmp_path: Path) -> None:
    async with Emulator(soak_config(seed=20261127)) as emu:
        pairs = write_input(emu, tmp_path / "t.csv")
        total = len(pairs)
        journal = tmp_path / "j.sqlite"
        report = tmp_path / "report.jsonl"
        args = ("--input", str(tmp_path / "t.csv"), "--endpoint", emu.url)
        args += ("--journal", str(journal), "--report", str(report))

        outputs = [await _kill_after_progress(tmp_path, args, journal, total // 4)]
        outputs.append(await _kill_after_progress(tmp_path, args, journal, total // 2))
        rc, out, err = await run_cli(tmp_path, *args)
        outputs.append(out + err)
        assert rc == 0, err + out

        # Every tunnel is gone (those still DELETING leave within delete_seconds).
        await asyncio.sleep(0.5)
        assert [t for t in emu.tunnels() if t["state"] != "DELETING"] == []
        stats = emu.stats()

    records = read_report(report)
    keys = [(r["VpnGatewayId"], r["VpnConnectionId"]) for r in records]
    assert sorted(keys) == sorted(pairs)  # each tunnel exactly once, nothing else
    outcomes = {str(r["outcome"]) for r in records}
    assert outcomes == {"deleted"}, [r for r in records if r["outcome"] != "deleted"][:5]

    by_action = stats["max_requests_per_second"]["by_action"]  # type: ignore[index]
    assert max(by_action.values()) <= 100, by_action
    faults = stats["faults"]
    assert isinstance(faults, dict)
    assert sum(faults.values()) > 0

    if os.environ.get("TCVPC_SOAK_SUMMARY"):  # the benchmark-side run prints these figures
        summary = {"tunnels": total, "faults": faults, "max_per_second": by_action}
        summary["requests"] = stats["requests"]
        Path(os.environ["TCVPC_SOAK_SUMMARY"]).write_text(json.dumps(summary))

    # No secret, token or signature in anything the job wrote or printed.
    written = [report.read_bytes(), *(p.read_bytes() for p in tmp_path.glob("j.sqlite*"))]
    texts = [*(o.encode() for o in outputs), *written]
    for blob in texts:
        assert DEMO_SECRET_KEY.encode() not in blob
        assert b"Signature=" not in blob
        assert b"TC3-HMAC-SHA256 Credential" not in blob
