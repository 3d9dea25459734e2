"""Issue 11, point 6: each figure is defined once, and they agree with what the server saw."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from cleanup_fakes import FakeVpc, make_refs

from tcvpc import Credential, VpcClient
from tcvpc.cleanup.engine import CleanupEngine, EngineConfig
from tcvpc.cleanup.journal import Journal
from tcvpc.cleanup.sources import TunnelLine
from tcvpc.emulator import DEMO_REGION, DEMO_SECRET_ID, DEMO_SECRET_KEY, Emulator, EmulatorConfig
from tcvpc.models import DeleteOutcome, TunnelRef, TunnelState

MakeJournal = Callable[[Sequence[TunnelRef]], Journal]
DELETE, DESCRIBE = "DeleteVpnConnection", "DescribeVpnConnections"


@pytest.mark.slow
async def test_throttled_and_retries_agree_with_the_server(tmp_path: Path) -> None:
    config = EmulatorConfig(
        gateways=4,
        tunnels_per_gateway=6,
        delete_seconds=0.05,
        inject={"RequestLimitExceeded": 0.25},
        seed=7,
    )
    async with Emulator(config) as emu:
        refs = [TunnelRef(t["gateway"], t["id"]) for t in emu.tunnels()]
        credential = Credential(DEMO_SECRET_ID, DEMO_SECRET_KEY)
        async with VpcClient(credential, region=DEMO_REGION, endpoint=emu.url) as client:
            with Journal(tmp_path / "j.sqlite") as journal:
                journal.ingest(TunnelLine(i + 1, r) for i, r in enumerate(refs))
                summary = await CleanupEngine(client, journal).run()
        server = emu.stats()["requests"]
    assert isinstance(server, dict)
    assert summary.counts["deleted"] == len(refs)
    for action in (DELETE, DESCRIBE):
        assert summary.requests_by_action[action] == sum(server[action].values())
        assert summary.throttled_by_action.get(action, 0) == server[action].get(
            "RequestLimitExceeded", 0
        )
    assert summary.throttled == sum(summary.throttled_by_action.values())
    assert summary.requests_sent == sum(summary.requests_by_action.values())
    # Every throttled delete was retried (none failed), so the two delete figures are equal;
    # the watcher's polls are never retried (a throttled poll is simply polled again).
    assert summary.throttled_by_action[DELETE] > 0
    assert (
        summary.retries_by_action_code[DELETE, "RequestLimitExceeded"]
        == (summary.throttled_by_action[DELETE])
    )
    assert (DESCRIBE, "RequestLimitExceeded") not in summary.retries_by_action_code


async def test_gone_rows_carry_no_stale_error_code(make_journal: MakeJournal) -> None:
    """A tunnel that failed once, then was deleted by a rerun; one whose earlier attempt had an
    unknown outcome, refused as mid-task (``DELETING``) and then seen gone: ``deleted`` rows
    without the code of an answer that did not fail them."""
    refs = make_refs(2, 1)
    fake = FakeVpc(refs, fail={refs[0].vpn_connection_id: 1}, delete_seconds=0.01)
    deleting = fake.tunnels[refs[1].vpn_connection_id]
    deleting.state = TunnelState.DELETING
    deleting.gone_at = time.monotonic() + 0.1
    journal = make_journal(refs)
    journal.mark_inflight(refs[1])
    journal.release_inflight()  # as after a crash mid-delete
    config = EngineConfig(retry_policy=None, requeue_delay=0.01)
    first = await CleanupEngine(fake, journal, config).run()
    assert first.counts["failed"] == 1
    assert {r.code for r in journal.rows()} == {"InternalError", None}
    await CleanupEngine(fake, journal, config).run()
    rows = {r.connection: r for r in journal.rows()}
    assert {r.outcome for r in rows.values()} == {"deleted"}
    assert rows[refs[1].vpn_connection_id].inferred
    assert [r.code for r in rows.values()] == [None, None]
    assert [r.message for r in rows.values()] == [None, None]


async def test_run_figures_cover_the_run_and_job_figures_the_job(
    make_journal: MakeJournal,
) -> None:
    refs = make_refs(2, 5)
    journal = make_journal(refs)
    for ref in refs[:6]:  # an earlier run finished six
        journal.record_outcome(
            ref, DeleteOutcome.DELETED, code=None, message=None, request_id="r", attempts=1
        )
    engine = CleanupEngine(FakeVpc(refs[6:], delete_seconds=0.0), journal)
    summary = await engine.run()
    progress = engine.progress()
    assert summary.total == 10
    assert summary.counts["deleted"] == 10
    assert summary.done_this_run == 4
    assert progress.done == 10
    assert progress.done_this_run == 4
    assert progress.rate == pytest.approx(4 / progress.elapsed)
    assert summary.effective_rate == pytest.approx(4 / summary.elapsed)


async def test_pending_only_when_the_job_stopped_early(make_journal: MakeJournal) -> None:
    refs = make_refs(3, 3)
    done = await CleanupEngine(FakeVpc(refs, delete_seconds=0.0), make_journal(refs)).run()
    assert done.counts["pending"] == 0
    assert done.ok


async def test_pending_after_a_stop(tmp_path: Path) -> None:
    refs = make_refs(3, 3)
    with Journal(tmp_path / "j.sqlite") as journal:
        journal.ingest(TunnelLine(i + 1, r) for i, r in enumerate(refs))
        engine = CleanupEngine(FakeVpc(refs, delete_seconds=0.05), journal)
        async for _ in engine.outcomes():
            engine.stop()
        summary = engine.summary()
        assert summary.interrupted
        assert summary.counts["pending"] > 0
        assert {r.outcome for r in journal.rows()} >= {"pending"}
