"""B4: scale. A large input file through the cleanup engine and its SQLite journal.

The network is taken out (the equivalent of lifting the API's rate limit): the engine drives an
in-process client whose deletes succeed at once, so what is measured is the job's own machinery:
streaming ingest, the journal as work queue, the scheduler. Each size runs in a fresh process
(``ru_maxrss`` is a high-water mark), which reports:

* peak RSS, and RSS after imports (the growth is what the input's size costs);
* ingest time and outcomes committed to the journal per second;
* resume: a run is killed (SIGKILL) once half the outcomes are journalled, then a new process
  opens the same journal; we report the time until its first new outcome is committed, the time
  to finish, and how many deletes went to tunnels the journal already had as deleted (must be 0).

    python -m benchmarks.b4_scale [--quick]
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click

from benchmarks.common import Report, peak_rss_mb, save_results

GOAL_RSS_MB = 150.0
GATEWAYS = 1000
PROGRESS_EVERY = 5000


@dataclass(frozen=True)
class Settings:
    sizes: tuple[int, ...]
    resume_size: int


QUICK = Settings(sizes=(10_000, 100_000), resume_size=10_000)
FULL = Settings(sizes=(10_000, 100_000, 1_000_000), resume_size=1_000_000)


def write_input(path: Path, lines: int) -> Path:
    per_gateway = -(-lines // GATEWAYS)
    with path.open("w") as out:
        out.write("VpnGatewayId,VpnConnectionId\n")
        for i in range(lines):
            out.write(f"vpngw-{i // per_gateway:08x},vpnx-{i:08x}\n")
    return path


# -- the worker (a child process) -------------------------------------------------------------


class InstantClient:
    """Deletes succeed at once; counts what was sent. No per-tunnel memory."""

    def __init__(self) -> None:
        self.sent = 0

    async def delete_vpn_connection(
        self,
        *,
        vpn_gateway_id: str,
        vpn_connection_id: str,
        missing_ok: bool = False,
        retry_policy: Any = None,
    ) -> Any:
        from tcvpc.models import DeleteOutcome, DeleteResult, TunnelRef

        self.sent += 1
        await asyncio.sleep(0)
        tunnel = TunnelRef(vpn_gateway_id, vpn_connection_id)
        return DeleteResult(tunnel, DeleteOutcome.DELETED, f"req-{self.sent}", 1)

    async def describe_vpn_connections(self, **_: Any) -> Any:
        return
        yield  # an async generator that lists nothing: every tunnel is gone


async def _drive(journal_path: Path, input_path: Path, t_start: float) -> dict[str, Any]:
    from tcvpc.cleanup.engine import CleanupEngine, EngineConfig
    from tcvpc.cleanup.journal import Journal
    from tcvpc.cleanup.sources import read_input

    rss_imports = peak_rss_mb()
    journal = Journal(journal_path)
    journal.claim_source(str(input_path))
    resumed = journal.ingest_complete
    deleted_before = journal.counts().get("deleted", 0)
    t0 = time.monotonic()
    if not resumed:
        await asyncio.to_thread(journal.ingest, read_input(input_path))
    ingest_seconds = time.monotonic() - t0
    client = InstantClient()
    engine = CleanupEngine(client, journal, EngineConfig(concurrency=32, watch=False))
    t1 = time.monotonic()
    first_outcome: float | None = None
    outcomes = 0
    async for _ in engine.outcomes():
        outcomes += 1
        if first_outcome is None:
            first_outcome = time.monotonic()
        if outcomes % PROGRESS_EVERY == 0:
            print(f"progress {outcomes} {client.sent}", flush=True)
    run_seconds = time.monotonic() - t1
    counts = journal.counts()
    journal.close()
    return {
        "resumed": resumed,
        "deleted_before": deleted_before,
        "rss_after_imports_mb": rss_imports,
        "peak_rss_mb": peak_rss_mb(),
        "ingest_seconds": ingest_seconds,
        "run_seconds": run_seconds,
        "outcomes": outcomes,
        "outcomes_per_second": outcomes / run_seconds if run_seconds > 0 else float("nan"),
        "deletes_sent": client.sent,
        "first_outcome_after_start_seconds": (first_outcome - t_start) if first_outcome else None,
        "journal_counts": counts,
        "journal_mb": journal_path.stat().st_size / 2**20,
    }


def worker(journal_path: Path, input_path: Path) -> None:
    t_start = time.monotonic()
    result = asyncio.run(_drive(journal_path, input_path, t_start))
    print("result " + json.dumps(result), flush=True)


# -- the parent -------------------------------------------------------------------------------


def _spawn(journal: Path, input_path: Path) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "benchmarks.b4_scale", "--worker", str(journal), str(input_path)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[1])


def _run_to_end(journal: Path, input_path: Path, timeout: float) -> dict[str, Any]:
    t0 = time.monotonic()
    proc = _spawn(journal, input_path)
    assert proc.stdout is not None
    result: dict[str, Any] = {}
    for line in proc.stdout:
        if line.startswith("result "):
            result = json.loads(line[7:])
        if time.monotonic() - t0 > timeout:
            proc.kill()
            break
    proc.wait(timeout=60)
    result["process_wall_seconds"] = time.monotonic() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"b4 worker failed with status {proc.returncode}")
    return result


def _run_and_kill_at(journal: Path, input_path: Path, at: int, timeout: float) -> dict[str, Any]:
    t0 = time.monotonic()
    proc = _spawn(journal, input_path)
    assert proc.stdout is not None
    done = sent = 0
    for line in proc.stdout:
        if line.startswith("progress "):
            done, sent = (int(x) for x in line.split()[1:3])
            if done >= at:
                os.kill(proc.pid, signal.SIGKILL)
                break
        if time.monotonic() - t0 > timeout:
            proc.kill()
            raise RuntimeError("b4: timed out before reaching the kill point")
    proc.wait(timeout=60)
    return {"outcomes_seen_before_kill": done, "deletes_sent_before_kill": sent}


@dataclass
class SizeResult:
    lines: int
    rss_after_imports_mb: float
    peak_rss_mb: float
    growth_mb: float
    ingest_seconds: float
    outcomes_per_second: float
    journal_mb: float
    all_deleted: bool


def run(quick: bool = False) -> Report:
    s = QUICK if quick else FULL
    sizes: list[SizeResult] = []
    with tempfile.TemporaryDirectory(prefix="tcvpc-b4-") as tmp:
        for n in s.sizes:
            input_path = write_input(Path(tmp) / f"in-{n}.csv", n)
            r = _run_to_end(Path(tmp) / f"j-{n}.sqlite", input_path, timeout=3600)
            counts = r["journal_counts"]
            sizes.append(
                SizeResult(
                    lines=n,
                    rss_after_imports_mb=r["rss_after_imports_mb"],
                    peak_rss_mb=r["peak_rss_mb"],
                    growth_mb=r["peak_rss_mb"] - r["rss_after_imports_mb"],
                    ingest_seconds=r["ingest_seconds"],
                    outcomes_per_second=r["outcomes_per_second"],
                    journal_mb=r["journal_mb"],
                    all_deleted=counts.get("deleted", 0) == n,
                )
            )
            print(
                f"  {n:>9,} lines: peak RSS {r['peak_rss_mb']:.1f} MB, "
                f"{r['outcomes_per_second']:.0f} outcomes/s",
                flush=True,
            )
        n = s.resume_size
        input_path = Path(tmp) / f"in-{n}.csv"
        if not input_path.exists():
            write_input(input_path, n)
        journal = Path(tmp) / f"resume-{n}.sqlite"
        killed = _run_and_kill_at(journal, input_path, n // 2, timeout=3600)
        resumed = _run_to_end(journal, input_path, timeout=3600)
    # Sent again = what the resumed run sent beyond the tunnels the journal still had to do.
    sent_again = resumed["deletes_sent"] - (n - resumed["deleted_before"])
    resume = {
        "lines": n,
        **killed,
        "resume_first_outcome_seconds": resumed["first_outcome_after_start_seconds"],
        "resume_process_wall_seconds": resumed["process_wall_seconds"],
        "resume_run_seconds": resumed["run_seconds"],
        "outcomes_after_resume": resumed["outcomes"],
        "deleted_in_journal": resumed["journal_counts"].get("deleted", 0),
        "deleted_in_journal_at_kill": resumed["deleted_before"],
        "deletes_sent_by_resume": resumed["deletes_sent"],
        "deletes_sent_again": sent_again,
    }
    return _report(s, quick, sizes, resume)


def _report(s: Settings, quick: bool, sizes: list[SizeResult], resume: dict[str, Any]) -> Report:
    report = Report("b4_scale", quick)
    peaks = [r.peak_rss_mb for r in sizes]
    flat = max(r.growth_mb for r in sizes) <= 2 * max(sizes[0].growth_mb, 10.0)
    report.add_table(
        "B4 scale: input lines through the cleanup engine and its SQLite journal, deletes "
        "answered at once in-process (no rate limit), a fresh process per size",
        [
            "lines",
            "peak RSS MB",
            "RSS after imports MB",
            "growth MB",
            "ingest s",
            "outcomes journalled /s",
            "journal MB",
            "all deleted",
            f"peak < {GOAL_RSS_MB:g} MB",
        ],
        [
            [
                r.lines,
                r.peak_rss_mb,
                r.rss_after_imports_mb,
                r.growth_mb,
                r.ingest_seconds,
                r.outcomes_per_second,
                r.journal_mb,
                r.all_deleted,
                r.peak_rss_mb < GOAL_RSS_MB,
            ]
            for r in sizes
        ],
    )
    resent = int(resume["deletes_sent_again"])
    report.add_table(
        f"B4 resume after SIGKILL at 50% ({resume['lines']:,} lines)",
        ["figure", "value"],
        [
            ["deleted in the journal at the kill", resume["deleted_in_journal_at_kill"]],
            [
                "resume: process start to first new outcome, s",
                resume["resume_first_outcome_seconds"],
            ],
            ["resume: whole process (imports to exit), s", resume["resume_process_wall_seconds"]],
            ["deleted in the journal at the end", resume["deleted_in_journal"]],
            ["deletes re-sent for tunnels the journal had as deleted", resent],
        ],
    )
    all_ok = all(r.all_deleted for r in sizes) and resume["deleted_in_journal"] == resume["lines"]
    report.add_table(
        "B4 goals",
        ["goal", "measured", "goal met"],
        [
            [
                f"peak RSS < {GOAL_RSS_MB:g} MB at every size",
                f"max {max(peaks):.1f} MB",
                max(peaks) < GOAL_RSS_MB,
            ],
            [
                "flat in input size (growth at the largest ≤ 2x growth at 10k, or ≤ 20 MB)",
                " / ".join(f"{r.growth_mb:.1f}" for r in sizes) + " MB",
                flat,
            ],
            ["every tunnel deleted, resume included", "yes" if all_ok else "no", all_ok],
            ["nothing known deleted is sent again after the kill", str(resent), resent == 0],
        ],
    )
    report.data = {"settings": asdict(s), "sizes": [asdict(r) for r in sizes], "resume": resume}
    return report


@click.command()
@click.option("--quick", is_flag=True, help="10k and 100k lines instead of up to 1M.")
@click.option("--worker", "worker_args", nargs=2, type=Path, hidden=True)
def main(quick: bool, worker_args: tuple[Path, Path] | None) -> None:
    """B4: memory, journal throughput and resume time at 10k / 100k / 1M lines."""
    if worker_args:
        worker(*worker_args)
        return
    save_results(run(quick=quick))


if __name__ == "__main__":
    main()
