"""The bulk cleanup job as a library: give it a client and a journal, it deletes what is queued.

    from tcvpc.cleanup import CleanupEngine, Journal, read_input

    with Journal("tunnels.csv.journal.sqlite") as journal:
        journal.ingest(read_input("tunnels.csv"))
        summary = await CleanupEngine(client, journal).run()

``tcvpc cleanup`` (``cleanup.command``) is a click command over exactly this.
"""

from tcvpc.cleanup.engine import (
    CleanupEngine,
    EngineConfig,
    Progress,
    Summary,
    TunnelOutcome,
    first_call_retry_policy,
    job_retry_policy,
)
from tcvpc.cleanup.journal import (
    IngestStats,
    InputChangedError,
    Journal,
    JournalBusyError,
    JournalError,
    JournalRow,
    default_journal_path,
)
from tcvpc.cleanup.protocol import CleanupClient
from tcvpc.cleanup.report import REPORT_FIELDS, ReportError, open_report, write_report
from tcvpc.cleanup.sources import (
    DEFAULT_MAX_LINE_BYTES,
    InputError,
    InvalidLine,
    LineDigests,
    SourceItem,
    TunnelLine,
    discover,
    parse_lines,
    read_input,
    read_items,
)
from tcvpc.cleanup.watcher import DeletionWatcher, WatchResult

__all__ = [
    "DEFAULT_MAX_LINE_BYTES",
    "REPORT_FIELDS",
    "CleanupClient",
    "CleanupEngine",
    "DeletionWatcher",
    "EngineConfig",
    "IngestStats",
    "InputChangedError",
    "InputError",
    "InvalidLine",
    "Journal",
    "JournalBusyError",
    "JournalError",
    "JournalRow",
    "LineDigests",
    "Progress",
    "ReportError",
    "SourceItem",
    "Summary",
    "TunnelLine",
    "TunnelOutcome",
    "WatchResult",
    "default_journal_path",
    "discover",
    "first_call_retry_policy",
    "job_retry_policy",
    "open_report",
    "parse_lines",
    "read_input",
    "read_items",
    "write_report",
]
