"""What the operator sees: a live bar on a terminal, log lines otherwise, a summary table.

Only the command uses this module; the engine knows nothing of terminals. The display polls
:meth:`CleanupEngine.progress` a few times per second instead of reacting to every outcome, so
its cost does not grow with the rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator
from typing import IO

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from tcvpc.cleanup.engine import CleanupEngine, Summary
from tcvpc.cleanup.engine import Progress as EngineProgress
from tcvpc.errors import ApiError

__all__ = ["configure_logging", "format_counts", "show_progress", "summary_table"]


def configure_logging(verbosity: int) -> None:
    """Which of the library's log lines reach the terminal during a job.

    Every failure is in the summary and the report; the per-call lines (a watcher poll that
    failed, a tunnel requeued while it was busy) would bury the progress. So by default only
    errors show; ``-v`` adds each failed call and the library's warnings, ``-vv`` every retry.
    """
    level = {0: logging.ERROR, 1: logging.WARNING}.get(verbosity, logging.DEBUG)
    logger = logging.getLogger("tcvpc")
    logger.setLevel(level)
    if not logger.handlers:  # once per process: the demo and tests may call this again
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)


def format_counts(p: EngineProgress) -> str:
    c = p.counts
    parts = [
        f"deleted {c.get('deleted', 0)}",
        f"gone {c.get('already_gone', 0)}",
        f"failed {c.get('failed', 0)}",
    ]
    if c.get("invalid"):
        parts.append(f"invalid {c['invalid']}")
    parts.append(f"retries {p.retries}")
    if p.requeued:
        parts.append(f"requeued {p.requeued}")
    if p.throttled:
        parts.append(f"throttled {p.throttled}")
    return ", ".join(parts)


@contextlib.asynccontextmanager
async def show_progress(
    engine: CleanupEngine, console: Console, *, interval: float = 10.0
) -> AsyncIterator[None]:
    """Show the engine's progress while the body runs: a bar on a terminal, lines otherwise."""
    if console.is_terminal:
        async with _bar(engine, console):
            yield
    else:
        async with _lines(engine, console.file, interval):
            yield


@contextlib.asynccontextmanager
async def _bar(engine: CleanupEngine, console: Console) -> AsyncIterator[None]:
    columns = (
        TextColumn("[bold]cleanup"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]:>7.1f}/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[counts]}"),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("cleanup", total=None, rate=0.0, counts="")

        async def refresh() -> None:
            while True:
                p = engine.progress()
                bar.update(
                    task, total=p.total, completed=p.done, rate=p.rate, counts=format_counts(p)
                )
                await asyncio.sleep(0.2)

        updater = asyncio.create_task(refresh())
        try:
            yield
        finally:
            updater.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await updater
            p = engine.progress()
            bar.update(task, total=p.total, completed=p.done, counts=format_counts(p))


@contextlib.asynccontextmanager
async def _lines(engine: CleanupEngine, out: IO[str], interval: float) -> AsyncIterator[None]:
    async def log() -> None:
        while True:
            await asyncio.sleep(interval)
            p = engine.progress()
            pct = 100.0 * p.done / p.total if p.total else 100.0
            out.write(
                f"cleanup: {p.done}/{p.total} ({pct:.1f}%) of the job; this run: "
                f"{p.done_this_run} in {p.elapsed:.0f}s, {p.rate:.1f}/s; {format_counts(p)}\n"
            )
            out.flush()

    logger = asyncio.create_task(log())
    try:
        yield
    finally:
        logger.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await logger


def summary_table(summary: Summary, *, title: str = "tcvpc cleanup") -> Table:
    """The end-of-run table; every figure is documented once, in the README ("Display").

    Rows under "job" cover the whole journal (earlier runs too); rows under "this run" cover
    this process. Requests, throttled answers and retries are split by action, so the
    throttled count and the throttle retries can be compared line by line.
    """
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    c = summary.counts
    table.add_row("job: tunnels", str(summary.total))
    for key in ("deleted", "already_gone", "failed", "invalid", "pending"):
        if key in ("deleted", "already_gone") or c.get(key):
            table.add_row(f"  {key}", str(c.get(key, 0)))
    if summary.duplicates:
        table.add_row("  duplicate lines (deleted once)", str(summary.duplicates))
    table.add_row("this run: tunnels finished", str(summary.done_this_run))
    table.add_row("  requests sent", str(summary.requests_sent))
    for action, n in sorted(summary.requests_by_action.items()):
        table.add_row(f"    {action}", str(n))
    table.add_row("  throttled answers", str(summary.throttled))
    for action, n in sorted(summary.throttled_by_action.items()):
        table.add_row(f"    {action}", str(n))
    retries = sum(summary.retries_by_code.values())
    table.add_row("  retries", str(retries))
    by_action = summary.retries_by_action_code
    for (action, code), n in sorted(by_action.items(), key=lambda kv: (-kv[1], kv[0])):
        table.add_row(f"    {action} after {escape(code)}", str(n))
    if not by_action:  # a client that counts retries by code only
        for code, n in sorted(summary.retries_by_code.items(), key=lambda kv: -kv[1]):
            table.add_row(f"    after {escape(code)}", str(n))
    if summary.requeued:
        table.add_row("  requeued (tunnel mid-task)", str(summary.requeued))
    if summary.hedged:
        table.add_row("  hedged (answer overdue, seen deleting)", str(summary.hedged))
    table.add_row("  elapsed", f"{summary.elapsed:.1f} s")
    table.add_row("  rate", f"{summary.effective_rate:.1f} tunnels/s")
    if summary.interrupted:
        table.add_row("status", "[yellow]interrupted")
    if summary.fatal is not None:
        fatal = summary.fatal  # its code here; the whole message is printed below the table
        label = fatal.code if isinstance(fatal, ApiError) else type(fatal).__name__
        table.add_row("stopped by", f"[red]{escape(label)}")
    return table
