"""Point 1 of issue 11: a not-found is looked up by ID before the job reports ``already_gone``."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from cleanup_fakes import FakeVpc, make_refs
from test_command import read_report, run_cli

from tcvpc import Credential, VpcClient
from tcvpc.cleanup.codes import NOT_FOUND_BUT_PRESENT, WRONG_GATEWAY
from tcvpc.cleanup.engine import CleanupEngine, EngineConfig
from tcvpc.cleanup.journal import Journal
from tcvpc.cleanup.sources import TunnelLine
from tcvpc.emulator import DEMO_REGION, DEMO_SECRET_ID, DEMO_SECRET_KEY, Emulator, EmulatorConfig
from tcvpc.models import DeleteOutcome, DeleteResult, TunnelRef, TunnelState

MakeJournal = Callable[[Sequence[TunnelRef]], Journal]


async def test_not_founds_share_one_lookup(make_journal: MakeJournal) -> None:
    refs = make_refs(20, 1)
    fake = FakeVpc([])  # none of them exists: every delete answers not-found
    summary = await CleanupEngine(fake, make_journal(refs)).run()
    assert summary.counts["already_gone"] == 20
    # One lookup per not-found would be 20; the window lets them share.
    assert 1 <= fake.describes <= 4


async def test_wrong_gateway_fails_and_names_the_real_one(make_journal: MakeJournal) -> None:
    real = TunnelRef("vpngw-00000001", "vpnx-00000001")
    fake = FakeVpc([real])
    named = TunnelRef("vpngw-00000002", real.vpn_connection_id)
    journal = make_journal([named])
    outcomes = [o async for o in CleanupEngine(fake, journal).outcomes()]
    assert [o.outcome for o in outcomes] == ["failed"]
    assert outcomes[0].code == WRONG_GATEWAY
    assert outcomes[0].message is not None
    assert real.vpn_gateway_id in outcomes[0].message
    assert fake.tunnels[real.vpn_connection_id].state is TunnelState.AVAILABLE  # untouched


async def test_wrong_gateway_is_not_inferred_deleted_after_an_unknown_outcome(
    make_journal: MakeJournal,
) -> None:
    """An earlier attempt on the wrong gateway cannot have deleted it: still WrongGateway."""
    real = TunnelRef("vpngw-00000001", "vpnx-00000001")
    named = TunnelRef("vpngw-00000002", real.vpn_connection_id)
    journal = make_journal([named])
    journal.mark_inflight(named)
    journal.release_inflight()  # as after a crash: unknown outcome
    summary = await CleanupEngine(FakeVpc([real]), journal).run()
    assert summary.counts["failed"] == 1
    assert summary.counts["deleted"] == 0


async def test_gone_after_an_unknown_outcome_is_deleted_inferred(
    make_journal: MakeJournal,
) -> None:
    ref = TunnelRef("vpngw-00000001", "vpnx-00000001")
    journal = make_journal([ref])
    journal.mark_inflight(ref)
    journal.release_inflight()
    outcomes = [o async for o in CleanupEngine(FakeVpc([]), journal).outcomes()]
    assert [(o.outcome, o.inferred, o.code) for o in outcomes] == [("deleted", True, None)]


async def test_a_stale_not_found_for_a_present_tunnel_is_retried(
    make_journal: MakeJournal,
) -> None:
    refs = make_refs(1, 2)
    fake = FakeVpc(refs, not_found={refs[0].vpn_connection_id: 2})
    config = EngineConfig(requeue_delay=0.01)
    summary = await CleanupEngine(fake, make_journal(refs), config).run()
    assert summary.counts["deleted"] == 2
    assert summary.counts["already_gone"] == 0
    assert [c for _, _, c in fake.deletes].count(refs[0].vpn_connection_id) == 3


async def test_a_tunnel_never_deleted_but_always_not_found_fails(
    make_journal: MakeJournal,
) -> None:
    refs = make_refs(1, 1)
    fake = FakeVpc(refs, not_found={refs[0].vpn_connection_id: 100})
    config = EngineConfig(requeue_delay=0.001, max_requeues=2)
    outcomes = [o async for o in CleanupEngine(fake, make_journal(refs), config).outcomes()]
    assert [(o.outcome, o.code) for o in outcomes] == [("failed", NOT_FOUND_BUT_PRESENT)]
    assert len(fake.deletes) == 3


async def test_deleting_under_the_named_gateway_waits_until_gone(
    make_journal: MakeJournal,
) -> None:
    """Someone else's delete is under way: not gone yet, so wait for it, then already_gone."""
    refs = make_refs(1, 1)
    fake = FakeVpc(refs, not_found={refs[0].vpn_connection_id: 1})
    tunnel = fake.tunnels[refs[0].vpn_connection_id]
    tunnel.state = TunnelState.DELETING
    tunnel.gone_at = time.monotonic() + 0.3
    outcomes = [o async for o in CleanupEngine(fake, make_journal(refs)).outcomes()]
    assert [(o.outcome, o.inferred) for o in outcomes] == [("already_gone", False)]
    assert len(fake.deletes) == 1
    assert refs[0].vpn_connection_id not in fake.tunnels


