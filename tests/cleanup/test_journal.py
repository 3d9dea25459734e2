from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from cleanup_fakes import FakeVpc, make_refs

from tcvpc.cleanup.engine import CleanupEngine
from tcvpc.cleanup.journal import Journal, JournalError, PendingTunnel, default_journal_path
from tcvpc.cleanup.sources import InvalidLine, TunnelLine
from tcvpc.models import DeleteOutcome, TunnelRef

MakeJournal = Callable[[Sequence[TunnelRef]], Journal]


def crash(journal: Journal) -> None:
    """Drop the connection and the lock without releasing anything, as ``kill -9`` would."""
    assert journal._db is not None
    journal._db.close()
    journal._db = None
    journal._lock.release()


def test_duplicates_are_folded_and_reingest_is_idempotent(tmp_path: Path) -> None:
    refs = make_refs(2, 2)
    lines = [TunnelLine(i + 1, r) for i, r in enumerate(refs)]
    lines.append(TunnelLine(5, refs[0]))  # a duplicate line
    lines.append(InvalidLine(6, "bad"))
    with Journal(tmp_path / "j.sqlite") as journal:
        stats = journal.ingest(lines, batch=2)
        assert (stats.tunnels, stats.invalid, stats.duplicates) == (4, 1, 1)
        assert journal.ingest_complete
        journal.ingest(lines)  # a resumed ingest reads the same lines again
        assert journal.total_tunnels() == 4
        assert journal.duplicates() == 1
        assert journal.counts()["pending"] == 4
        assert journal.counts()["invalid"] == 1
        rows = list(journal.rows())
        assert [r.line for r in rows] == [1, 2, 3, 4, 6]
        assert rows[-1].outcome == "invalid"
        assert rows[-1].message == "bad"


def test_inflight_at_crash_comes_back_pending_with_unknown(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    refs = make_refs(1, 3)
    crashed = Journal(path)
    crashed.ingest(TunnelLine(i + 1, r) for i, r in enumerate(refs))
    crashed.mark_inflight(refs[0])
    crashed.record_outcome(
        refs[1], DeleteOutcome.DELETED, code=None, message=None, request_id="r", attempts=1
    )
    crash(crashed)
    with Journal(path) as resumed:
        assert resumed.release_inflight() == 1
        first = resumed.next_pending(refs[0].vpn_gateway_id)
        assert isinstance(first, PendingTunnel)
        assert first.tunnel == refs[0]
        assert first.unknown
        assert resumed.counts()["deleted"] == 1
        assert resumed.counts()["pending"] == 2


def test_journal_belongs_to_one_source(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite") as journal:
        journal.claim_source("/a.csv")
        journal.claim_source("/a.csv")
        with pytest.raises(JournalError, match="belongs to"):
            journal.claim_source("/b.csv")


def test_default_paths() -> None:
    assert str(default_journal_path("x/t.csv")) == "x/t.csv.journal.sqlite"
    assert default_journal_path("-").name.startswith("tcvpc-cleanup-stdin-")
    a = default_journal_path("discover:gateway=a")
    assert a == default_journal_path("discover:gateway=a") != default_journal_path("discover:b")


def test_requeued_tunnel_waits_for_its_time(make_journal: MakeJournal) -> None:
    refs = make_refs(1, 2)
    journal = make_journal(refs)
    journal.requeue(refs[0], not_before=2_000.0, attempts=1)
    nxt = journal.next_pending(refs[0].vpn_gateway_id, now=1_000.0)
    assert isinstance(nxt, PendingTunnel)
    assert nxt.tunnel == refs[1]
    journal.mark_inflight(refs[1])
    assert journal.next_pending(refs[0].vpn_gateway_id, now=1_000.0) == 2_000.0


async def test_outcome_is_durable_before_it_is_reported(
    make_journal: MakeJournal, tmp_path: Path
) -> None:
    refs = make_refs(3, 3)
    journal = make_journal(refs)
    engine = CleanupEngine(FakeVpc(refs, delete_seconds=0.005), journal)
    observer = sqlite3.connect(tmp_path / "j.sqlite")
    seen = 0
    async for outcome in engine.outcomes():
        row = observer.execute(
            "SELECT state, outcome FROM tunnels WHERE gw = ? AND conn = ?",
            (outcome.tunnel.vpn_gateway_id, outcome.tunnel.vpn_connection_id),
        ).fetchone()
        assert row == ("done", str(outcome.outcome))
        seen += 1
    observer.close()
    assert seen == 9


async def test_resume_never_resends_what_is_done(make_journal: MakeJournal) -> None:
    refs = make_refs(2, 3)
    journal = make_journal(refs)
    journal.record_outcome(
        refs[0], DeleteOutcome.DELETED, code=None, message=None, request_id="r0", attempts=1
    )
    journal.record_outcome(
        refs[1], DeleteOutcome.ALREADY_GONE, code=None, message=None, request_id="r1", attempts=1
    )
    journal.mark_inflight(refs[2])  # was on the wire when the last run died...
    fake = FakeVpc(refs, delete_seconds=0.005)
    del fake.tunnels[refs[2].vpn_connection_id]  # ...and the server had deleted it
    summary = await CleanupEngine(fake, journal).run()
    sent = {conn for _, _, conn in fake.deletes}
    assert sent == {r.vpn_connection_id for r in refs[2:]}
    assert summary.counts["deleted"] == 5
    assert summary.counts["already_gone"] == 1
    row = next(r for r in journal.rows() if r.connection == refs[2].vpn_connection_id)
    assert row.outcome == "deleted"
    assert row.inferred
