"""``tcvpc cleanup``: a thin click command over the cleanup library.

It parses flags, checks everything that can be checked before the first request (input file,
credentials, region, endpoint, journal, report), wires the client, journal, engine and display
together, and maps the result to the exit status:

* 0: every tunnel ended ``deleted`` or ``already_gone`` and no input line was invalid; also an
  input that names no tunnel at all (said on stderr: "nothing to do");
* 1: anything else (a tunnel failed, an invalid line, tunnels left pending);
* 2: usage or configuration errors: bad flags, a missing or unreadable input (``--input -`` with
  stdin closed or on ``/dev/null``), no credentials, a report path that cannot be written, a
  journal that belongs to another input or is held by another job, an input whose earlier lines
  changed or were removed since its journal took it in; credentials the API rejects (the job
  stops at the first ``AuthFailure`` instead of failing every tunnel), an API that cannot be
  reached (refused, DNS, TLS, a wrong endpoint: the tunnels stay pending); and a journal that
  fails mid-run (disk full, read-only, corrupted: what was committed is kept);
* 130: interrupted (Ctrl-C or SIGTERM), after the calls on the wire finished and the journal
  was flushed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import click
from rich.console import Console
from rich.markup import escape

from tcvpc.cleanup.engine import (
    CleanupEngine,
    EngineConfig,
    Summary,
    first_call_retry_policy,
    job_retry_policy,
)
from tcvpc.cleanup.journal import (
    InputChangedError,
    Journal,
    JournalError,
    default_journal_path,
    default_report_path,
)
from tcvpc.cleanup.progress import configure_logging, show_progress, summary_table
from tcvpc.cleanup.protocol import CleanupClient
from tcvpc.cleanup.report import ReportError, ReportFile, open_report
from tcvpc.cleanup.sources import (
    DEFAULT_MAX_LINE_BYTES,
    InputError,
    LineDigests,
    SourceItem,
    TunnelLine,
    discover,
    open_input,
    read_items,
)
from tcvpc.client import ENV_REGION, VpcClient
from tcvpc.credentials import Credential
from tcvpc.endpoint import InsecureEndpointError
from tcvpc.errors import (
    AuthError,
    CredentialsError,
    CredentialsNotFoundError,
    QuotaBackendError,
    ResponseError,
    TcvpcError,
    TransportError,
    UntrustedCertificateError,
)
from tcvpc.ratelimit import DEFAULT_RATE, Limiters
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
    default_report: bool = True
    """Without ``report``, write one beside the journal (the demo's journal is temporary)."""
    rate: float = DEFAULT_RATE
    concurrency: int = 32
    per_gateway: int = 1
    dry_run: bool = False
    wait: bool = False
    yes: bool = False
    any_region: bool = False
    allow_insecure: bool = False
    ca_bundle: str | None = None
    proxy: str | None = None
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


verbose_option = click.option(
    "--verbose",
    "-v",
    count=True,
    help="Show the library's log lines: -v each failed call and warning, -vv every retry.",
)
"""The log-verbosity flag of ``tcvpc cleanup`` and ``tcvpc demo`` (see ``configure_logging``)."""


@click.command("cleanup")
@click.option(
    "--input", "input_", metavar="FILE|-", help="CSV or JSON lines of tunnels; - is stdin."
)
@click.option(
    "--gateway", "gateways", multiple=True, metavar="ID", help="Discover on this gateway."
)
@click.option("--vpc", "vpcs", multiple=True, metavar="ID", help="Discover in this VPC.")
@click.option("--name-prefix", metavar="P", help="Discover tunnels whose name starts with P.")
@click.option(
    "--region",
    metavar="R",
    help="Region of lines without a Region column (default: TENCENTCLOUD_REGION).",
)
@click.option(
    "--endpoint",
    metavar="URL",
    envvar="TCVPC_ENDPOINT",
    help="API endpoint, e.g. the URL `tcvpc emulator` prints [env TCVPC_ENDPOINT; "
    "default: the public one].",
)
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
    help="Delete calls in flight at most, per region.",
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
    "--any-region",
    is_flag=True,
    help="Accept a region missing from tcvpc's list of regions (--region and Region column).",
)
@click.option(
    "--redis-url",
    envvar="TCVPC_REDIS_URL",
    metavar="URL",
    help="Share the account's rate with other jobs and services through this Redis "
    "(redis://, rediss://, unix://; env TCVPC_REDIS_URL).",
)
@click.option(
    "--allow-insecure",
    is_flag=True,
    help="Allow a plain http:// --endpoint that is not on this machine (signed, not encrypted).",
)
@click.option(
    "--ca-bundle",
    metavar="FILE",
    help="Trust the CAs in this PEM file for --endpoint (e.g. `tcvpc emulator --tls`'s CA).",
)
@click.option(
    "--proxy",
    metavar="URL",
    help="Send every request through this http(s) proxy (default: HTTPS_PROXY / NO_PROXY).",
)
@verbose_option
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
    allow_insecure: bool,
    ca_bundle: str | None,
    proxy: str | None,
    verbose: int,
) -> None:
    """Delete many VPN tunnels at the full allowed rate, crash-safe and resumable.

    Give the tunnels as a file (--input) or discover them (--gateway / --vpc / --name-prefix).
    Rerunning with the same journal resumes: nothing known done is sent again, lines
    appended to the input are taken in, and an input whose earlier lines changed is refused.
    """
    configure_logging(verbose)
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
        allow_insecure=allow_insecure,
        ca_bundle=ca_bundle,
        proxy=proxy or None,
    )
    sys.exit(run_cleanup(options))


