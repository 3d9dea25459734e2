"""The job when its own machinery fails: a broken journal, a stop with watches pending.

Every run is bounded by ``asyncio.wait_for``: a hang is a failure, not a stuck test run.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from cleanup_fakes import FakeVpc, make_refs

from tcvpc.cleanup.engine import CleanupEngine, EngineConfig
from tcvpc.cleanup.journal import Journal, JournalError
from tcvpc.models import TunnelRef

MakeJournal = Callable[[Sequence[TunnelRef]], Journal]

SQLITE_FAILURES = [
    "database or disk is full",
    "attempt to write a readonly database",
    "database disk image is malformed",
    "database is locked",
]


class FailingConnection:
    """Stands in for the journal's SQLite connection; writes fail once ``broken`` is set."""

    def __init__(self, db: sqlite3.Connection, message: str, *, fail_on: tuple[str, ...]) -> None:
        self._db = db
        self.message = message
        self.fail_on = fail_on
        self.broken = False
        self.writes = 0

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        if sql.lstrip().upper().startswith(self.fail_on):
            if self.broken:
                raise sqlite3.OperationalError(self.message)
            self.writes += 1
        return self._db.execute(sql, params)

    def close(self) -> None:
        self._db.close()


def break_journal(
    journal: Journal, message: str, fail_on: tuple[str, ...] = ("UPDATE", "INSERT", "BEGIN")
) -> FailingConnection:
    assert journal._db is not None
    proxy = FailingConnection(journal._db, message, fail_on=fail_on)
    journal._db = proxy  # type: ignore[assignment]
    return proxy


@pytest.mark.parametrize("message", SQLITE_FAILURES)
async def test_journal_failure_mid_run_ends_the_job_with_a_typed_error(
    make_journal: MakeJournal, tmp_path: Path, message: str
) -> None:
    refs = make_refs(6, 5)
    fake = FakeVpc(refs, delete_seconds=0.005)
    journal = make_journal(refs)
    proxy = break_journal(journal, message)
    engine = CleanupEngine(fake, journal, EngineConfig(concurrency=4, drain_timeout=30))
    seen = []

    async def consume() -> None:
        async for outcome in engine.outcomes():
            seen.append(outcome)
            if len(seen) == 7:
                proxy.broken = True  # the disk fills up mid-run

    with pytest.raises(JournalError, match=message):
        await asyncio.wait_for(consume(), 20)
    journal.close()  # its release fails too; closing must not raise

    with Journal(tmp_path / "j.sqlite") as reopened:
        rows = {
            (r[0], r[1]): r[2:]
            for r in reopened._all("SELECT gw, conn, state, outcome, unknown FROM tunnels")
        }
    sent = {(gw, conn) for _, gw, conn in fake.deletes}
    done = {k for k, (state, _, _) in rows.items() if state == "done"}
    # outcomes reported before the failure are kept, and were all committed
    assert {(o.tunnel.vpn_gateway_id, o.tunnel.vpn_connection_id) for o in seen} <= done
    assert len(done) >= 7
    # a delete that was sent without its outcome committed is still on record as in flight,
    # which the next run treats as an unknown outcome (a later ResourceNotFound = deleted)
    for key in sent - done:
        state, _, unknown = rows[key]
        assert state == "inflight" or (state == "pending" and unknown == 1), (key, rows[key])
    # nothing that was never sent is marked as done
    assert done <= sent


async def test_journal_failure_before_a_delete_sends_nothing_more(
    make_journal: MakeJournal,
) -> None:
    refs = make_refs(3, 3)
    fake = FakeVpc(refs, delete_seconds=0.005)
    journal = make_journal(refs)
    break_journal(journal, "database or disk is full").broken = True
    with pytest.raises(JournalError, match="disk is full"):
        await asyncio.wait_for(CleanupEngine(fake, journal).run(), 20)
    assert fake.deletes == []  # mark_inflight comes first: it failed, so nothing went out


def test_corrupted_journal_is_a_journal_error(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    path.write_bytes(b"this is not a database\x00" * 400)
    with pytest.raises(JournalError, match="not a database"):
        Journal(path)
    Journal(tmp_path / "other.sqlite").close()  # the failed open released its lock
    with pytest.raises(JournalError, match="not a database"):
        Journal(path)  # ...and this one too: no "in use by another job"


async def test_stop_with_pending_watches_returns_promptly(make_journal: MakeJournal) -> None:
    refs = make_refs(8, 2)
    stalled = asyncio.Event()  # Describe never answers: every watch stays pending
    fake = FakeVpc(refs, delete_seconds=0.005, describe_block=stalled)
    engine = CleanupEngine(
        fake, make_journal(refs), EngineConfig(wait=True, drain_timeout=60, first_look=0.01)
    )
    task = asyncio.create_task(engine.run())
    deadline = time.monotonic() + 10
    while fake.describes < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert fake.describes >= 2, "no poll went out"
    engine.stop()
    started = time.monotonic()
    summary = await asyncio.wait_for(task, 30)  # the drain timeout is 60 s
    assert time.monotonic() - started < 10
    assert summary.interrupted
    # --wait: accepted but never seen gone, so pending again (with the accepted bit)
    assert summary.counts["pending"] == len(refs)
