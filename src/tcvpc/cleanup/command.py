"""``tcvpc cleanup``: a thin click command over the cleanup library.

It parses flags, checks everything that can be checked before the first request (input file,
credentials, region, endpoint, journal, report), wires the client, journal, engine and display
together, and maps the result to the exit status:

* 0: every tunnel ended ``deleted`` or ``already_gone`` and no input line was invalid; also an
  input that names no tunnel at all (said on stderr: "nothing to do");
* 1: anything else (a tunnel failed, an invalid line, tunnels left pending);
* 2: usage or configuration errors: bad flags, a missing or unreadable input (``--input -`` with
  stdin closed or on ``/dev/null``), no credentials, a report path that cannot be written, a
  journal that belongs to another input or is held by another job; credentials the API rejects
  (the job stops at the first ``AuthFailure`` instead of failing every tunnel); and a journal
  that fails mid-run (disk full, read-only, corrupted: what was committed is kept);
* 130: interrupted (Ctrl-C or SIGTERM), after the calls on the wire finished and the journal
  was flushed.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import click
from rich.console import Console

from tcvpc.cleanup.engine import CleanupEngine, EngineConfig, Summary, job_retry_policy
from tcvpc.cleanup.journal import Journal, JournalError, default_journal_path
from tcvpc.cleanup.progress import show_progress, summary_table
from tcvpc.cleanup.protocol import CleanupClient
from tcvpc.cleanup.report import ReportError, ReportFile, open_report
from tcvpc.cleanup.sources import (
    DEFAULT_MAX_LINE_BYTES,
    InputError,
    SourceItem,
    discover,
    open_input,
    read_items,
)
from tcvpc.client import VpcClient
from tcvpc.credentials import Credential
from tcvpc.errors import CredentialsError, CredentialsNotFoundError, QuotaBackendError
from tcvpc.ratelimit import DEFAULT_RATE
from tcvpc.regions import KNOWN_REGIONS, is_known_region

if TYPE_CHECKING:
    from tcvpc.redis_limiter import RedisLimiterRegistry

__all__ = [
    "EXIT_CONFIG",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "CleanupOptions",
    "cleanup",
    "cleanup_command",
    "run_cleanup",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_INTERRUPTED = 130

_DISCOVERY_BATCH = 1000


class _ConfigError(Exception):
    """A one-line configuration problem: printed, exit 2, nothing sent."""


@dataclass(frozen=True)
class CleanupOptions:
    """Everything ``tcvpc cleanup`` was asked to do (also what ``tcvpc demo`` builds)."""

    input: str | None = None
    gateways: tuple[str, ...] = ()
    vpcs: tuple[str, ...] = ()
    name_prefix: str | None = None
    region: str | None = None
    endpoint: str | None = None
    journal: str | None = None
    report: str | None = None
    rate: float = DEFAULT_RATE
    concurrency: int = 32
    per_gateway: int = 1
    dry_run: bool = False
    wait: bool = False
    yes: bool = False
    any_region: bool = False
    timeout: float = 30.0
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    credential: Credential | None = None
    redis_url: str | None = None

    def check(self) -> None:
        """Refuse what could turn into "delete everything": discovery needs a real filter."""
        filters = (
            *self.gateways,
            *self.vpcs,
            *(() if self.name_prefix is None else (self.name_prefix,)),
        )
        if self.input is not None:
            if filters:
                raise _ConfigError("give --input or discovery filters, not both")
            return
        if not filters:
            raise _ConfigError(
                "nothing to do: give --input FILE|- or --gateway/--vpc/--name-prefix"
            )
        if any(not f.strip() for f in filters):
            raise _ConfigError("an empty --gateway/--vpc/--name-prefix would match every tunnel")

    @property
    def source_id(self) -> str:
        """What the journal is bound to: the input's resolved path, or the filters."""
        if self.input == "-":
            return "stdin"
        if self.input is not None:
            return str(Path(self.input).resolve())
        parts = [
            "gateway=" + ",".join(sorted(self.gateways)),
            "vpc=" + ",".join(sorted(self.vpcs)),
            "prefix=" + (self.name_prefix or ""),
        ]
        return "discover:" + ";".join(parts)


# -- the command ------------------------------------------------------------------------------


