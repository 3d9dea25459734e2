"""B5: a fleet of 4 ``tcvpc cleanup`` processes sharing one account's quota through one Redis.

One emulator (its own process, 100 requests per sliding second per action, counted on arrival)
and, per scenario, 4 ``tcvpc cleanup`` processes each with its own input file (whole gateways,
so two jobs never meet on one gateway's mutex), journal and report:

* ``redis``: all four with ``--redis-url`` to one ``redis-server`` (fresh, on a free loopback
  port, nothing on disk);
* ``redis, killed + restarted``: the same, with Redis SIGKILLed once a third of the deletes are
  done and restarted ``outage`` seconds later (empty: it kept nothing);
* ``no redis (today)``: the four with their own local limiters, what users get without it;
* ``1 process, all tunnels, local limiter``: the control, what one job sustains on this machine
  in the same run (the machine is shared: its load moves every figure; this one shows how much).

Everything is counted by the **server**: the emulator's exact max in any sliding second, its
answers by code (a delete answered ``OK`` twice would need two tunnels: ``OK`` = tunnels and no
``ResourceNotFound`` means none was deleted twice), and a timeline polled from its counters every
100 ms (requests arrived in the last second; the exact max is the emulator's own figure). The
sustained rate is measured between 5% and 95% of the deletes (process start and the last
stragglers excluded), on the emulator's clock (``uptime_seconds``).

    python -m benchmarks.b5_fleet [--quick]
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import click

from benchmarks.common import (
    DEMO_REGION,
    DEMO_SECRET_ID,
    DEMO_SECRET_KEY,
    RESULTS,
    EmulatorProcess,
    Report,
    save_results,
    start_emulator,
    tcvpc_command,
    tunnel_ids,
    write_seed_csv,
)

ACTION = "DeleteVpnConnection"
WORKERS = 4
SERVER_LIMIT = 100
GOAL_RATE = 98.5
POLL = 0.1


@dataclass(frozen=True)
class Settings:
    per_worker: int
    gateways_per_worker: int
    delete_seconds: float
    outage: float


QUICK = Settings(per_worker=300, gateways_per_worker=60, delete_seconds=0.2, outage=3.0)
FULL = Settings(per_worker=1500, gateways_per_worker=150, delete_seconds=0.5, outage=5.0)


# -- redis-server ------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisProcess:
    """A ``redis-server`` on a free loopback port, nothing on disk; kill and restart on one port."""

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise click.ClickException("B5 needs redis-server (apt-get install redis-server)")
        self.binary = binary
        self.directory = directory
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--dir", str(self.directory)]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
            ):
                return
            time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None


@contextlib.contextmanager
def redis_server(directory: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(directory)
    server.start()
    try:
        yield server
    finally:
        server.kill()


# -- polling the server's counters -------------------------------------------------------------


@dataclass
class Poller:
    """Samples ``(emulator uptime, requests, OK answers)`` every ``POLL`` seconds in a thread."""

    emu: EmulatorProcess
    samples: list[tuple[float, int, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def sample(self) -> tuple[float, int, int]:
        stats = self.emu.stats()
        codes = stats["requests"].get(ACTION, {})
        point = (float(stats["uptime_seconds"]), sum(codes.values()), int(codes.get("OK", 0)))
        self.samples.append(point)
        return point

    def _run(self) -> None:
        while not self._stop.wait(POLL):
            with contextlib.suppress(OSError):
                self.sample()

    @contextlib.contextmanager
    def running(self) -> Iterator[Poller]:
        thread = threading.Thread(target=self._run, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join()

    def wait_for_ok(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.samples and self.samples[-1][2] >= count:
                return
            time.sleep(POLL / 2)


def _crossing(samples: Sequence[tuple[float, int, int]], count: float) -> float:
    """Server time at which ``count`` requests had arrived (linear between samples)."""
    for (t0, n0, _), (t1, n1, _) in itertools.pairwise(samples):
        if n0 < count <= n1:
            return t0 + (t1 - t0) * (count - n0) / (n1 - n0)
    return float("nan")


# -- one scenario ------------------------------------------------------------------------------


@dataclass
class ScenarioResult:
    scenario: str
    tunnels: int
    exit_codes: list[int]
    reported_deleted: int
    report_records: int
    server_ok: int
    server_answers: dict[str, int]
    server_max_per_sliding_second: int
    server_throttled: int
    sustained_rate: float
    """Requests per second at the server between 5% and 95% of the run's requests."""
    wall_seconds: float
    redis_waits_said: int
    tunnels_left: int
    outage_seconds: float | None
    outage_window: tuple[float, float] | None
    """When Redis was down, on the timeline's clock."""
    timeline: list[tuple[float, int, int]]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TENCENTCLOUD_", "TCVPC_"))}
    env.update(
        TENCENTCLOUD_SECRET_ID=DEMO_SECRET_ID,
        TENCENTCLOUD_SECRET_KEY=DEMO_SECRET_KEY,
        TENCENTCLOUD_REGION=DEMO_REGION,
    )
    return env


