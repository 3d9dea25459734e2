"""The commands end to end: the emulator over real loopback HTTP, the CLI in a subprocess."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

import tcvpc
from tcvpc import Credential
from tcvpc.cleanup.command import CleanupOptions, cleanup, cleanup_command
from tcvpc.cleanup.demo import demo_command
from tcvpc.cleanup.journal import Journal, JournalError
from tcvpc.emulator import (
    DEMO_REGION,
    DEMO_SECRET_ID,
    DEMO_SECRET_KEY,
    Emulator,
    EmulatorConfig,
    FaultConfig,
)

SRC = str(Path(tcvpc.__file__).resolve().parents[1])
CLI = (
    "import sys; from tcvpc.cleanup.command import cleanup_command; "
    "cleanup_command(sys.argv[1:], prog_name='tcvpc cleanup')"
)


def cli_env(
    tmp_path: Path,
    *,
    secret_key: str = DEMO_SECRET_KEY,
    secret_id: str = DEMO_SECRET_ID,
    region: str = DEMO_REGION,
) -> dict[str, str]:
    """The CLI's environment: demo credentials and region (an empty value leaves one unset)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENCENTCLOUD_")}
    env.update(
        PYTHONPATH=os.pathsep.join(p for p in (SRC, env.get("PYTHONPATH")) if p),
        HOME=str(tmp_path),
    )
    for name, value in (
        ("TENCENTCLOUD_SECRET_ID", secret_id),
        ("TENCENTCLOUD_SECRET_KEY", secret_key),
        ("TENCENTCLOUD_REGION", region),
    ):
        if value:
            env[name] = value
    return env


async def start_cli(
    tmp_path: Path,
    *args: str,
    stdin: int | None = None,
    preexec_fn: Callable[[], object] | None = None,
    **kw: str,
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CLI,
        *args,
        env=cli_env(tmp_path, **kw),
        stdin=stdin,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=preexec_fn,
        cwd=tmp_path,  # default journals (stdin, discovery) land here, not in the repository
    )


async def run_cli(
    tmp_path: Path, *args: str, stdin: int | None = None, input: bytes | None = None, **kw: str
) -> tuple[int, str, str]:
    if input is not None:
        stdin = asyncio.subprocess.PIPE
    proc = await start_cli(tmp_path, *args, stdin=stdin, **kw)
    out, err = await asyncio.wait_for(proc.communicate(input), 90)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
async def emulator(request: pytest.FixtureRequest) -> AsyncIterator[Emulator]:
    marker = request.node.get_closest_marker("emulator")
    config = EmulatorConfig(**(marker.kwargs if marker else {}))
    async with Emulator(config) as emu:
        yield emu


def write_input(emu: Emulator, path: Path, extra: str = "") -> list[tuple[str, str]]:
    pairs = [(t["gateway"], t["id"]) for t in emu.tunnels()]
    path.write_text(
        "VpnGatewayId,VpnConnectionId\n" + "".join(f"{g},{c}\n" for g, c in pairs) + extra
    )
    return pairs