@click.command("cleanup")
@click.option(
    "--input", "input_", metavar="FILE|-", help="CSV or JSON lines of tunnels; - is stdin."
)
@click.option(
    "--gateway", "gateways", multiple=True, metavar="ID", help="Discover on this gateway."
)
@click.option("--vpc", "vpcs", multiple=True, metavar="ID", help="Discover in this VPC.")
@click.option("--name-prefix", metavar="P", help="Discover tunnels whose name starts with P.")
@click.option("--region", metavar="R", help="Region (default: TENCENTCLOUD_REGION).")
@click.option("--endpoint", metavar="URL", help="API endpoint (default: the public one).")
@click.option("--journal", metavar="PATH", help="SQLite journal (default: derived from input).")
@click.option("--report", metavar="PATH", help="Write one record per tunnel (.csv for CSV).")
@click.option(
    "--rate",
    default=DEFAULT_RATE,
    show_default=True,
    type=click.FloatRange(min=0.1, max=100.0),
    help="Deletes per second at most.",
)
@click.option(
    "--concurrency",
    default=32,
    show_default=True,
    type=click.IntRange(min=1, max=1000),
    help="Delete calls in flight at most.",
)
@click.option(
    "--per-gateway",
    default=1,
    show_default=True,
    type=click.IntRange(min=1, max=100),
    help="Deletes in flight per gateway.",
)
@click.option("--dry-run", is_flag=True, help="List what would be deleted; send no delete.")
@click.option("--wait", is_flag=True, help="Report a deletion only once the tunnel is gone.")
@click.option(
    "--max-line-bytes",
    default=DEFAULT_MAX_LINE_BYTES,
    show_default=True,
    type=click.IntRange(min=64),
    help="Input lines longer than this are invalid (read in bounded chunks).",
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask before deleting discovered tunnels.")
@click.option(
    "--any-region", is_flag=True, help="Accept a region missing from tcvpc's list of regions."
)
@click.option(
    "--redis-url",
    envvar="TCVPC_REDIS_URL",
    metavar="URL",
    help="Share the account's rate with other jobs and services through this Redis "
    "(redis://, rediss://, unix://; env TCVPC_REDIS_URL).",
)
def cleanup_command(
    input_: str | None,
    gateways: tuple[str, ...],
    vpcs: tuple[str, ...],
    name_prefix: str | None,
    region: str | None,
    endpoint: str | None,
    journal: str | None,
    report: str | None,
    rate: float,
    concurrency: int,
    per_gateway: int,
    dry_run: bool,
    wait: bool,
    max_line_bytes: int,
    yes: bool,
    any_region: bool,
    redis_url: str | None,
) -> None:
    """Delete many VPN tunnels at the full allowed rate, crash-safe and resumable.

    Give the tunnels as a file (--input) or discover them (--gateway / --vpc / --name-prefix).
    Rerunning with the same journal resumes: nothing known done is sent again.
    """
    if input_ is not None and (gateways or vpcs or name_prefix):
        raise click.UsageError("give --input or discovery filters (--gateway/--vpc/--name-prefix)")
    if input_ is None and not (gateways or vpcs or name_prefix):
        raise click.UsageError(
            "nothing to do: give --input FILE|- or --gateway/--vpc/--name-prefix"
        )
    options = CleanupOptions(
        input=input_,
        gateways=gateways,
        vpcs=vpcs,
        name_prefix=name_prefix,
        region=region,
        endpoint=endpoint,
        journal=journal,
        report=report,
        rate=rate,
        concurrency=concurrency,
        per_gateway=per_gateway,
        dry_run=dry_run,
        wait=wait,
        max_line_bytes=max_line_bytes,
        yes=yes,
        any_region=any_region,
        redis_url=redis_url or None,
    )
    sys.exit(run_cleanup(options))


def run_cleanup(options: CleanupOptions, *, console: Console | None = None) -> int:
    """Run the whole command; returns the exit status."""
    out = console or Console()
    err = Console(stderr=True)
    try:
        return asyncio.run(cleanup(options, out, err))
    except KeyboardInterrupt:
        err.print("interrupted", highlight=False)
        return EXIT_INTERRUPTED


async def cleanup(options: CleanupOptions, out: Console, err: Console) -> int:
    """The command inside a running loop (the demo runs it beside its emulator); exit status."""
    try:
        return await _cleanup(options, out, err)
    except (_ConfigError, InputError, JournalError, ReportError) as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False)
        return EXIT_CONFIG


