from __future__ import annotations

import os
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from cleanup_fakes import FakeVpc, make_refs
from click.testing import CliRunner

from tcvpc.cleanup.command import cleanup_command
from tcvpc.cleanup.engine import CleanupEngine
from tcvpc.cleanup.journal import (
    Journal,
    JournalBusyError,
    JournalError,
    PendingTunnel,
    default_journal_path,
)
from tcvpc.cleanup.report import write_report
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
    # A discovery finds what exists now: each run gets a journal of its own (issue 11).
    a = default_journal_path("discover:gateway=a")
    assert a.name.startswith("tcvpc-cleanup-discovery-")
    assert a != default_journal_path("discover:gateway=a")
    assert default_journal_path("-") != default_journal_path("-")


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


# -- one job per journal -------------------------------------------------------------------------


def test_a_second_job_on_the_same_journal_is_refused_naming_the_holder(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    with Journal(path):
        started = time.monotonic()
        with pytest.raises(JournalBusyError) as refused:
            Journal(path)
        assert time.monotonic() - started < 2  # at once, not after SQLite's busy timeout
        message = str(refused.value)
        assert f"pid {os.getpid()}" in message
        assert socket.gethostname() in message
        assert "started 20" in message
    Journal(path).close()  # released on close


def test_a_killed_holder_does_not_block_the_next_run(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    code = (
        "import sys, time; from tcvpc.cleanup.journal import Journal; "
        f"j = Journal({str(path)!r}); print('locked', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(JournalBusyError, match=f"pid {holder.pid} "):
            Journal(path)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
    with Journal(path) as journal:  # the lock file is still there; the lock is not
        assert journal.path.with_name("j.sqlite.lock").exists()


# -- files private to the user -------------------------------------------------------------------


def test_journal_wal_shm_lock_and_report_are_0600_under_a_permissive_umask(
    tmp_path: Path,
) -> None:
    old = os.umask(0)
    try:
        path = tmp_path / "j.sqlite"
        with Journal(path) as journal:
            journal.ingest([TunnelLine(1, make_refs(1, 1)[0])])
            files = [path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}.lock")]
            for report in (tmp_path / "r.jsonl", tmp_path / "r.csv"):
                write_report(journal, report)
                files.append(report)
            modes = {f.name: stat.S_IMODE(f.stat().st_mode) for f in files}
    finally:
        os.umask(old)
    assert modes == {f.name: 0o600 for f in files}


# -- a read-only journal -------------------------------------------------------------------------


def test_a_read_only_journal_ends_the_command_with_exit_2_before_sending(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "t.csv"
    ref = make_refs(1, 1)[0]
    path.write_text(f"{ref.vpn_gateway_id},{ref.vpn_connection_id}\n")
    journal_path = tmp_path / "j.sqlite"
    with Journal(journal_path) as journal:
        journal.claim_source(str(path.resolve()))
        journal.ingest([TunnelLine(1, ref)])
        journal.mark_inflight(ref)
    os.chmod(journal_path, 0o400)
    if os.geteuid() == 0:  # root writes through file modes: open it the way SQLite opens a
        connect = sqlite3.connect  # file it cannot write (read-only mode)

        def read_only(database: str, *args: Any, **kwargs: Any) -> sqlite3.Connection:
            return connect(f"file:{database}?mode=ro", *args, uri=True, **kwargs)

        monkeypatch.setattr(sqlite3, "connect", read_only)
    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", "AKIDtest")
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", "key")
    # A closed loopback port: anything sent would fail differently (and slowly).
    args = ["--input", str(path), "--journal", str(journal_path), "--region", "ap-guangzhou"]
    result = CliRunner().invoke(cleanup_command, [*args, "--endpoint", "http://127.0.0.1:9"])
    assert result.exit_code == 2, result.output
    assert "readonly" in result.output or "Permission denied" in result.output
    os.chmod(journal_path, 0o600)
    monkeypatch.undo()
    with Journal(journal_path) as journal:  # the row on the wire is still accounted for
        item = journal.next_pending(ref.vpn_gateway_id)
        assert isinstance(item, PendingTunnel)
        assert item.unknown
