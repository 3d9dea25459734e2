"""Shared benchmark plumbing: the emulator process, the OS's CPU clock, machine info, tables, JSON.

Every figure the benchmarks report is a ratio or a count measured side by side in one run (the
machine they run on may be shared and noisy); this module only measures and formats, it never
adjusts a figure.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import hashlib
import hmac
import json
import os
import platform
import resource
import select
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from tcvpc.emulator import DEMO_REGION, DEMO_SECRET_ID, DEMO_SECRET_KEY

__all__ = [
    "DEMO_REGION",
    "DEMO_SECRET_ID",
    "DEMO_SECRET_KEY",
    "RESULTS",
    "EmulatorProcess",
    "cpu_seconds",
    "fmt",
    "machine_info",
    "markdown_table",
    "median",
    "peak_rss_mb",
    "save_results",
    "sign_request",
    "start_emulator",
    "tunnel_ids",
    "write_seed_csv",
]

RESULTS = Path(__file__).parent / "results"
PACKAGES = (
    "tcvpc",
    "aiohttp",
    "aiolimiter",
    "tenacity",
    "httpx",
    "requests",
    "tencentcloud-sdk-python-common",
    "tencentcloud-sdk-python-vpc",
    "matplotlib",
)


# -- clocks ------------------------------------------------------------------------------------


def cpu_seconds() -> float:
    """User + system CPU time of this process (all its threads), as the OS accounts it."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    """This process's peak resident set size in MiB.

    ``VmHWM`` from ``/proc/self/status`` where there is one: Linux carries ``ru_maxrss`` over
    ``fork``+``exec``, so a child of a big parent would report the parent's peak.
    """
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


# -- IDs and the emulator ----------------------------------------------------------------------


def tunnel_ids(gateways: int, per_gateway: int, *, offset: int = 0) -> list[tuple[str, str]]:
    """Deterministic, real-looking ``(vpngw-…, vpnx-…)`` pairs: 8 lowercase hex digits each."""
    return [
        (f"vpngw-{g:08x}", f"vpnx-{offset + g * per_gateway + t:08x}")
        for g in range(gateways)
        for t in range(per_gateway)
    ]


def write_seed_csv(path: Path, tunnels: Sequence[tuple[str, str]]) -> Path:
    """The emulator's ``--seed-file`` format (also ``tcvpc cleanup``'s input format)."""
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["VpnGatewayId", "VpnConnectionId"])
        writer.writerows(tunnels)
    return path


def _tcvpc_command() -> list[str]:
    """The ``tcvpc`` console script of this interpreter (falls back to its entry point)."""
    script = Path(sys.executable).parent / "tcvpc"
    if script.exists():
        return [str(script)]
    found = shutil.which("tcvpc")
    if found:
        return [found]
    return [sys.executable, "-c", "from tcvpc.cli import main; main()"]


def tcvpc_command(*args: str, max_seconds: float) -> list[str]:
    """``tcvpc ARGS`` bounded by coreutils ``timeout`` (so nothing outlives a crashed benchmark)."""
    prefix: list[str] = []
    if shutil.which("timeout"):
        prefix = ["timeout", "--kill-after=5", f"{max_seconds:.0f}"]
    return [*prefix, *_tcvpc_command(), *args]


@dataclass
class EmulatorProcess:
    """A running ``tcvpc emulator`` in its own process."""

    proc: subprocess.Popen[str]
    url: str
    args: list[str]
    log: Path

    @property
    def host(self) -> str:
        return self.url.removeprefix("http://")

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + "/_emulator/stats", timeout=10) as resp:
            data: dict[str, Any] = json.loads(resp.read())
        return data


def _read_first_line(proc: subprocess.Popen[str], deadline: float) -> str:
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.1)
        if ready:
            return proc.stdout.readline().strip()
        if proc.poll() is not None:
            break
    return ""


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@contextlib.contextmanager
def start_emulator(
    *,
    seed_file: Path | None = None,
    gateways: int = 1,
    tunnels_per_gateway: int = 1,
    rate_limit: float = 0,
    delete_seconds: float = 0.0,
    mutex_seconds: float = 0.0,
    fault_rate: float = 0.0,
    stall_seconds: float | None = None,
    seed: int = 1,
    max_seconds: float = 900,
    extra_args: Sequence[str] = (),
) -> Iterator[EmulatorProcess]:
    """Start ``tcvpc emulator`` (bounded by ``max_seconds``), yield it, always stop it."""
    args = [
        "emulator",
        "--port",
        "0",
        "--rate-limit",
        f"{rate_limit:g}",
        "--delete-seconds",
        f"{delete_seconds:g}",
        "--mutex-seconds",
        f"{mutex_seconds:g}",
        "--fault-rate",
        f"{fault_rate:g}",
        "--seed",
        str(seed),
    ]
    if seed_file is not None:
        args += ["--seed-file", str(seed_file)]
    else:
        args += ["--gateways", str(gateways), "--tunnels-per-gateway", str(tunnels_per_gateway)]
    if stall_seconds is not None:
        args += ["--stall-seconds", f"{stall_seconds:g}"]
    args += extra_args
    log = Path(tempfile.mkstemp(prefix="tcvpc-emulator-", suffix=".log")[1])
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENCENTCLOUD_")}
    with log.open("w") as err:
        proc = subprocess.Popen(
            tcvpc_command(*args, max_seconds=max_seconds),
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env=env,
        )
    try:
        url = _read_first_line(proc, time.monotonic() + 60)
        if not url.startswith("http://"):
            raise RuntimeError(f"emulator did not start: {log.read_text()[-2000:]}")
        yield EmulatorProcess(proc, url, args, log)
    finally:
        _stop(proc)
        log.unlink(missing_ok=True)


# -- the floor's signer (written from docs/api.md, independent of tcvpc.signing) ----------------


def sign_request(
    *,
    host: str,
    action: str,
    body: bytes,
    timestamp: int,
    secret_id: str = DEMO_SECRET_ID,
    secret_key: str = DEMO_SECRET_KEY,
    region: str = DEMO_REGION,
) -> dict[str, str]:
    """Headers for a TC3-HMAC-SHA256 signed ``POST /`` (content-type and host signed)."""
    content_type = "application/json"
    date = dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%d")
    canonical = (
        f"POST\n/\n\ncontent-type:{content_type}\nhost:{host}\n\ncontent-type;host\n"
        + hashlib.sha256(body).hexdigest()
    )
    scope = f"{date}/vpc/tc3_request"
    to_sign = (
        f"TC3-HMAC-SHA256\n{timestamp}\n{scope}\n" + hashlib.sha256(canonical.encode()).hexdigest()
    )
    key = hmac.new(("TC3" + secret_key).encode(), date.encode(), "sha256").digest()
    key = hmac.new(key, b"vpc", "sha256").digest()
    key = hmac.new(key, b"tc3_request", "sha256").digest()
    signature = hmac.new(key, to_sign.encode(), "sha256").hexdigest()
    return {
        "Content-Type": content_type,
        "Host": host,
        "X-TC-Action": action,
        "X-TC-Version": "2017-03-12",
        "X-TC-Timestamp": str(timestamp),
        "X-TC-Region": region,
        "Authorization": (
            f"TC3-HMAC-SHA256 Credential={secret_id}/{scope}, "
            f"SignedHeaders=content-type;host, Signature={signature}"
        ),
    }


# -- machine info, tables, JSON ----------------------------------------------------------------


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def machine_info() -> dict[str, Any]:
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "packages": {p: _version(p) for p in PACKAGES},
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": shlex.join(getattr(sys, "orig_argv", sys.argv)),
    }


def fmt(value: object, digits: int = 2) -> str:
    if isinstance(value, bool):
        return "yes" if value else "**NO**"
    if isinstance(value, float):
        if value != value:  # NaN
            return "n/a"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(fmt(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


@dataclass
class Report:
    """What one benchmark hands back: tables to print and the JSON document to save."""

    name: str
    quick: bool
    tables: list[tuple[str, str]] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def add_table(
        self, title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]
    ) -> None:
        self.tables.append((title, markdown_table(headers, rows)))

    def markdown(self) -> str:
        parts = [f"### {title}\n\n{table}\n" for title, table in self.tables]
        return "\n".join(parts)


def save_results(report: Report) -> Path:
    """Print the tables and write ``results/<name>[-quick].{json,md}``; return the JSON path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = report.name + ("-quick" if report.quick else "")
    machine = machine_info()
    doc = {"benchmark": report.name, "quick": report.quick, "machine": machine, **report.data}
    doc["tables"] = {title: table for title, table in report.tables}
    path = RESULTS / f"{stem}.json"
    path.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n")
    header = (
        f"_{machine['cpu_model']}, {machine['cores']} cores, Python {machine['python']}, "
        f"{machine['date']}; `{machine['command']}`_\n\n"
    )
    (RESULTS / f"{stem}.md").write_text(header + report.markdown())
    print(report.markdown())
    print(f"saved {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    return path