def run_cleanup(options: CleanupOptions, *, console: Console | None = None) -> int:
    """Run the whole command; returns the exit status."""
    out = console or Console()
    err = Console(stderr=True, soft_wrap=True)  # messages stay whole lines (grep, logs)
    try:
        return asyncio.run(cleanup(options, out, err))
    except KeyboardInterrupt:
        _say(err, "interrupted")
        return EXIT_INTERRUPTED


async def cleanup(options: CleanupOptions, out: Console, err: Console) -> int:
    """The command inside a running loop (the demo runs it beside its emulator); exit status."""
    try:
        return await _cleanup(options, out, err)
    except (_ConfigError, InputError, JournalError, ReportError) as exc:
        _error(err, str(exc))
        return EXIT_CONFIG


def _error(err: Console, message: str) -> None:
    """Print an error line; the message is text, never markup (``[default]`` stays visible)."""
    err.print(f"[red]error:[/] {escape(message)}", highlight=False)


def _say(console: Console, message: str) -> None:
    """Print a plain line that may hold paths or server text: escaped, never markup."""
    console.print(escape(message), highlight=False)


def _make_limiters(options: CleanupOptions, err: Console) -> RedisLimiterRegistry | None:
    """The fleet's shared budget when --redis-url is given; it says on screen when it waits."""
    if options.redis_url is None:
        return None
    from tcvpc.redis_limiter import RedisLimiterRegistry  # redis-py only when asked for

    try:
        return RedisLimiterRegistry(
            options.redis_url,
            rate=options.rate,
            on_wait=lambda event: _say(err, str(event)),
        )
    except QuotaBackendError as exc:
        raise _ConfigError(str(exc)) from None


def _make_client(
    options: CleanupOptions, limiters: Limiters | None, region: str | None = None
) -> VpcClient:
    """The client of ``region`` (default: ``--region``, else ``TENCENTCLOUD_REGION``)."""
    # The library's ValueErrors name its own arguments (region=, allow_insecure=True); the
    # command checks the same things first and names its flags instead.
    region = (region or options.region or os.environ.get(ENV_REGION, "")).strip()
    if not region:
        raise _ConfigError(f"no region: pass --region or set {ENV_REGION}")
    try:
        client = VpcClient(
            options.credential,
            region=region,
            endpoint=options.endpoint,
            allow_insecure=options.allow_insecure,
            ca_bundle=options.ca_bundle,
            proxy=options.proxy,
            retry_policy=job_retry_policy(),
            rate=options.rate,
            limiters=limiters,
            timeout=options.timeout,
            # The engine takes each gateway's turns itself, on the watcher's evidence; the
            # client's lanes would hold a gateway the hedge freed until the stalled answer ends.
            gateway_lanes=False,
        )
    except CredentialsNotFoundError as exc:
        raise _ConfigError(str(exc)) from None
    except InsecureEndpointError as exc:
        raise _ConfigError(
            f"--endpoint {exc.endpoint!r} uses plain http to a host that is not this machine; "
            "use https, or pass --allow-insecure if you really mean it"
        ) from None
    except ValueError as exc:
        if options.ca_bundle is not None and options.ca_bundle in str(exc):
            raise _ConfigError(f"--ca-bundle: {exc}") from None
        if options.proxy is not None and str(exc).startswith("proxy"):
            raise _ConfigError(f"--proxy: {exc}") from None
        raise _ConfigError(f"--endpoint: {exc}" if "endpoint" in str(exc) else str(exc)) from None
    if not (options.any_region or is_known_region(client.region)):
        raise _ConfigError(
            f"unknown region {client.region!r}; known regions: {', '.join(KNOWN_REGIONS)} "
            "(pass --any-region for a region newer than this list)"
        )
    return client


def _journal_path(options: CleanupOptions) -> Path | None:
    """Where the job's journal goes; ``None``: a dry run without ``--journal`` (a temporary one)."""
    if options.journal:
        return Path(options.journal)
    if options.dry_run:
        return None
    return default_journal_path(_source_key(options))


