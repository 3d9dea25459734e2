"""The machine-readable report: one record per tunnel and per invalid line.

It is written from the journal, not from what this process saw, so after a resume it still
covers every run: each tunnel appears exactly once (duplicates were folded at ingest), in input
order, with its final outcome, or ``pending`` when the job stopped before reaching it. Invalid
lines appear as outcome ``invalid`` with their ``line`` number and the reason in ``message``.

JSON lines by default; a path ending in ``.csv`` gives CSV with the same columns. The file is
written next to its final name and renamed into place, so a reader never sees half a report.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from tcvpc.cleanup.journal import Journal, JournalRow

__all__ = ["REPORT_FIELDS", "write_report"]

REPORT_FIELDS = (
    "VpnGatewayId",
    "VpnConnectionId",
    "outcome",
    "code",
    "message",
    "request_id",
    "attempts",
    "inferred",
    "line",
)


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
        "line": row.line,
    }


def write_report(journal: Journal, path: str | Path) -> int:
    """Write the report for everything in ``journal``; returns the number of records."""
    target = Path(path)
    tmp = target.with_name(target.name + ".tmp")
    count = 0
    with tmp.open("w", encoding="utf-8", newline="") as out:
        if target.suffix.lower() == ".csv":
            writer = csv.DictWriter(out, fieldnames=REPORT_FIELDS)
            writer.writeheader()
            for row in journal.rows():
                record = _record(row)
                writer.writerow({k: "" if v is None else v for k, v in record.items()})
                count += 1
        else:
            for row in journal.rows():
                out.write(json.dumps(_record(row), ensure_ascii=False) + "\n")
                count += 1
    os.replace(tmp, target)
    return count