def read_report(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def delete_codes(emu: Emulator) -> dict[str, int]:
    requests = emu.stats()["requests"]
    assert isinstance(requests, dict)
    return dict(requests.get("DeleteVpnConnection", {}))


# -- no network needed ---------------------------------------------------------------------------


def test_missing_file_is_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(cleanup_command, ["--input", str(tmp_path / "nope.csv")])
    assert result.exit_code == 2
    assert "not found" in result.output


def test_bad_flags_are_exit_2(tmp_path: Path) -> None:
    assert CliRunner().invoke(cleanup_command, []).exit_code == 2
    both = ["--input", "x.csv", "--gateway", "vpngw-aaaa0001"]
    assert CliRunner().invoke(cleanup_command, both).exit_code == 2
    assert CliRunner().invoke(cleanup_command, ["--rate", "500"]).exit_code == 2


def test_no_credentials_is_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("TENCENTCLOUD_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("TENCENTCLOUD_CREDENTIALS_FILE", str(tmp_path / "none"))
    f = tmp_path / "t.csv"
    f.write_text("vpngw-aaaa0001,vpnx-aaaa0001\n")
    result = CliRunner().invoke(cleanup_command, ["--input", str(f), "--region", "ap-guangzhou"])
    assert result.exit_code == 2
    assert "credentials" in result.output


def test_unknown_region_is_exit_2_before_sending(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", "AKIDtest")
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", "key")
    f = tmp_path / "t.csv"
    f.write_text("vpngw-aaaa0001,vpnx-aaaa0001\n")
    # A closed loopback port: if anything were sent, the run would fail differently.
    args = ["--input", str(f), "--endpoint", "http://127.0.0.1:9", "--journal", str(tmp_path / "j")]
    result = CliRunner().invoke(cleanup_command, [*args, "--region", "ap-guangzhuo"])
    assert result.exit_code == 2
    assert "unknown region 'ap-guangzhuo'" in result.output
    assert not (tmp_path / "j").exists()


# -- against the emulator ------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.emulator(
    gateways=6,
    tunnels_per_gateway=10,
    delete_seconds=0.1,
    faults=FaultConfig.spread(0.1),
    stall_seconds=1.0,
    seed=3,
)
async def test_faults_on_every_tunnel_ends_deleted(emulator: Emulator, tmp_path: Path) -> None:
    pairs = write_input(emulator, tmp_path / "t.csv")
    report = tmp_path / "report.jsonl"
    rc, out, err = await run_cli(
        tmp_path, "--input", str(tmp_path / "t.csv"), "--endpoint", emulator.url,
        "--report", str(report),
    )  # fmt: skip
    assert rc == 0, err + out
    records = read_report(report)
    assert sorted((r["VpnGatewayId"], r["VpnConnectionId"]) for r in records) == sorted(pairs)
    assert {r["outcome"] for r in records} <= {"deleted", "already_gone"}
    await asyncio.sleep(0.3)
    assert emulator.tunnels() == []
    assert "requests sent" in out


@pytest.mark.slow
@pytest.mark.emulator(gateways=2, tunnels_per_gateway=3, delete_seconds=0.05)
async def test_invalid_lines_and_duplicates(emulator: Emulator, tmp_path: Path) -> None:
    pairs = write_input(emulator, tmp_path / "t.csv", extra="junk\n")
    with (tmp_path / "t.csv").open("a") as f:
        f.write(f"{pairs[0][0]},{pairs[0][1]}\n")  # a duplicate
    report = tmp_path / "report.csv"
    rc, out, err = await run_cli(
        tmp_path, "--input", str(tmp_path / "t.csv"), "--endpoint", emulator.url,
        "--report", str(report),
    )  # fmt: skip
    assert rc == 1, err + out
    lines = report.read_text().splitlines()
    assert lines[0].startswith("VpnGatewayId,VpnConnectionId,outcome")
    assert len(lines) == 1 + len(pairs) + 1
    invalid = [line for line in lines if ",invalid," in line]
    assert len(invalid) == 1
    assert invalid[0].endswith(f",{len(pairs) + 2}")  # header is line 1, junk is after the pairs
    assert delete_codes(emulator) == {"OK": len(pairs)}


@pytest.mark.slow
@pytest.mark.emulator(gateways=4, tunnels_per_gateway=5, delete_seconds=0.05)
async def test_wrong_credentials_stop_early(emulator: Emulator, tmp_path: Path) -> None:
    write_input(emulator, tmp_path / "t.csv")
    rc, out, err = await run_cli(
        tmp_path, "--input", str(tmp_path / "t.csv"), "--endpoint", emulator.url,
        secret_key="wrong-key",
    )  # fmt: skip
    assert rc == 2, err + out
    assert "AuthFailure" in err
    assert sum(delete_codes(emulator).values()) <= 3
    assert len(emulator.tunnels()) == 20


def pending_inflight(journal: Path) -> tuple[int, int]:
    db = sqlite3.connect(journal)
    try:
        done = db.execute("SELECT COUNT(*) FROM tunnels WHERE state = 'done'").fetchone()[0]
        inflight = db.execute("SELECT COUNT(*) FROM tunnels WHERE state = 'inflight'").fetchone()[0]
    except sqlite3.OperationalError:
        return 0, 0
    finally:
        db.close()
    return int(done), int(inflight)


async def wait_for_progress(journal: Path, at_least: int) -> None:
    for _ in range(600):
        await asyncio.sleep(0.05)
        if journal.exists() and pending_inflight(journal)[0] >= at_least:
            return
    raise AssertionError("the job made no progress")


@pytest.mark.slow
@pytest.mark.emulator(gateways=10, tunnels_per_gateway=12, delete_seconds=0.15)
async def test_kill_9_then_rerun_accounts_for_every_tunnel_once(
    emulator: Emulator, tmp_path: Path
) -> None:
    pairs = write_input(emulator, tmp_path / "t.csv")
    journal = tmp_path / "j.sqlite"
    args = ("--input", str(tmp_path / "t.csv"), "--endpoint", emulator.url)
    args += ("--journal", str(journal))
    proc = await start_cli(tmp_path, *args)
    await wait_for_progress(journal, 25)
    proc.kill()  # SIGKILL: no cleanup at all
    await proc.wait()
    done_before, inflight = pending_inflight(journal)
    assert 0 < done_before < len(pairs)

    report = tmp_path / "report.jsonl"
    rc, out, err = await run_cli(tmp_path, *args, "--report", str(report))
    assert rc == 0, err + out
    records = read_report(report)
    keys = [(r["VpnGatewayId"], r["VpnConnectionId"]) for r in records]
    assert len(keys) == len(set(keys)) == len(pairs)
    assert set(keys) == set(pairs)
    assert {r["outcome"] for r in records} == {"deleted"}
    codes = delete_codes(emulator)
    assert codes["OK"] == len(pairs)
    # only what was on the wire at the kill can be sent twice
    assert (
        codes.get("ResourceNotFound", 0)
        + codes.get("UnsupportedOperation.DeleteVpnConnInvalidState", 0)
        <= inflight
    )


@pytest.mark.slow
@pytest.mark.emulator(gateways=10, tunnels_per_gateway=12, delete_seconds=0.15)
async def test_sigint_exits_130_with_a_consistent_journal(
    emulator: Emulator, tmp_path: Path
) -> None:
    pairs = write_input(emulator, tmp_path / "t.csv")
    journal = tmp_path / "j.sqlite"
    report = tmp_path / "report.jsonl"
    args = ("--input", str(tmp_path / "t.csv"), "--endpoint", emulator.url)
    args += ("--journal", str(journal), "--report", str(report))
    proc = await start_cli(tmp_path, *args)
    await wait_for_progress(journal, 20)
    proc.send_signal(signal.SIGINT)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 130, err.decode() + out.decode()
    done, inflight = pending_inflight(journal)
    assert inflight == 0
    records = read_report(report)
    assert len(records) == len(pairs)
    assert sum(r["outcome"] == "deleted" for r in records) == done
    assert {r["outcome"] for r in records} <= {"deleted", "pending"}
    rc, out2, err2 = await run_cli(tmp_path, *args)
    assert rc == 0, err2 + out2
    assert delete_codes(emulator)["OK"] == len(pairs)


@pytest.mark.slow
def test_demo_runs_and_leaves_nothing(tmp_path: Path) -> None:
    args = ["--gateways", "5", "--tunnels-per-gateway", "8", "--delete-seconds", "0.05"]
    result = CliRunner().invoke(demo_command, args)
    assert result.exit_code == 0, result.output
    assert "0 tunnel(s) left" in result.output


# -- nothing is ever deleted by mistake ----------------------------------------------------------


def requests_seen(emu: Emulator) -> int:
    requests = emu.stats()["requests"]
    assert isinstance(requests, dict)
    return sum(sum(codes.values()) for codes in requests.values())


def close_stdin() -> None:
    os.close(0)


@pytest.mark.slow
@pytest.mark.emulator(gateways=3, tunnels_per_gateway=4)
@pytest.mark.parametrize(
    ("how", "said"), [("devnull", "stdin is /dev/null"), ("closed", "stdin is closed")]
)
async def test_stdin_closed_or_dev_null_is_exit_2_and_discovers_nothing(
    emulator: Emulator, tmp_path: Path, how: str, said: str
) -> None:
    args = ("--input", "-", "--yes", "--endpoint", emulator.url)
    if how == "devnull":
        proc = await start_cli(tmp_path, *args, stdin=asyncio.subprocess.DEVNULL)
    else:
        proc = await start_cli(tmp_path, *args, preexec_fn=close_stdin)
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode == 2, err.decode() + out.decode()
    assert said in err.decode()
    assert requests_seen(emulator) == 0
    assert len(emulator.tunnels()) == 12


@pytest.mark.slow
@pytest.mark.emulator(gateways=3, tunnels_per_gateway=4)
async def test_an_empty_input_is_nothing_to_do(emulator: Emulator, tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("VpnGatewayId,VpnConnectionId\n# nothing today\n")
    report = tmp_path / "r.jsonl"
    args = ("--endpoint", emulator.url, "--yes", "--report", str(report))
    rc, out, err = await run_cli(tmp_path, "--input", str(empty), *args)
    assert rc == 0, err + out
    assert "nothing to do" in err
    assert report.read_text() == ""
    rc, out, err = await run_cli(tmp_path, "--input", "-", *args, input=b"")  # an empty pipe
    assert rc == 0, err + out
    assert "nothing to do" in err
    assert requests_seen(emulator) == 0
    assert len(emulator.tunnels()) == 12


def test_empty_discovery_filters_are_exit_2(tmp_path: Path) -> None:
    for flag in ("--name-prefix", "--gateway", "--vpc"):
        result = CliRunner().invoke(cleanup_command, [flag, " ", "--yes"])
        assert result.exit_code == 2, result.output
        assert "would match every tunnel" in result.output


@pytest.mark.slow
@pytest.mark.emulator(gateways=2, tunnels_per_gateway=3)
async def test_a_second_job_on_a_held_journal_is_exit_2_naming_the_holder(
    emulator: Emulator, tmp_path: Path
) -> None:
    write_input(emulator, tmp_path / "t.csv")
    journal = tmp_path / "j.sqlite"
    with Journal(journal):  # the first job
        rc, out, err = await run_cli(
            tmp_path, "--input", str(tmp_path / "t.csv"), "--endpoint", emulator.url,
            "--journal", str(journal),
        )  # fmt: skip
    assert rc == 2, err + out
    assert f"in use by another job (pid {os.getpid()} on" in " ".join(err.split())
    assert requests_seen(emulator) == 0


@pytest.mark.slow
@pytest.mark.emulator(gateways=2, tunnels_per_gateway=3)
async def test_an_unwritable_report_is_found_before_the_first_delete(
    emulator: Emulator, tmp_path: Path
) -> None:
    write_input(emulator, tmp_path / "t.csv")
    for report in (tmp_path / "no-such-dir" / "r.jsonl", tmp_path):
        rc, out, err = await run_cli(
            tmp_path, "--input", str(tmp_path / "t.csv"), "--endpoint", emulator.url,
            "--report", str(report),
        )  # fmt: skip
        assert rc == 2, err + out
        assert "report" in err
    assert requests_seen(emulator) == 0
    assert len(emulator.tunnels()) == 6


@pytest.mark.slow
@pytest.mark.emulator(gateways=4, tunnels_per_gateway=5, delete_seconds=0.02)
async def test_disk_full_mid_run_is_exit_2_and_keeps_what_was_committed(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pairs = write_input(emulator, tmp_path / "t.csv")
    record = Journal.record_outcome
    recorded = 0

    def fill_up(self: Journal, *args: object, **kwargs: object) -> None:
        nonlocal recorded
        if recorded >= 6:
            raise JournalError(f"journal {self.path}: database or disk is full")
        record(self, *args, **kwargs)  # type: ignore[arg-type]
        recorded += 1

    monkeypatch.setattr(Journal, "record_outcome", fill_up)
    journal = tmp_path / "j.sqlite"
    options = CleanupOptions(
        input=str(tmp_path / "t.csv"),
        region=DEMO_REGION,
        endpoint=emulator.url,
        journal=str(journal),
        report=str(tmp_path / "r.jsonl"),
        credential=Credential(DEMO_SECRET_ID, DEMO_SECRET_KEY),
    )
    err = io.StringIO()
    status = await asyncio.wait_for(
        cleanup(options, Console(file=io.StringIO()), Console(file=err)), 60
    )
    assert status == 2
    assert "disk is full" in err.getvalue()
    assert not (tmp_path / "r.jsonl").exists()
    assert not (tmp_path / "r.jsonl.tmp").exists()
    monkeypatch.undo()
    done, _ = pending_inflight(journal)
    assert done == 6
    # every delete the emulator accepted is either recorded or left with an unknown outcome
    gone = {c for _, c in pairs} - {t["id"] for t in emulator.tunnels()}
    with Journal(journal) as j:
        rows = {r[0]: r[1:] for r in j._all("SELECT conn, state, unknown FROM tunnels")}
    for conn in gone:
        state, unknown = rows[conn]
        assert state == "done" or unknown == 1, (conn, rows[conn])


def test_max_line_bytes_makes_a_long_line_invalid_in_a_dry_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", "AKIDtest")
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", "key")
    f = tmp_path / "t.csv"
    f.write_text("vpngw-aaaa0001,vpnx-aaaa0001\n" + "," * 500 + "\nvpngw-aaaa0001,vpnx-aaaa0002\n")
    args = ["--input", str(f), "--region", "ap-guangzhou", "--endpoint", "http://127.0.0.1:9"]
    result = CliRunner().invoke(cleanup_command, [*args, "--dry-run", "--max-line-bytes", "100"])
    assert result.exit_code == 1, result.output  # an invalid line
    assert "line 2: invalid: line longer than 100 bytes" in result.output
    assert "2 tunnel(s) would be deleted" in result.output


@pytest.mark.slow
@pytest.mark.parametrize(("flags", "shown"), [((), False), (("-v",), True)])
def test_per_call_log_lines_only_with_verbose(
    tmp_path: Path, flags: tuple[str, ...], shown: bool
) -> None:
    # With faults on, failed watcher polls and requeued deletes are routine: the summary and
    # the report carry them; the terminal shows them only when asked.
    args = ["--gateways", "4", "--tunnels-per-gateway", "8", "--delete-seconds", "0.05"]
    args += ["--fault-rate", "0.3", "--seed", "3", *flags]
    proc = subprocess.run(
        [sys.executable, "-m", "tcvpc", "demo", *args],
        env=cli_env(tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert ("failed:" in proc.stderr) is shown, proc.stderr[-2000:]


@pytest.mark.emulator(gateways=2, tunnels_per_gateway=3, delete_seconds=0.05)
async def test_proxy_flag_carries_every_request(emulator: Emulator, tmp_path: Path) -> None:
    from test_transport import forward_proxy  # the loopback forward proxy of the client tests

    pairs = write_input(emulator, tmp_path / "t.csv")
    async with forward_proxy() as proxy:
        rc, out, err = await run_cli(
            tmp_path, "--input", str(tmp_path / "t.csv"), "--endpoint", emulator.url,
            "--proxy", proxy.url,
        )  # fmt: skip
    assert rc == 0, err + out
    assert delete_codes(emulator)["OK"] == len(pairs)
    assert len(proxy.seen) == emulator.stats()["requests_total"]  # every request went through it
    bad = await run_cli(tmp_path, "--input", str(tmp_path / "t.csv"), "--proxy", "ftp://x")
    assert bad[0] == 2
    assert "--proxy" in bad[2]