@contextlib.contextmanager
def _open_journal(options: CleanupOptions, path: Path | None, err: Console) -> Iterator[Journal]:
    if path is None:
        with tempfile.TemporaryDirectory(prefix="tcvpc-dry-run-") as tmp:
            journal = Journal(Path(tmp) / "dry-run.journal.sqlite")
            try:
                yield journal
            finally:
                journal.close()
        return
    try:
        journal = Journal(path)
        journal.claim_source(options.source_id)
    except JournalError as exc:
        raise _ConfigError(str(exc)) from None
    if options.journal is None and (options.input is None or options.input == "-"):
        # A per-run name (stdin, discovery): say it, or the run could not be resumed.
        _say(err, f"journal: {path} (resume with --journal {path})")
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
        journal_path = _journal_path(options)
        async with client:
            try:
                credential = await client.check_credentials()  # CVM/TKE need the network
            except CredentialsError as exc:
                raise _ConfigError(str(exc)) from None
            if limiters is not None:  # the default chain is a provider: name the fleet's account
                limiters.use_account(credential.secret_id)
            with _open_journal(options, journal_path, err) as journal:
                journal.adopt_region(client.region)  # rows from before the Region column
                # Opened once the journal's lock is ours (a second job on the same journal must
                # not truncate the first one's report), and before any request to the API.
                if options.report:
                    report = open_report(options.report)
                elif journal_path is not None and options.default_report:  # beside the journal
                    report = open_report(default_report_path(journal_path))
                status = await _with_journal(options, client, journal, stream, out, err)
                if report is not None:
                    n = report.write(journal)
                    _say(err, f"report: {report.path} ({n} records)")
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
    client: VpcClient,
    journal: Journal,
    stream: BinaryIO | None,
    out: Console,
    err: Console,
) -> int:
    if options.input is not None:
        assert stream is not None
        digests = LineDigests()
        try:
            stats = await asyncio.to_thread(
                journal.ingest, _items_of(stream, options, digests, client.region), digests=digests
            )
        except InputError as exc:
            raise _ConfigError(str(exc)) from None
        except InputChangedError as exc:
            raise _ConfigError(
                f"{exc}. A rerun takes in lines appended to the input, nothing else. To start "
                f"afresh, pass --journal NEW (a new file), or delete {exc.journal} (and with "
                "it the record of what earlier runs did)"
            ) from None
        if stats.known_lines:
            _say(
                err,
                f"resuming from journal {journal.path}"
                + (f": {stats.new_lines} new line(s) taken in" if stats.new_lines else ""),
            )
    elif journal.ingest_complete:
        _say(err, f"resuming from journal {journal.path} (no new discovery)")
    else:
        await _discover_into(options, client, journal, err)
        if not options.dry_run and not options.yes:
            pending = journal.counts()["pending"]
            if pending and not _confirm(pending):
                _say(err, "nothing deleted")
                return EXIT_FAILED

    if options.dry_run:
        return _dry_run(journal, out)
    if journal.total_tunnels() == 0:
        invalid = journal.counts()["invalid"]
        _say(
            err,
            "nothing to do: the input names no tunnel"
            + (f" ({invalid} invalid line(s))" if invalid else ""),
        )
        print_reasons(journal, err)
        return EXIT_FAILED if invalid else EXIT_OK

    config = EngineConfig(
        concurrency=options.concurrency, per_gateway=options.per_gateway, wait=options.wait
    )
    async with _region_clients(options, client, journal) as clients:
        engine = CleanupEngine(client, journal, config, region_clients=clients)
        summary = await _run_engine(engine, out, err)
    out.print(summary_table(summary))
    with contextlib.suppress(JournalError):  # a broken journal has been said already
        print_reasons(journal, err)
    return _exit_status(summary, journal, err)


_SHOWN = 5


def print_reasons(journal: Journal, err: Console) -> None:
    """Why tunnels failed and which lines were invalid, on screen (bounded: the first few)."""
    for f in journal.failure_codes(_SHOWN):
        where = f"{f.tunnel.vpn_gateway_id}/{f.tunnel.vpn_connection_id}, " if f.tunnel else ""
        example = f"{where}{f.message or 'no message'}"
        _say(err, f"failed: {f.count} x {f.code}, e.g. line {f.line} ({example})")
    invalid = journal.counts()["invalid"]
    if invalid:
        shown = journal.invalid_lines(_SHOWN)
        more = f" (and {invalid - len(shown)} more)" if invalid > len(shown) else ""
        _say(err, f"invalid: {invalid} input line(s){more}:")
        for line, reason in shown:
            _say(err, f"  line {line}: {reason}")


