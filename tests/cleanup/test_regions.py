"""Many regions in one job: the ``Region`` column, one lane per region, region in the report."""

from __future__ import annotations

import asyncio
import io
import json
import sqlite3
from pathlib import Path

import pytest
from cleanup_fakes import FakeVpc, make_refs
from rich.console import Console

from tcvpc import Credential
from tcvpc.cleanup.command import CleanupOptions, cleanup
from tcvpc.cleanup.engine import CleanupEngine
from tcvpc.cleanup.journal import SCHEMA_VERSION, Journal, JournalError
from tcvpc.cleanup.sources import InvalidLine, TunnelLine, parse_lines
from tcvpc.emulator import DEMO_REGION, DEMO_SECRET_ID, DEMO_SECRET_KEY, Emulator, EmulatorConfig
from tcvpc.models import DeleteOutcome, TunnelRef

GW, CONN = "vpngw-aaaa0001", "vpnx-bbbb0001"

# -- the column ----------------------------------------------------------------------------------


def test_csv_region_column_with_default_for_empty_cells() -> None:
    items = list(
        parse_lines(
            [
                "Region,VpnConnectionId,VpnGatewayId,Note",
                f"ap-shanghai,{CONN},{GW},x",
                f",{CONN},{GW}",
                f"{CONN},{GW}",  # too few columns for the header: the Region cell is missing
            ]
        )
    )
    assert items[0] == TunnelLine(2, TunnelRef(GW, CONN), "ap-shanghai")
    assert items[1] == TunnelLine(3, TunnelRef(GW, CONN), None)
    assert isinstance(items[2], InvalidLine)


def test_json_region_key_and_its_checks() -> None:
    lines = [
        json.dumps({"VpnGatewayId": GW, "VpnConnectionId": CONN, "Region": "ap-beijing"}),
        json.dumps({"VpnGatewayId": GW, "VpnConnectionId": CONN}),
        json.dumps({"VpnGatewayId": GW, "VpnConnectionId": CONN, "Region": 7}),
        json.dumps({"VpnGatewayId": GW, "VpnConnectionId": CONN, "Region": "ap-guangzhuo"}),
    ]
    items = list(parse_lines(lines))
    assert items[0] == TunnelLine(1, TunnelRef(GW, CONN), "ap-beijing")
    assert items[1] == TunnelLine(2, TunnelRef(GW, CONN), None)
    assert isinstance(items[2], InvalidLine)
    assert "string" in items[2].reason
    assert isinstance(items[3], InvalidLine)
    assert "unknown region" in items[3].reason


def test_any_region_accepts_a_new_region_but_not_garbage() -> None:
    lines = [f"VpnGatewayId,VpnConnectionId,Region\n{GW},{CONN},ap-newplace-2"]
    lines = [*lines[0].splitlines(), f"{GW},{CONN},../../etc", f"{GW},{CONN},AP-SHANGHAI"]
    strict = list(parse_lines(lines))
    assert all(isinstance(i, InvalidLine) for i in strict)
    loose = list(parse_lines(lines, any_region=True))
    assert loose[0] == TunnelLine(2, TunnelRef(GW, CONN), "ap-newplace-2")
    assert isinstance(loose[1], InvalidLine)
    assert "not a region name" in loose[1].reason
    assert isinstance(loose[2], InvalidLine)


# -- the journal ---------------------------------------------------------------------------------