# -- against the emulator ------------------------------------------------------------------------


@pytest.mark.slow
async def test_cli_wrong_gateway_and_missing_tunnel(tmp_path: Path) -> None:
    async with Emulator(
        EmulatorConfig(gateways=2, tunnels_per_gateway=2, delete_seconds=0.05)
    ) as emu:
        tunnels = emu.tunnels()
        gws = sorted({t["gateway"] for t in tunnels})
        on_a = [t for t in tunnels if t["gateway"] == gws[0]]
        misplaced = on_a[1]
        lines = [
            f"{on_a[0]['gateway']},{on_a[0]['id']}",  # right: deleted
            f"{gws[1]},{misplaced['id']}",  # real tunnel, wrong gateway: failed, not gone
            f"{gws[0]},vpnx-zz000000",  # exists nowhere: already gone
        ]
        source = tmp_path / "t.csv"
        source.write_text("\n".join(lines) + "\n")
        report = tmp_path / "r.jsonl"
        rc, out, err = await run_cli(
            tmp_path, "--input", str(source), "--endpoint", emu.url, "--report", str(report)
        )
        assert rc == 1, err + out
        rows = read_report(report)
        assert [r["outcome"] for r in rows] == ["deleted", "failed", "already_gone"]
        assert rows[1]["code"] == WRONG_GATEWAY
        assert f"on gateway {gws[0]}" in str(rows[1]["message"])
        assert rows[2]["code"] is None
        assert misplaced["id"] in {t["id"] for t in emu.tunnels()}  # still there
        assert WRONG_GATEWAY in out + err  # the reason is on screen


@pytest.mark.slow
async def test_injected_not_founds_for_real_tunnels_end_deleted(tmp_path: Path) -> None:
    """RecordNotExists answers for tunnels that exist: before issue 11, each was already_gone."""
    config = EmulatorConfig(
        gateways=4,
        tunnels_per_gateway=5,
        delete_seconds=0.05,
        inject={"UnsupportedOperation.RecordNotExists": 0.3},
        seed=11,
    )
    async with Emulator(config) as emu:
        refs = [TunnelRef(t["gateway"], t["id"]) for t in emu.tunnels()]
        credential = Credential(DEMO_SECRET_ID, DEMO_SECRET_KEY)
        async with VpcClient(credential, region=DEMO_REGION, endpoint=emu.url) as client:
            with Journal(tmp_path / "j.sqlite") as journal:
                journal.ingest(TunnelLine(i + 1, r) for i, r in enumerate(refs))
                engine = CleanupEngine(client, journal, EngineConfig(requeue_delay=0.02))
                summary = await engine.run()
        faults = emu.stats()["faults"]
    assert summary.counts["deleted"] == len(refs), summary.counts
    assert summary.counts["already_gone"] == 0
    assert isinstance(faults, dict)
    assert faults  # the injection did happen


class InferringVpc(FakeVpc):
    """A client whose memory of an unknown outcome turns every not-found into "deleted"."""

    async def delete_vpn_connection(self, **kw: object) -> DeleteResult:  # type: ignore[override]
        result = await super().delete_vpn_connection(**kw)  # type: ignore[arg-type]
        if result.outcome is DeleteOutcome.ALREADY_GONE:
            return DeleteResult(result.tunnel, DeleteOutcome.DELETED, "r", 1, inferred=True)
        return result


async def test_a_client_inferred_deletion_is_verified_too(make_journal: MakeJournal) -> None:
    real = TunnelRef("vpngw-00000001", "vpnx-00000001")
    named = TunnelRef("vpngw-00000002", real.vpn_connection_id)
    gone = TunnelRef("vpngw-00000002", "vpnx-00000009")
    journal = make_journal([named, gone])
    outcomes = [o async for o in CleanupEngine(InferringVpc([real]), journal).outcomes()]
    by_id = {(o.tunnel.vpn_gateway_id, o.tunnel.vpn_connection_id): o for o in outcomes}
    wrong = by_id[named.vpn_gateway_id, named.vpn_connection_id]
    assert (wrong.outcome, wrong.code) == ("failed", WRONG_GATEWAY)
    right = by_id[gone.vpn_gateway_id, gone.vpn_connection_id]
    assert (right.outcome, right.inferred) == ("deleted", True)