@contextlib.asynccontextmanager
async def _region_clients(
    options: CleanupOptions, client: VpcClient, journal: Journal
) -> AsyncIterator[dict[str, CleanupClient]]:
    """A client for each region of the journal (``client`` for its own), closed after.

    They share ``client``'s limiters (the process's, or the fleet's Redis budget), whose
    budgets are per region: each region runs at its own full rate.
    """
    clients: dict[str, CleanupClient] = {client.region: client}
    async with contextlib.AsyncExitStack() as stack:
        for region in journal.regions():
            if region is not None and region not in clients:
                other = _make_client(options, client.limiters, region)
                clients[region] = await stack.enter_async_context(other)
        yield clients


def _items_of(
    stream: BinaryIO, options: CleanupOptions, digests: LineDigests, region: str
) -> Iterator[SourceItem]:
    """The input's items; a line without a ``Region`` gets the job's ``region``."""
    try:
        for item in read_items(
            stream,
            max_line_bytes=options.max_line_bytes,
            digests=digests,
            any_region=options.any_region,
        ):
            if isinstance(item, TunnelLine) and item.region is None:
                item = dataclasses.replace(item, region=region)
            yield item
    except OSError as exc:
        raise InputError(f"error while reading input: {exc.strerror or exc}") from None


async def _discover_into(
    options: CleanupOptions, client: VpcClient, journal: Journal, err: Console
) -> None:
    batch: list[SourceItem] = []
    items = discover(
        client,
        gateways=options.gateways,
        vpcs=options.vpcs,
        name_prefix=options.name_prefix,
        retry_policy=first_call_retry_policy(),  # the job's first requests: fail fast
    )
    try:
        async for item in items:
            if isinstance(item, TunnelLine):
                item = dataclasses.replace(item, region=client.region)
            batch.append(item)
            if len(batch) >= _DISCOVERY_BATCH:
                journal.ingest_batch(batch)
                batch.clear()
    except TcvpcError as exc:  # nothing was deleted: say why discovery stopped, exit 2
        raise _ConfigError(_discovery_failure(exc)) from None
    journal.ingest_batch(batch)
    journal.finish_ingest()
    _say(err, f"discovered {journal.total_tunnels()} tunnel(s)")


def _discovery_failure(exc: TcvpcError) -> str:
    if isinstance(exc, UntrustedCertificateError):
        return (
            f"discovery cannot reach the API: the TLS certificate of {exc.host}:{exc.port} is "
            f"not trusted ({exc.reason}); if it is signed by your own CA, pass --ca-bundle FILE "
            "(or set SSL_CERT_FILE). Nothing was deleted"
        )
    if isinstance(exc, (TransportError, ResponseError)):
        return (
            f"discovery cannot reach the API: {exc}. Check --endpoint (https or http, host, "
            "port) and the network. Nothing was deleted"
        )
    if isinstance(exc, AuthError):
        return f"the API refused the job's credentials: {exc}. Nothing was deleted"
    return f"discovery failed: {exc}. Nothing was deleted"


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
            _say(out, f"line {row.line}: invalid: {row.message}")
        elif row.outcome == "pending":
            where = f" in {row.region}" if row.region else ""
            _say(out, f"would delete {row.gateway}/{row.connection}{where}")
    _say(
        out,
        f"dry run: {counts['pending']} tunnel(s) would be deleted, {invalid} invalid line(s), "
        f"{journal.duplicates()} duplicate(s); nothing was sent",
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
        _say(err, "stopping: letting calls in flight finish (Ctrl-C again to quit now)")
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


def _exit_status(summary: Summary, journal: Journal, err: Console) -> int:
    fatal = summary.fatal
    if fatal is not None:
        left = summary.counts.get("pending", 0)
        if isinstance(fatal, UntrustedCertificateError):
            _error(
                err,
                f"cannot reach the API, so the job stopped: the TLS certificate of "
                f"{fatal.host}:{fatal.port} is not trusted ({fatal.reason}). If it is signed by "
                "your own CA, pass --ca-bundle FILE (or set SSL_CERT_FILE). Nothing was marked "
                f"failed; {left} tunnel(s) stay pending: rerun with --journal {journal.path} to "
                "resume",
            )
        elif isinstance(fatal, (TransportError, ResponseError)):
            _error(
                err,
                f"cannot reach the API, so the job stopped: {fatal}. Check --endpoint (https "
                "or http, host, port) and the network. Nothing was marked failed; "
                f"{left} tunnel(s) stay pending: rerun with --journal {journal.path} to resume",
            )
        elif isinstance(fatal, AuthError):
            _error(err, f"the API refused the job's credentials: {fatal}")
        else:
            _error(err, f"the API refused the job's setup: {fatal}")
        return EXIT_CONFIG
    if summary.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_OK if summary.ok else EXIT_FAILED