_SCHEMA_1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE tunnels (
    gw TEXT NOT NULL, conn TEXT NOT NULL, line INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending', not_before REAL NOT NULL DEFAULT 0,
    outcome TEXT, code TEXT, message TEXT, request_id TEXT,
    attempts INTEGER NOT NULL DEFAULT 0, requeues INTEGER NOT NULL DEFAULT 0,
    unknown INTEGER NOT NULL DEFAULT 0, accepted INTEGER NOT NULL DEFAULT 0,
    inferred INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (gw, conn)
);
CREATE INDEX tunnels_queue ON tunnels (gw, state, not_before);
CREATE TABLE invalid (line INTEGER PRIMARY KEY, reason TEXT NOT NULL);
CREATE TABLE duplicates (line INTEGER PRIMARY KEY, gw TEXT NOT NULL, conn TEXT NOT NULL);
INSERT INTO meta VALUES ('schema', '1'), ('source', 'x'), ('ingest_complete', '1');
"""


def test_a_schema_1_journal_is_migrated_in_place_and_adopts_the_run_region(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript(_SCHEMA_1)
    db.execute("INSERT INTO tunnels (gw, conn, line) VALUES (?, ?, 1)", (GW, CONN))
    db.execute(
        "INSERT INTO tunnels (gw, conn, line, state, outcome) VALUES (?, ?, 2, 'done', 'deleted')",
        (GW, "vpnx-bbbb0002"),
    )
    db.commit()
    db.close()
    with Journal(path) as journal:
        assert journal.get_meta("schema") == SCHEMA_VERSION == "2"
        assert journal.regions() == [None]
        assert journal.adopt_region("ap-shanghai") == 2
        item = journal.next_pending(GW, region="ap-shanghai")
        assert not isinstance(item, float)
        assert item is not None
        assert item.region == "ap-shanghai"
        assert [r.region for r in journal.rows()] == ["ap-shanghai", "ap-shanghai"]
        assert journal.counts()["deleted"] == 1  # what was done stays done


def test_regions_include_failed_rows_that_a_rerun_retries(tmp_path: Path) -> None:

    with Journal(tmp_path / "j.sqlite") as journal:
        journal.ingest([TunnelLine(1, TunnelRef(GW, CONN), "ap-tokyo")])
        journal.record_outcome(
            TunnelRef(GW, CONN),
            DeleteOutcome.FAILED,
            code="InternalError",
            message="x",
            request_id=None,
            attempts=3,
        )
        assert journal.regions() == ["ap-tokyo"]  # the rerun's engine needs its client
        journal.retry_failed()
        assert journal.pending_by_gateway().__next__() == ("ap-tokyo", GW, 1)


def test_a_journal_of_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite"
    with Journal(path) as journal:
        journal.set_meta("schema", "3")
    with pytest.raises(JournalError, match=r"schema 3.*newer tcvpc"):
        Journal(path)


# -- the engine ----------------------------------------------------------------------------------


async def test_each_region_goes_through_its_own_client(tmp_path: Path) -> None:
    refs = make_refs(6, 3)
    regions = ["ap-guangzhou", "ap-shanghai", "ap-beijing"]
    by_region = {
        r: [ref for i, ref in enumerate(refs) if i // 6 == n] for n, r in enumerate(regions)
    }
    fakes = {r: FakeVpc(by_region[r], delete_seconds=0.01) for r in regions}
    with Journal(tmp_path / "j.sqlite") as journal:
        journal.ingest(TunnelLine(i + 1, ref, regions[i // 6]) for i, ref in enumerate(refs))
        default = FakeVpc([])
        engine = CleanupEngine(default, journal, region_clients=fakes)
        outcomes = [o async for o in engine.outcomes()]
        summary = engine.summary()
    assert summary.ok, summary
    assert default.deletes == []
    for region, fake in fakes.items():
        assert sorted(c for _, _, c in fake.deletes) == sorted(
            r.vpn_connection_id for r in by_region[region]
        )
        assert fake.remaining == 0
    assert {o.tunnel.vpn_connection_id: o.region for o in outcomes} == {
        ref.vpn_connection_id: regions[i // 6] for i, ref in enumerate(refs)
    }
    assert summary.requests_sent == sum(f.stats.requests_sent for f in fakes.values())


async def test_a_region_without_a_client_is_refused_before_any_request(tmp_path: Path) -> None:
    refs = make_refs(1, 2)
    fake = FakeVpc(refs)
    with Journal(tmp_path / "j.sqlite") as journal:
        journal.ingest(TunnelLine(i + 1, ref, "ap-tokyo") for i, ref in enumerate(refs))
        with pytest.raises(ValueError, match="ap-tokyo"):
            await CleanupEngine(fake, journal, region_clients={"ap-seoul": fake}).run()
    assert fake.deletes == []


# -- against the emulator: three regions at three times the rate --------------------------------

_RATE = 20.0
_PER_REGION = 60
_REGIONS = (DEMO_REGION, "ap-shanghai", "ap-beijing")


async def _job(emu: Emulator, tmp: Path, lines: list[str]) -> tuple[float, list[dict[str, object]]]:
    tmp.mkdir()
    (tmp / "t.csv").write_text("\n".join(["VpnGatewayId,VpnConnectionId,Region", *lines]) + "\n")
    options = CleanupOptions(
        input=str(tmp / "t.csv"),
        region=DEMO_REGION,
        endpoint=emu.url,
        journal=str(tmp / "j.sqlite"),
        report=str(tmp / "r.jsonl"),
        rate=_RATE * 0.95,
        credential=Credential(DEMO_SECRET_ID, DEMO_SECRET_KEY),
    )
    err = io.StringIO()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    status = await asyncio.wait_for(
        cleanup(options, Console(file=io.StringIO()), Console(file=err)), 60
    )
    wall = loop.time() - t0
    assert status == 0, err.getvalue()
    report = [json.loads(line) for line in (tmp / "r.jsonl").read_text().splitlines()]
    return wall, report


@pytest.mark.slow
async def test_three_regions_run_at_about_three_times_one_region_s_rate(tmp_path: Path) -> None:
    config = EmulatorConfig(
        gateways=4 * _PER_REGION // 3,
        tunnels_per_gateway=3,
        delete_seconds=0.01,
        rate_limit=_RATE,
    )
    async with Emulator(config) as emu:
        pairs = [(t["gateway"], t["id"]) for t in emu.tunnels()]
        one, three = pairs[:_PER_REGION], pairs[_PER_REGION:]
        # One region: the lines leave Region empty (the job's --region).
        wall_one, _ = await _job(emu, tmp_path / "one", [f"{g},{c}," for g, c in one])
        # A gateway lives in one region: its tunnels share it.
        gateways = sorted({g for g, _ in three})
        region_of = {g: _REGIONS[i % 3] for i, g in enumerate(gateways)}
        lines = [f"{g},{c},{region_of[g]}" for g, c in three]
        wall_three, report = await _job(emu, tmp_path / "three", lines)
        assert emu.tunnels() == [] or all(t["state"] == "DELETING" for t in emu.tunnels())
    rate_one = len(one) / wall_one
    rate_three = len(three) / wall_three
    # One region cannot beat the emulator's 20/s; three regions at 20/s each: about 3x.
    assert rate_one < _RATE * 1.1, (wall_one, wall_three)
    assert rate_three > 2 * rate_one, (wall_one, wall_three)
    assert {(r["VpnConnectionId"], r["Region"]) for r in report} == {
        (c, region_of[g]) for g, c in three
    }
    assert {r["outcome"] for r in report} == {"deleted"}