def _split(tunnels: Sequence[tuple[str, str]], tmp: Path, workers: int) -> list[Path]:
    size = -(-len(tunnels) // workers)
    paths = []
    for i in range(workers):
        path = tmp / f"worker{i}.csv"
        write_seed_csv(path, tunnels[i * size : (i + 1) * size])
        paths.append(path)
    return paths


def run_scenario(
    name: str, s: Settings, tmp: Path, *, redis: bool, kill: bool, workers: int = WORKERS
) -> ScenarioResult:
    work = tmp / name.replace(" ", "_").replace(",", "").replace("+", "and")
    work.mkdir()
    tunnels = tunnel_ids(WORKERS * s.gateways_per_worker, s.per_worker // s.gateways_per_worker)
    seed = write_seed_csv(work / "seed.csv", tunnels)
    inputs = _split(tunnels, work, workers)
    outage: float | None = None
    window: tuple[float, float] | None = None
    with contextlib.ExitStack() as stack:
        emu = stack.enter_context(
            start_emulator(
                seed_file=seed,
                rate_limit=SERVER_LIMIT,
                delete_seconds=s.delete_seconds,
                max_seconds=900,
            )
        )
        server = stack.enter_context(redis_server(work)) if redis else None
        poller = stack.enter_context(Poller(emu).running())
        t0 = time.monotonic()
        procs = []
        for i, path in enumerate(inputs):
            args = ["cleanup", "--input", str(path), "--endpoint", emu.url]
            args += ["--journal", str(work / f"w{i}.sqlite"), "--report", str(work / f"w{i}.jsonl")]
            if server is not None:
                args += ["--redis-url", server.url]
            err = (work / f"w{i}.err").open("w")
            procs.append(
                subprocess.Popen(
                    tcvpc_command(*args, max_seconds=900),
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                    env=_env(),
                )
            )
            err.close()
        if kill and server is not None:
            poller.wait_for_ok(len(tunnels) // 3, timeout=300)
            down = time.monotonic()
            server.kill()
            killed_at = poller.sample()[0]
            time.sleep(s.outage)
            server.start()
            window = (killed_at, poller.sample()[0])
            outage = time.monotonic() - down
        codes = [p.wait(timeout=900) for p in procs]
        wall = time.monotonic() - t0
        time.sleep(s.delete_seconds + 0.5)  # the last deletes finish; then count what is left
        poller.sample()
        stats = emu.stats()
    answers: dict[str, int] = stats["requests"].get(ACTION, {})
    records = [
        json.loads(line)
        for i in range(workers)
        for line in (work / f"w{i}.jsonl").read_text().splitlines()
    ]
    said = sum(
        " ".join((work / f"w{i}.err").read_text().split()).count("unreachable")
        for i in range(workers)
    )
    samples = sorted(poller.samples)  # the main thread samples too (kill, restart)
    total = samples[-1][1] if samples else 0
    t5, t95 = _crossing(samples, 0.05 * total), _crossing(samples, 0.95 * total)
    first = samples[0][0] if samples else 0.0
    return ScenarioResult(
        scenario=name,
        tunnels=len(tunnels),
        exit_codes=codes,
        reported_deleted=sum(1 for r in records if r["outcome"] == "deleted"),
        report_records=len(records),
        server_ok=int(answers.get("OK", 0)),
        server_answers=dict(answers),
        server_max_per_sliding_second=int(stats["max_requests_per_second"]["by_action"][ACTION]),
        server_throttled=int(answers.get("RequestLimitExceeded", 0)),
        sustained_rate=(0.9 * total) / (t95 - t5) if t95 > t5 else float("nan"),
        wall_seconds=wall,
        redis_waits_said=said,
        tunnels_left=int(stats["tunnels"].get("total", -1)),
        outage_seconds=outage,
        outage_window=None if window is None else (window[0] - first, window[1] - first),
        timeline=[(round(t - first, 3), n, ok) for t, n, ok in samples],
    )


# -- the picture -------------------------------------------------------------------------------


def draw(results: Sequence[ScenarioResult], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[bench]'): no PNG drawn")
        return False
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True)
    for r in results:
        xs = [t for t, _, _ in r.timeline]
        counts = [n for _, n, _ in r.timeline]
        # Requests per second over the last second at each sample (server counters).
        rates, j = [], 0
        for i, t in enumerate(xs):
            while xs[j + 1] <= t - 1.0:
                j += 1
            rates.append((counts[i] - counts[j]) / (t - xs[j]) if t > xs[j] else 0.0)
        (line,) = top.plot(xs, rates, label=r.scenario, linewidth=1)
        if r.outage_window is not None:
            for ax in (top, bottom):
                ax.axvspan(*r.outage_window, color=line.get_color(), alpha=0.12)
        bottom.plot(xs, [ok for _, _, ok in r.timeline], label=r.scenario, linewidth=1)
    top.axhline(SERVER_LIMIT, color="red", linestyle="--", linewidth=1, label="server limit")
    top.set_ylabel("delete requests per second\n(server, over the last 1 s)")
    top.set_title(f"B5: {WORKERS} tcvpc cleanup processes, one account, one emulator")
    top.legend(fontsize=8)
    bottom.set_ylabel("deletes answered OK (cumulative)")
    bottom.set_xlabel("seconds (emulator clock, counters polled every 100 ms; shaded: Redis down)")
    bottom.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# -- the report --------------------------------------------------------------------------------

SCENARIOS = (
    ("redis", True, False, WORKERS),
    ("redis, killed + restarted", True, True, WORKERS),
    ("no redis (today)", False, False, WORKERS),
    # The control: what one process with its local limiter sustains on this machine, right now.
    ("1 process, all tunnels, local limiter", False, False, 1),
)


def run(quick: bool = False) -> Report:
    s = QUICK if quick else FULL
    results = []
    with tempfile.TemporaryDirectory(prefix="tcvpc-b5-") as tmp:
        for name, redis, kill, workers in SCENARIOS:
            r = run_scenario(name, s, Path(tmp), redis=redis, kill=kill, workers=workers)
            results.append(r)
            print(
                f"  {name:28} max/s={r.server_max_per_sliding_second} "
                f"throttled={r.server_throttled} ok={r.server_ok}/{r.tunnels} "
                f"rate={r.sustained_rate:.1f}/s exit={r.exit_codes}",
                flush=True,
            )
    report = Report("b5_fleet", quick)
    report.add_table(
        f"B5 fleet: {WORKERS} `tcvpc cleanup` processes x {s.per_worker:,} tunnels (the control: "
        f"one process with all {WORKERS * s.per_worker:,}), one emulator "
        f"(limit {SERVER_LIMIT} per sliding second), delete time {s.delete_seconds:g} s",
        [
            "scenario",
            "max in any sliding second (server)",
            "RequestLimitExceeded (server)",
            "sustained rate /s (server, 5-95%)",
            "wall s",
            "deleted OK (server)",
            "other answers (server)",
            "reports: deleted / records",
            "exit codes",
            "tunnels left",
        ],
        [
            [
                r.scenario,
                r.server_max_per_sliding_second,
                r.server_throttled,
                r.sustained_rate,
                r.wall_seconds,
                f"{r.server_ok}/{r.tunnels}",
                ", ".join(f"{k} {v}" for k, v in r.server_answers.items() if k != "OK") or "none",
                f"{r.reported_deleted}/{r.report_records}",
                " ".join(map(str, r.exit_codes)),
                r.tunnels_left,
            ]
            for r in results
        ],
    )
    shared, killed, _today, single = results
    report.add_table(
        "B5 goals",
        ["goal", "measured", "goal met"],
        [
            [
                f"redis: ≤ {SERVER_LIMIT} in any sliding second (server)",
                str(shared.server_max_per_sliding_second),
                shared.server_max_per_sliding_second <= SERVER_LIMIT,
            ],
            [
                f"redis: together ≥ {GOAL_RATE:g}/s",
                f"{shared.sustained_rate:.2f}/s",
                shared.sustained_rate >= GOAL_RATE,
            ],
            ["redis: zero throttled", str(shared.server_throttled), shared.server_throttled == 0],
            [
                "redis: rate as one process with the local limiter, same run (control)",
                f"{shared.sustained_rate:.2f}/s vs {single.sustained_rate:.2f}/s",
                shared.sustained_rate >= 0.99 * single.sustained_rate,
            ],
            [
                f"killed + restarted (down {killed.outage_seconds or 0:.1f} s): every tunnel "
                "deleted once, reports complete",
                f"OK {killed.server_ok}/{killed.tunnels}, reported "
                f"{killed.reported_deleted}/{killed.report_records}, left {killed.tunnels_left}",
                killed.server_ok == killed.tunnels
                and killed.reported_deleted == killed.tunnels
                and set(killed.server_answers) == {"OK"}
                and killed.tunnels_left == 0,
            ],
            [
                "killed + restarted: the jobs said they waited for Redis",
                f"{killed.redis_waits_said} message(s)",
                killed.redis_waits_said > 0,
            ],
            [
                f"killed + restarted: ≤ {SERVER_LIMIT} in any sliding second",
                str(killed.server_max_per_sliding_second),
                killed.server_max_per_sliding_second <= SERVER_LIMIT,
            ],
        ],
    )
    png = RESULTS / ("b5_timeline" + ("-quick" if quick else "") + ".png")
    RESULTS.mkdir(parents=True, exist_ok=True)
    drawn = draw(results, png)
    report.data = {
        "settings": asdict(s),
        "sources": {
            "server": "max in any sliding second, answers by code, tunnels left: "
            "GET /_emulator/stats of one emulator per scenario",
            "timeline": "the emulator's request counters polled every 100 ms",
            "reports": "each process's --report (JSON lines)",
        },
        "timeline_png": png.name if drawn else None,
        "results": [asdict(r) for r in results],
    }
    return report


@click.command()
@click.option("--quick", is_flag=True, help="Short version (fewer tunnels).")
def main(quick: bool) -> None:
    """B5: 4 cleanup processes sharing one Redis quota, against one emulator."""
    save_results(run(quick=quick))


if __name__ == "__main__":
    main()
