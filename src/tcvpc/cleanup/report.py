"""The machine-readable report: one record per tunnel and per invalid line.

It is written from the journal, not from what this process saw, so after a resume it still
covers every run: each tunnel appears exactly once (duplicates were folded at ingest), in input
order, with its final outcome, or ``pending`` when the job stopped before reaching it. Invalid
lines appear as outcome ``invalid`` with their ``line`` number and the reason in ``message``.

``Region`` is where the tunnel's delete was sent (the line's ``Region``, else the job's
``--region``); empty for an invalid line. JSON lines by default; a path ending in ``.csv`` gives
CSV with the same columns. In CSV a cell a
spreadsheet would evaluate (it starts with ``=``, ``+``, ``-``, ``@``, a tab or a CR: an API
message is server-controlled text) gets a leading ``'`` (OWASP's rule); JSON lines stay raw.

The file is opened (``open_report``) before the job sends anything, so a report that cannot be
written is found before the first delete; it is written next to its final name, private to the
user (0600), and renamed into place at the end, so a reader never sees half a report.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
from pathlib import Path
from typing import TextIO

from tcvpc.cleanup.journal import Journal, JournalRow

__all__ = ["REPORT_FIELDS", "ReportError", "ReportFile", "open_report", "write_report"]

REPORT_FIELDS = (
    "VpnGatewayId",
    "VpnConnectionId",
    "outcome",
    "code",
    "message",
    "request_id",
    "attempts",
    "inferred",
    "Region",
    "line",
)

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class ReportError(Exception):
    """The report cannot be written (no such directory, read-only, full...)."""


def _record(row: JournalRow) -> dict[str, object]:
    return {
        "VpnGatewayId": row.gateway,
        "VpnConnectionId": row.connection,
        "outcome": row.outcome,
        "code": row.code,
        "message": row.message,
        "request_id": row.request_id,
        "attempts": row.attempts,
        "inferred": row.inferred,
        "Region": row.region,
        "line": row.line,
    }


def csv_cell(value: object) -> object:
    """A CSV cell a spreadsheet shows as text: formula-looking strings get a leading ``'``."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


class ReportFile:
    """A report being written: the temporary file exists from :func:`open_report` on."""

    def __init__(self, target: Path, tmp: Path, out: TextIO) -> None:
        self.path = target
        self._tmp = tmp
        self._out: TextIO | None = out
        self._written = False

    def write(self, journal: Journal) -> int:
        """Write the report for everything in ``journal``, rename it into place; records."""
        out = self._out
        if out is None:
            raise ReportError(f"report {self.path} was already written")
        try:
            count = 0
            if self.path.suffix.lower() == ".csv":
                writer = csv.DictWriter(out, fieldnames=REPORT_FIELDS)
                writer.writeheader()
                for row in journal.rows():
                    writer.writerow({k: csv_cell(v) for k, v in _record(row).items()})
                    count += 1
            else:
                for row in journal.rows():
                    out.write(json.dumps(_record(row), ensure_ascii=False) + "\n")
                    count += 1
            out.close()
            self._out = None
            os.replace(self._tmp, self.path)
            self._written = True
        except OSError as exc:
            self.discard()
            raise ReportError(f"cannot write report {self.path}: {exc.strerror or exc}") from None
        return count

    def discard(self) -> None:
        """Close and remove the temporary file (nothing to report); idempotent."""
        if self._written:
            return
        if self._out is not None:
            with contextlib.suppress(OSError):  # a full disk fails the flush: the file goes anyway
                self._out.close()
            self._out = None
        with contextlib.suppress(FileNotFoundError):
            os.remove(self._tmp)


def open_report(path: str | Path) -> ReportFile:
    """Create the report's temporary file now (0600), or raise :class:`ReportError`."""
    target = Path(path)
    if target.is_dir():
        raise ReportError(f"report path {target} is a directory")
    tmp = target.with_name(target.name + ".tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        fd = os.open(tmp, flags, 0o600)
    except OSError as exc:
        raise ReportError(f"cannot write report {target}: {exc.strerror or exc}") from None
    try:
        os.fchmod(fd, 0o600)  # an old .tmp keeps its mode through O_CREAT: make it private
        out = os.fdopen(fd, "w", encoding="utf-8", newline="")
    except OSError as exc:
        os.close(fd)
        raise ReportError(f"cannot write report {target}: {exc.strerror or exc}") from None
    return ReportFile(target, tmp, out)


def write_report(journal: Journal, path: str | Path) -> int:
    """Write the report for everything in ``journal``; returns the number of records."""
    return open_report(path).write(journal)
