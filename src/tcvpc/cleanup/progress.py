"""What the operator sees: a live bar on a terminal, log lines otherwise, a summary table.

Only the command uses this module; the engine knows nothing of terminals. The display polls
:meth:`CleanupEngine.progress` a few times per second instead of reacting to every outcome, so
its cost does not grow with the rate.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import IO

from rich.console import Console
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

__all__ = ["format_counts", "show_progress", "summary_table"]


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
        start_done: int | None = None

        async def refresh() -> None:
            nonlocal start_done
            while True:
                p = engine.progress()
                if start_done is None and p.total:
                    start_done = p.done
                rate = (p.done - (start_done or 0)) / p.elapsed if p.elapsed > 0 else 0.0
                bar.update(
                    task, total=p.total, completed=p.done, rate=rate, counts=format_counts(p)
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
            rate = p.done / p.elapsed if p.elapsed > 0 else 0.0
            out.write(
                f"cleanup: {p.done}/{p.total} ({pct:.1f}%) in {p.elapsed:.0f}s, "
                f"{rate:.1f}/s; {format_counts(p)}\n"
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
    """The end-of-run table (outcomes, requests, throttling, retries by code, timing)."""
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    c = summary.counts
    table.add_row("tunnels", str(summary.total))
    for key in ("deleted", "already_gone", "failed", "invalid", "pending"):
        if key in ("deleted", "already_gone") or c.get(key):
            table.add_row(f"  {key}", str(c.get(key, 0)))
    if summary.duplicates:
        table.add_row("duplicate lines (deleted once)", str(summary.duplicates))
    table.add_row("requests sent", str(summary.requests_sent))
    table.add_row("  of which describe (watching)", str(summary.describe_polls))
    table.add_row("throttled", str(summary.throttled))
    if summary.requeued:
        table.add_row("requeued (tunnel mid-task)", str(summary.requeued))
    for code, n in sorted(summary.retries_by_code.items(), key=lambda kv: -kv[1]):
        table.add_row(f"retries: {code}", str(n))
    table.add_row("elapsed", f"{summary.elapsed:.1f} s")
    table.add_row("effective rate", f"{summary.effective_rate:.1f} tunnels/s")
    if summary.interrupted:
        table.add_row("status", "[yellow]interrupted")
    if summary.fatal is not None:
        table.add_row("stopped by", f"[red]{summary.fatal}")
    return table