def _make_limiters(options: CleanupOptions, err: Console) -> RedisLimiterRegistry | None:
    """The fleet's shared budget when --redis-url is given; it says on screen when it waits."""
    if options.redis_url is None:
        return None
    from tcvpc.redis_limiter import RedisLimiterRegistry  # redis-py only when asked for

    try:
        return RedisLimiterRegistry(
            options.redis_url,
            rate=options.rate,
            on_wait=lambda event: err.print(str(event), highlight=False),
        )
    except QuotaBackendError as exc:
        raise _ConfigError(str(exc)) from None


def _make_client(options: CleanupOptions, limiters: RedisLimiterRegistry | None) -> VpcClient:
    try:
        client = VpcClient(
            options.credential,
            region=options.region,
            endpoint=options.endpoint,
            retry_policy=job_retry_policy(),
            rate=options.rate,
            limiters=limiters,
            timeout=options.timeout,
        )
    except CredentialsNotFoundError as exc:
        raise _ConfigError(str(exc)) from None
    except ValueError as exc:
        raise _ConfigError(str(exc)) from None
    if not (options.any_region or is_known_region(client.region)):
        raise _ConfigError(
            f"unknown region {client.region!r}; known regions: {', '.join(KNOWN_REGIONS)} "
            "(pass --any-region for a region newer than this list)"
        )
    return client


@contextlib.contextmanager
def _open_journal(options: CleanupOptions, err: Console) -> Iterator[Journal]:
    if options.dry_run and options.journal is None:
        with tempfile.TemporaryDirectory(prefix="tcvpc-dry-run-") as tmp:
            journal = Journal(Path(tmp) / "dry-run.journal.sqlite")
            try:
                yield journal
            finally:
                journal.close()
        return
    path = Path(options.journal) if options.journal else default_journal_path(_source_key(options))
    try:
        journal = Journal(path)
        journal.claim_source(options.source_id)
    except JournalError as exc:
        raise _ConfigError(str(exc)) from None
    if options.input == "-" and options.journal is None:
        err.print(f"journal: {path} (resume with --journal {path})", highlight=False)
    try:
        yield journal
    finally:
        journal.close()


def _source_key(options: CleanupOptions) -> str:
    return options.input if options.input is not None else options.source_id


async def _cleanup(options: CleanupOptions, out: Console, err: Console) -> int:
    # Everything that can fail without the network fails here, before any request.
    options.check()
    stream = open_input(options.input) if options.input is not None else None
    report: ReportFile | None = None
    limiters: RedisLimiterRegistry | None = None
    try:
        limiters = _make_limiters(options, err)
        client = _make_client(options, limiters)
        if limiters is not None:
            await _check_quota_backend(limiters)  # before anything is sent
        report = open_report(options.report) if options.report else None
        async with client:
            try:
                credential = await client.check_credentials()  # CVM/TKE need the network
            except CredentialsError as exc:
                raise _ConfigError(str(exc)) from None
            if limiters is not None:  # the default chain is a provider: name the fleet's account
                limiters.use_account(credential.secret_id)
            with _open_journal(options, err) as journal:
                status = await _with_journal(options, client, journal, stream, out, err)
                if report is not None:
                    n = report.write(journal)
                    err.print(f"report: {report.path} ({n} records)", highlight=False)
                return status
    finally:
        if report is not None:
            report.discard()  # a no-op once written
        if stream is not None and options.input != "-":
            stream.close()
        if limiters is not None:
            await limiters.aclose()


async def _check_quota_backend(limiters: RedisLimiterRegistry) -> None:
    """Redis reachable, the password right, really Redis: before anything is sent."""
    try:
        await limiters.check()
    except QuotaBackendError as exc:
        raise _ConfigError(str(exc)) from None


