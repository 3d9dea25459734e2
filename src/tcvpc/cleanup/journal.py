"""The job's durable memory and its work queue: one SQLite file.

Why SQLite and why these settings:

* **The database is the queue.** Every input line is inserted once (primary key
  ``(gateway, connection)``: a duplicate is caught by the index, not by a set in memory), and the
  scheduler asks it for "the next pending tunnel of gateway G". Memory therefore stays flat for a
  million-line input; the file grows instead. Ingest runs in batches of a few thousand rows per
  transaction (one commit per row would cost a write each).
* **WAL with ``synchronous=NORMAL``.** A commit appends to the write-ahead log with ``write()``;
  the data is then in the operating system's page cache, which a ``kill -9`` of this process
  cannot take away. Only an OS crash or power loss can lose the last commits (``FULL`` would
  ``fsync`` each commit to cover that too, at a cost per tunnel); the job's promise is about the
  process dying, and WAL keeps the file consistent in either case.
* **Write-ahead of the network.** A tunnel is marked ``inflight`` (committed) *before* its delete
  is sent, and its outcome is committed *before* it is reported. A row found ``inflight`` when the
  journal is opened again was being deleted when the process died: it goes back to ``pending``
  with the ``unknown`` bit set, so that a later ``ResourceNotFound`` counts as *deleted*
  (inferred), not *already gone*.
* **Cheap enough to stay on the event loop.** Per tunnel the scheduler does one indexed select and
  two one-row commits: about 0.15 ms measured on a 1,000,000-row journal, so at the API's 100
  deletes per second well under 2% of the loop's time; doing it inline keeps the ordering
  guarantees trivially true (no thread can reorder "durable" and "reported"). Only the bulk
  ingest runs in a worker thread (1,000,000 lines: about 14 s, peak RSS about 45 MB).

Each tunnel row carries its region (the input's ``Region`` column, else the job's ``--region``);
``NULL`` only in rows migrated from schema 1, which predates the column: the command gives them
the run's ``--region`` (:meth:`Journal.adopt_region`), since that one region was all a schema-1
job could use. Opening a schema-1 journal migrates it in place (one ``ALTER TABLE``); a journal
of a newer schema than this code knows is refused.

States: ``pending`` (to do; ``not_before`` delays a requeued one), ``inflight`` (a delete may be on
the wire), ``accepted`` (``--wait`` only: delete accepted, disappearance not yet seen), ``done``
(``outcome`` is final: ``deleted``, ``already_gone`` or ``failed``). ``failed`` rows are retried by
a rerun: a rerun is how an operator retries failures; ``deleted``/``already_gone`` never are.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import socket
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from tcvpc.cleanup.sources import InvalidLine, LineDigests, SourceItem, TunnelLine
from tcvpc.models import DeleteOutcome, TunnelRef

__all__ = [
    "FailureCode",
    "IngestStats",
    "InputChangedError",
    "Journal",
    "JournalBusyError",
    "JournalError",
    "JournalRow",
    "PendingTunnel",
    "default_journal_path",
    "default_report_path",
]

SCHEMA_VERSION = "2"
"""2 added ``tunnels.region`` (schema 1 is migrated in place on open)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tunnels (
    gw TEXT NOT NULL,
    conn TEXT NOT NULL,
    line INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    not_before REAL NOT NULL DEFAULT 0,
    outcome TEXT,
    code TEXT,
    message TEXT,
    request_id TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    requeues INTEGER NOT NULL DEFAULT 0,
    unknown INTEGER NOT NULL DEFAULT 0,
    accepted INTEGER NOT NULL DEFAULT 0,
    inferred INTEGER NOT NULL DEFAULT 0,
    region TEXT,
    PRIMARY KEY (gw, conn)
);
CREATE INDEX IF NOT EXISTS tunnels_queue ON tunnels (gw, state, not_before);
CREATE TABLE IF NOT EXISTS invalid (line INTEGER PRIMARY KEY, reason TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS duplicates (
    line INTEGER PRIMARY KEY, gw TEXT NOT NULL, conn TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS input_lines (line INTEGER PRIMARY KEY, digest BLOB NOT NULL);
"""

_INGEST_BATCH = 5000


class JournalError(Exception):
    """The journal cannot be used (unreadable, full, read-only, another job's, a newer schema).

    Every SQLite error surfaces as this class, so a caller handles one type; whatever was
    committed before it stays in the file, and a rerun with the same journal resumes from there.
    """


class JournalBusyError(JournalError):
    """Another job holds the journal (its lock file is locked)."""


_SHOWN_LINES = 5


class InputChangedError(JournalError):
    """The input is not the one the journal took in: lines were changed or removed.

    Appended lines are not a change (they are taken in). Nothing of the new input was ingested.
    """

    def __init__(self, journal: Path, changed: list[int], changed_count: int, removed: int):
        self.journal = journal
        self.changed = changed
        """The first few changed line numbers (at most five)."""
        self.changed_count = changed_count
        self.removed = removed
        parts = []
        if changed_count:
            shown = ", ".join(str(n) for n in changed)
            hidden = changed_count - len(changed)
            more = f" and {hidden} more" if hidden else ""
            parts.append(f"line{'s' if changed_count > 1 else ''} {shown}{more} changed")
        if removed:
            parts.append(f"{removed} line{'s' if removed > 1 else ''} removed")
        super().__init__(f"the input is not what journal {journal} took in: {'; '.join(parts)}")


_PRIVATE = 0o600  # journal, its -wal/-shm (SQLite copies the file's mode), lock, report


class _JobLock:
    """One job per journal: an exclusive ``flock`` on ``JOURNAL.lock``, held until close.

    Why ``flock`` and not SQLite's ``locking_mode=EXCLUSIVE``: SQLite takes its lock at the
    first write, after the second job has already opened the file (and would have released the
    first job's in-flight rows), then makes it wait ``busy_timeout`` and fail without saying who
    holds it. The lock file is locked before SQLite opens anything, the refusal is immediate, and
    the holder's pid, host and start time can be written next to the lock. The kernel drops the
    lock when the holder dies (even ``kill -9``), so a stale file never blocks a rerun; the file
    is never deleted (unlinking a lock file races with a job that just opened it).
    """

    def __init__(self, journal: Path) -> None:
        self.path = journal.with_name(journal.name + ".lock")
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, _PRIVATE)
        except OSError as exc:
            raise JournalError(f"cannot create lock file {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise JournalBusyError(
                f"journal {journal} is in use by another job ({holder}); "
                "wait for it to finish or pass another --journal"
            ) from None
        except OSError as exc:
            os.close(fd)
            raise JournalError(f"cannot lock {self.path}: {exc.strerror}") from None
        self._fd: int | None = fd
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        with contextlib.suppress(OSError):  # informational only: the lock is what counts
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode(), 0)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor drops the flock
            self._fd = None


def _read_holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"pid {info['pid']} on {info['host']}, started {info['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "holder unknown"


@dataclass(frozen=True, slots=True)
class IngestStats:
    tunnels: int
    invalid: int
    duplicates: int
    known_lines: int = 0
    """Lines an earlier run had taken in (checked unchanged, not ingested again)."""
    new_lines: int = 0
    """Lines taken in by this ingest (appended ones, on a rerun)."""


@dataclass(frozen=True, slots=True)
class PendingTunnel:
    """A tunnel taken from the queue, with what earlier runs learned about it."""

    tunnel: TunnelRef
    line: int
    attempts: int
    requeues: int
    unknown: bool
    """An earlier attempt may have deleted it: a ``ResourceNotFound`` now means *deleted*."""
    accepted: bool
    """An earlier attempt was acknowledged (``--wait`` was waiting for it to disappear)."""
    region: str | None = None
    """Where to send it (``None``: the engine's default client)."""


@dataclass(frozen=True, slots=True)
class FailureCode:
    """One code among the job's failures, for the screen: how many, and one example."""

    code: str
    count: int
    line: int
    tunnel: TunnelRef | None
    message: str | None


@dataclass(frozen=True, slots=True)
class JournalRow:
    """One line of the report: a tunnel (in input order) or an invalid line."""

    line: int
    gateway: str | None
    connection: str | None
    outcome: str
    code: str | None
    message: str | None
    request_id: str | None
    attempts: int
    inferred: bool
    region: str | None = None


def default_journal_path(source: str) -> Path:
    """``FILE.journal.sqlite`` beside a file; a per-run name for stdin and for discovery.

    stdin cannot be read twice, and a discovery finds what exists *now* (a repeated discovery
    must not resume an earlier, perhaps refused, run's list), so their journal names are unique
    per run and the command prints them (resume with ``--journal``).
    """
    stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
    if source == "-":
        return Path(f"tcvpc-cleanup-stdin-{stamp}.journal.sqlite")
    if source.startswith("discover:"):
        digest = hashlib.sha256(source.encode()).hexdigest()[:8]
        return Path(f"tcvpc-cleanup-discovery-{digest}-{stamp}.journal.sqlite")
    return Path(source + ".journal.sqlite")


def default_report_path(journal: str | Path) -> Path:
    """The report's path when none is given: beside the journal, ``NAME.report.jsonl``."""
    path = Path(journal)
    return path.with_name(path.name.removesuffix(".sqlite") + ".report.jsonl")


class Journal:
    """The SQLite journal; one instance per job, used from one thread at a time."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None
        self._lock = _JobLock(self.path)  # before SQLite touches the file
        try:
            self._open()
        except BaseException:
            self._lock.release()
            raise

    def _open(self) -> None:
        try:
            # Created here with 0600 so SQLite's files inherit it (it gives -wal/-shm the main
            # file's mode), whatever the umask.
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, _PRIVATE))
        except OSError as exc:
            raise JournalError(f"cannot open journal {self.path}: {exc.strerror}") from None
        try:
            self._db = sqlite3.connect(
                str(self.path), isolation_level=None, check_same_thread=False
            )
            self._execute("PRAGMA journal_mode=WAL")
            self._execute("PRAGMA synchronous=NORMAL")
            self._execute("PRAGMA busy_timeout=5000")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            if self._db is not None:
                self._db.close()
                self._db = None
            raise JournalError(f"cannot open journal {self.path}: {exc}") from None
        version = self.get_meta("schema")
        if version == "1":
            self._migrate_from_1()
        elif version is None:
            self.set_meta("schema", SCHEMA_VERSION)
        elif version != SCHEMA_VERSION:
            self._db.close()
            self._db = None
            raise JournalError(
                f"journal {self.path} has schema {version}, this tcvpc knows schema "
                f"{SCHEMA_VERSION} and older: use a newer tcvpc, or another --journal"
            )

    def _migrate_from_1(self) -> None:
        """Schema 1 had no region: add the column (``NULL``: the run's ``--region``), one step."""
        self._execute("BEGIN IMMEDIATE")
        try:
            self._execute("ALTER TABLE tunnels ADD COLUMN region TEXT")
            self.set_meta("schema", SCHEMA_VERSION)
            self._execute("COMMIT")
        except BaseException:
            with contextlib.suppress(JournalError):
                self._execute("ROLLBACK")
            raise

    def _execute(self, sql: str, params: tuple[object, ...] = ()) -> sqlite3.Cursor:
        """Every statement goes through here: any SQLite error becomes a :class:`JournalError`."""
        if self._db is None:
            raise JournalError(f"journal {self.path} is closed")
        try:
            return self._db.execute(sql, params)
        except sqlite3.Error as exc:
            raise self._error(exc) from None

    def _one(self, sql: str, params: tuple[object, ...] = ()) -> tuple[Any, ...] | None:
        try:
            row: tuple[Any, ...] | None = self._execute(sql, params).fetchone()
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        return row

    def _all(self, sql: str, params: tuple[object, ...] = ()) -> Iterator[tuple[Any, ...]]:
        """Stream a query's rows in chunks; errors while stepping become JournalError too."""
        cur = self._execute(sql, params)
        while True:
            try:
                chunk = cur.fetchmany(512)
            except sqlite3.Error as exc:
                raise self._error(exc) from None
            if not chunk:
                return
            yield from chunk

    def _error(self, exc: sqlite3.Error) -> JournalError:
        return JournalError(
            f"journal {self.path}: {exc} (outcomes recorded so far are kept; fix the cause "
            f"and rerun with --journal {self.path} to resume)"
        )

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        """Release in-flight rows (as a crash would be seen), close, unlock; idempotent.

        A failing release (disk full, read-only) is not an error here: the rows stay
        ``inflight``, which the next open treats exactly the same way.
        """
        try:
            if self._db is not None:
                with contextlib.suppress(JournalError):
                    self.release_inflight()
                with contextlib.suppress(sqlite3.Error):
                    self._db.close()
                self._db = None
        finally:
            self._lock.release()

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def get_meta(self, key: str) -> str | None:
        row = self._one("SELECT value FROM meta WHERE key = ?", (key,))
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self._execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    # -- ingest ------------------------------------------------------------------------------

    def claim_source(self, source: str) -> None:
        """Bind the journal to one input (path or filters); another input is a mistake."""
        current = self.get_meta("source")
        if current is None:
            self.set_meta("source", source)
        elif current != source:
            raise JournalError(
                f"journal {self.path} belongs to {current!r}, not {source!r}: "
                "pass another --journal (or delete that file to start over)"
            )

    @property
    def ingest_complete(self) -> bool:
        return self.get_meta("ingest_complete") == "1"

    def ingest(
        self,
        items: Iterable[SourceItem],
        batch: int = _INGEST_BATCH,
        *,
        digests: LineDigests | None = None,
    ) -> IngestStats:
        """Insert items in batched transactions; idempotent (a crashed ingest is just redone).

        Duplicates are detected by the primary key; a re-read of the same line is not a duplicate
        (the row remembers the line that introduced it).

        With ``digests`` (fed by :func:`~tcvpc.cleanup.sources.read_items`), the journal is bound
        to what the input holds, line by line: lines it took in before must be unchanged (their
        items are not ingested again), lines after them are new and taken in, and a changed or
        missing line raises :class:`InputChangedError` with nothing of the new input ingested.
        The comparison streams (one batch of stored digests at a time): memory stays flat.
        """
        if digests is not None:
            return self._ingest_bound(items, batch, digests)
        tunnels = invalid = duplicates = 0
        pending: list[SourceItem] = []

        def flush() -> None:
            nonlocal tunnels, invalid, duplicates
            t, i, d = self.ingest_batch(pending)
            tunnels += t
            invalid += i
            duplicates += d
            pending.clear()

        for item in items:
            pending.append(item)
            if len(pending) >= batch:
                flush()
        flush()
        self.finish_ingest()
        return IngestStats(tunnels, invalid, duplicates)

    def known_lines(self) -> int:
        """How many input lines the journal has taken in (with their digests)."""
        row = self._one("SELECT COALESCE(MAX(line), 0) FROM input_lines")
        return 0 if row is None else int(row[0])

    def _ingest_bound(
        self, items: Iterable[SourceItem], batch: int, digests: LineDigests
    ) -> IngestStats:
        known = self.known_lines()
        tunnels = invalid = duplicates = 0
        changed: list[int] = []
        changed_count = 0
        pending: list[SourceItem] = []

        def flush() -> None:
            nonlocal tunnels, invalid, duplicates, changed_count
            lines = digests.take()
            old = [(n, d) for n, d in lines if n <= known]
            if old:
                stored = dict(
                    self._all(
                        "SELECT line, digest FROM input_lines WHERE line BETWEEN ? AND ?",
                        (old[0][0], old[-1][0]),
                    )
                )
                for n, d in old:
                    if stored.get(n) != d:
                        changed_count += 1
                        if len(changed) < _SHOWN_LINES:
                            changed.append(n)
            new_items = [item for item in pending if item.line > known]
            pending.clear()
            if changed_count:
                return  # the input is refused: take nothing of it in
            new = [(n, d) for n, d in lines if n > known]
            t, i, dup = self.ingest_batch(new_items, new)
            tunnels += t
            invalid += i
            duplicates += dup

        for item in items:
            pending.append(item)
            if len(pending) >= batch:
                flush()
        flush()
        removed = max(0, known - digests.count)
        if changed_count or removed:
            raise InputChangedError(self.path, changed, changed_count, removed)
        self.finish_ingest()
        return IngestStats(
            tunnels,
            invalid,
            duplicates,
            known_lines=known,
            new_lines=digests.count - known,
        )

    def finish_ingest(self) -> None:
        """Mark the input as fully read: a resume then does not read it again."""
        self.set_meta("ingest_complete", "1")

    def ingest_batch(
        self, items: list[SourceItem], lines: list[tuple[int, bytes]] | None = None
    ) -> tuple[int, int, int]:
        """Insert one batch in one transaction; ``(new tunnels, invalid, duplicates)``.

        :meth:`ingest` batches a stream; discovery (an async stream) calls this directly.
        ``lines``: the batch's ``(line, digest)`` pairs, committed with its items.
        """
        if not items and not lines:
            return 0, 0, 0
        tunnels = invalid = duplicates = 0
        self._execute("BEGIN IMMEDIATE")
        try:
            for number, digest in lines or ():
                self._execute(
                    "INSERT OR REPLACE INTO input_lines (line, digest) VALUES (?, ?)",
                    (number, digest),
                )
            for item in items:
                if isinstance(item, InvalidLine):
                    self._execute(
                        "INSERT OR IGNORE INTO invalid (line, reason) VALUES (?, ?)",
                        (item.line, item.reason),
                    )
                    invalid += 1
                    continue
                assert isinstance(item, TunnelLine)
                ref = item.tunnel
                cur = self._execute(
                    "INSERT OR IGNORE INTO tunnels (gw, conn, line, region) VALUES (?, ?, ?, ?)",
                    (ref.vpn_gateway_id, ref.vpn_connection_id, item.line, item.region),
                )
                if cur.rowcount == 1:
                    tunnels += 1
                    continue
                first = self._one(
                    "SELECT line FROM tunnels WHERE gw = ? AND conn = ?",
                    (ref.vpn_gateway_id, ref.vpn_connection_id),
                )
                if first is not None and first[0] != item.line:
                    self._execute(
                        "INSERT OR IGNORE INTO duplicates (line, gw, conn) VALUES (?, ?, ?)",
                        (item.line, ref.vpn_gateway_id, ref.vpn_connection_id),
                    )
                    duplicates += 1
            self._execute("COMMIT")
        except BaseException:
            with contextlib.suppress(JournalError):  # the error itself may have ended it
                self._execute("ROLLBACK")
            raise
        return tunnels, invalid, duplicates

    # -- the queue ---------------------------------------------------------------------------

    def release_inflight(self) -> int:
        """Rows left ``inflight`` (a crash, a cancelled call) become pending with ``unknown``.

        ``accepted`` rows (``--wait`` had not seen them disappear) become pending too; their
        ``accepted`` bit makes the next ``ResourceNotFound`` count as deleted.
        """
        cur = self._execute(
            "UPDATE tunnels SET state = 'pending', unknown = 1, not_before = 0 "
            "WHERE state = 'inflight'"
        )
        n = cur.rowcount
        cur = self._execute(
            "UPDATE tunnels SET state = 'pending', not_before = 0 WHERE state = 'accepted'"
        )
        return n + cur.rowcount

    def retry_failed(self) -> int:
        """Put ``failed`` tunnels back in the queue (a rerun retries failures)."""
        cur = self._execute(
            "UPDATE tunnels SET state = 'pending', outcome = NULL, not_before = 0, requeues = 0 "
            "WHERE state = 'done' AND outcome = 'failed'"
        )
        return cur.rowcount

    def adopt_region(self, region: str) -> int:
        """Give rows without a region (migrated from schema 1) this one; returns how many."""
        return self._execute(
            "UPDATE tunnels SET region = ? WHERE region IS NULL", (region,)
        ).rowcount

    def regions(self) -> list[str | None]:
        """Every region of the journal's tunnels (``None``: rows without a region).

        All of them, not only the pending ones: opening the queue turns in-flight and failed rows
        of any region back into pending ones.
        """
        return [r for (r,) in self._all("SELECT DISTINCT region FROM tunnels")]

    def pending_by_gateway(self) -> Iterator[tuple[str | None, str, int]]:
        """``(region, gateway, pending count)`` for every gateway with work."""
        cur = self._all(
            "SELECT region, gw, COUNT(*) FROM tunnels WHERE state = 'pending' GROUP BY region, gw"
        )
        for region, gw, n in cur:
            yield region, str(gw), int(n)

    def next_pending(
        self, gateway: str, now: float | None = None, *, region: str | None = None
    ) -> PendingTunnel | float | None:
        """The gateway's next tunnel due now; else the wall time the next one is due; else None.

        Only rows of ``region`` (``None``: rows without one): a gateway ID listed under two
        regions is two queues, each sent to its own region.
        """
        row = self._one(
            "SELECT conn, line, attempts, requeues, unknown, accepted, not_before FROM tunnels "
            "WHERE gw = ? AND state = 'pending' AND region IS ? "
            "ORDER BY not_before, rowid LIMIT 1",
            (gateway, region),
        )
        if row is None:
            return None
        conn, line, attempts, requeues, unknown, accepted, not_before = row
        if not_before > (time.time() if now is None else now):
            return float(not_before)
        return PendingTunnel(
            tunnel=TunnelRef(gateway, str(conn)),
            line=int(line),
            attempts=int(attempts),
            requeues=int(requeues),
            unknown=bool(unknown),
            accepted=bool(accepted),
            region=region,
        )

    def mark_inflight(self, tunnel: TunnelRef) -> None:
        """Committed before the delete is sent: a crash now leaves the ``unknown`` trail."""
        self._update(tunnel, "state = 'inflight'")

    def mark_unknown(self, tunnel: TunnelRef) -> None:
        """An attempt's outcome was unknown (timeout, dropped connection)."""
        self._update(tunnel, "unknown = 1")

    def mark_accepted(self, tunnel: TunnelRef, request_id: str, attempts: int) -> None:
        """``--wait``: the delete was accepted; the outcome is recorded once it is gone."""
        self._update(
            tunnel,
            "state = 'accepted', accepted = 1, request_id = ?, attempts = ?",
            (request_id, attempts),
        )

    def requeue(self, tunnel: TunnelRef, not_before: float, attempts: int) -> None:
        """Back to the queue, not before wall time ``not_before`` (a tunnel mid-task)."""
        self._update(
            tunnel,
            "state = 'pending', not_before = ?, requeues = requeues + 1, attempts = ?",
            (not_before, attempts),
        )

    def unclaim(self, tunnel: TunnelRef) -> None:
        """Back to the queue untouched (the job stopped before its turn finished)."""
        self._update(tunnel, "state = 'pending'")

    def record_outcome(
        self,
        tunnel: TunnelRef,
        outcome: DeleteOutcome,
        *,
        code: str | None,
        message: str | None,
        request_id: str | None,
        attempts: int,
        inferred: bool = False,
    ) -> None:
        """The final outcome, committed before anyone is told about it."""
        self._update(
            tunnel,
            "state = 'done', outcome = ?, code = ?, message = ?, request_id = ?, attempts = ?, "
            "inferred = ?",
            (str(outcome), code, message, request_id, attempts, int(inferred)),
        )

    def _update(self, tunnel: TunnelRef, assignments: str, params: tuple[object, ...] = ()) -> None:
        # Autocommit mode: each statement is its own transaction, committed on return.
        self._execute(
            f"UPDATE tunnels SET {assignments} WHERE gw = ? AND conn = ?",  # noqa: S608 - fixed SQL
            (*params, tunnel.vpn_gateway_id, tunnel.vpn_connection_id),
        )

    # -- reading -----------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """Tunnels by outcome (``pending`` for those without one yet), plus invalid lines."""
        out = {str(o): 0 for o in DeleteOutcome}
        out["pending"] = 0
        for outcome, n in self._all(
            "SELECT COALESCE(CASE WHEN state = 'done' THEN outcome END, 'pending'), COUNT(*) "
            "FROM tunnels GROUP BY 1"
        ):
            out[str(outcome)] = int(n)
        out[str(DeleteOutcome.INVALID)] = self._count("invalid")
        return out

    def duplicates(self) -> int:
        return self._count("duplicates")

    def failure_codes(self, limit: int = 5) -> list[FailureCode]:
        """The most frequent codes of ``failed`` tunnels, each with its first example."""
        out = []
        for code, n, line in list(
            self._all(
                "SELECT code, COUNT(*), MIN(line) FROM tunnels "
                "WHERE state = 'done' AND outcome = 'failed' GROUP BY code "
                "ORDER BY 2 DESC, 1 LIMIT ?",
                (limit,),
            )
        ):
            example = self._one(
                "SELECT gw, conn, message FROM tunnels WHERE line = ? AND outcome = 'failed'",
                (line,),
            )
            gw, conn, message = example if example is not None else (None, None, None)
            out.append(
                FailureCode(
                    code=str(code or "unknown"),
                    count=int(n),
                    line=int(line),
                    tunnel=TunnelRef(str(gw), str(conn)) if gw is not None else None,
                    message=message,
                )
            )
        return out

    def invalid_lines(self, limit: int = 5) -> list[tuple[int, str]]:
        """The first ``limit`` invalid lines: ``(line, reason)``."""
        return [
            (int(line), str(reason))
            for line, reason in self._all(
                "SELECT line, reason FROM invalid ORDER BY line LIMIT ?", (limit,)
            )
        ]

    def total_tunnels(self) -> int:
        return self._count("tunnels")

    def _count(self, table: str) -> int:
        row = self._one(f"SELECT COUNT(*) FROM {table}")  # noqa: S608 - fixed table names
        return 0 if row is None else int(row[0])

    def rows(self) -> Iterator[JournalRow]:
        """Every tunnel and invalid line in input-line order, streamed (for the report)."""
        cur = self._all(
            "SELECT line, gw, conn, CASE WHEN state = 'done' THEN outcome ELSE 'pending' END, "
            "code, message, request_id, attempts, inferred, region FROM tunnels "
            "UNION ALL SELECT line, NULL, NULL, 'invalid', 'InvalidLine', reason, NULL, 0, 0, "
            "NULL FROM invalid ORDER BY 1"
        )
        for line, gw, conn, outcome, code, message, request_id, attempts, inferred, region in cur:
            yield JournalRow(
                line=int(line),
                gateway=gw,
                connection=conn,
                outcome=str(outcome),
                code=code,
                message=message,
                request_id=request_id,
                attempts=int(attempts),
                inferred=bool(inferred),
                region=region,
            )