async def _with_journal(
    options: CleanupOptions,
    client: CleanupClient,
    journal: Journal,
    stream: BinaryIO | None,
    out: Console,
    err: Console,
) -> int:
    if journal.ingest_complete:
        err.print(f"resuming from journal {journal.path}", highlight=False)
    elif options.input is not None:
        assert stream is not None
        try:
            stats = await asyncio.to_thread(journal.ingest, _items_of(stream, options))
        except InputError as exc:
            raise _ConfigError(str(exc)) from None
        if stats.invalid:
            err.print(f"{stats.invalid} invalid input line(s): see the report", highlight=False)
    else:
        await _discover_into(options, client, journal, err)
        if not options.dry_run and not options.yes:
            pending = journal.counts()["pending"]
            if pending and not _confirm(pending):
                err.print("nothing deleted", highlight=False)
                return EXIT_FAILED

    if options.dry_run:
        return _dry_run(journal, out)
    if journal.total_tunnels() == 0:
        invalid = journal.counts()["invalid"]
        err.print(
            "nothing to do: the input names no tunnel"
            + (f" ({invalid} invalid line(s))" if invalid else ""),
            highlight=False,
        )
        return EXIT_FAILED if invalid else EXIT_OK

    config = EngineConfig(
        concurrency=options.concurrency, per_gateway=options.per_gateway, wait=options.wait
    )
    engine = CleanupEngine(client, journal, config)
    summary = await _run_engine(engine, out, err)
    out.print(summary_table(summary))
    return _exit_status(summary)


def _items_of(stream: BinaryIO, options: CleanupOptions) -> Iterator[SourceItem]:
    try:
        yield from read_items(stream, max_line_bytes=options.max_line_bytes)
    except OSError as exc:
        raise InputError(f"error while reading input: {exc.strerror or exc}") from None


async def _discover_into(
    options: CleanupOptions, client: CleanupClient, journal: Journal, err: Console
) -> None:
    batch: list[SourceItem] = []
    async for item in discover(
        client, gateways=options.gateways, vpcs=options.vpcs, name_prefix=options.name_prefix
    ):
        batch.append(item)
        if len(batch) >= _DISCOVERY_BATCH:
            journal.ingest_batch(batch)
            batch.clear()
    journal.ingest_batch(batch)
    journal.finish_ingest()
    err.print(f"discovered {journal.total_tunnels()} tunnel(s)", highlight=False)


def _confirm(pending: int) -> bool:
    if not sys.stdin.isatty():
        raise _ConfigError(
            f"refusing to delete {pending} discovered tunnel(s) without confirmation: "
            "pass --yes (or --dry-run to list them)"
        )
    return click.confirm(f"Delete {pending} tunnel(s)?", default=False)


def _dry_run(journal: Journal, out: Console) -> int:
    counts = journal.counts()
    invalid = 0
    for row in journal.rows():
        if row.outcome == "invalid":
            invalid += 1
            out.print(f"line {row.line}: invalid: {row.message}", highlight=False)
        elif row.outcome == "pending":
            out.print(f"would delete {row.gateway}/{row.connection}", highlight=False)
    out.print(
        f"dry run: {counts['pending']} tunnel(s) would be deleted, {invalid} invalid line(s), "
        f"{journal.duplicates()} duplicate(s); nothing was sent",
        highlight=False,
    )
    return EXIT_OK if invalid == 0 else EXIT_FAILED


async def _run_engine(engine: CleanupEngine, out: Console, err: Console) -> Summary:
    loop = asyncio.get_running_loop()
    current = asyncio.current_task()
    signals = (signal.SIGINT, signal.SIGTERM)

    def on_signal() -> None:
        if engine.stopping:
            if current is not None:
                current.cancel()  # second Ctrl-C: stop waiting for the calls on the wire
            return
        err.print(
            "stopping: letting calls in flight finish (Ctrl-C again to quit now)",
            highlight=False,
        )
        engine.stop()

    installed = []
    for signum in signals:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, on_signal)
            installed.append(signum)
    try:
        async with show_progress(engine, out):
            async for _ in engine.outcomes():
                pass
    except asyncio.CancelledError:
        pass  # the engine's cleanup (journal released) ran in its own finally
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
    return engine.summary()


def _exit_status(summary: Summary) -> int:
    if summary.fatal is not None:
        Console(stderr=True).print(
            f"[red]error:[/] the API refused the job's credentials or setup: {summary.fatal}",
            highlight=False,
        )
        return EXIT_CONFIG
    if summary.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_OK if summary.ok else EXIT_FAILED
