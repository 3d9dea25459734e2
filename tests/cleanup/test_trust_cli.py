"""Issue 11 through the command, against the emulator over loopback (the CLI in a subprocess)."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
from test_command import delete_codes, read_report, run_cli, write_input

from tcvpc.cleanup.journal import Journal
from tcvpc.emulator import Emulator, EmulatorConfig

pytestmark = pytest.mark.slow


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- point 2: the journal follows the input's content -------------------------------------------


async def test_appended_lines_are_deleted_by_a_rerun(tmp_path: Path) -> None:
    async with Emulator(EmulatorConfig(gateways=2, tunnels_per_gateway=3)) as emu:
        source = tmp_path / "t.csv"
        pairs = [(t["gateway"], t["id"]) for t in emu.tunnels()]
        source.write_text("".join(f"{g},{c}\n" for g, c in pairs[:4]))
        rc, out, err = await run_cli(tmp_path, "--input", str(source), "--endpoint", emu.url)
        assert rc == 0, err + out
        with source.open("a") as f:
            f.write("".join(f"{g},{c}\n" for g, c in pairs[4:]))
        rc, out, err = await run_cli(tmp_path, "--input", str(source), "--endpoint", emu.url)
        assert rc == 0, err + out
        assert "2 new line(s) taken in" in err
        assert emu.tunnels() == [] or all(t["state"] == "DELETING" for t in emu.tunnels())
        assert delete_codes(emu) == {"OK": 6}  # each tunnel once, none of the first four again


async def test_a_replaced_or_shortened_input_is_refused(tmp_path: Path) -> None:
    async with Emulator(EmulatorConfig(gateways=2, tunnels_per_gateway=6)) as emu:
        source = tmp_path / "t.csv"
        pairs = [(t["gateway"], t["id"]) for t in emu.tunnels()]
        source.write_text("".join(f"{g},{c}\n" for g, c in pairs[:2]))
        rc, out, err = await run_cli(tmp_path, "--input", str(source), "--endpoint", emu.url)
        assert rc == 0, err + out
        source.write_text("".join(f"{g},{c}\n" for g, c in pairs[2:12]))  # same name, new list
        rc, out, err = await run_cli(tmp_path, "--input", str(source), "--endpoint", emu.url)
        assert rc == 2, err + out
        assert "lines 1, 2 changed" in err
        assert "--journal NEW" in err
        assert f"{source}.journal.sqlite" in err.replace("\n", "")
        source.write_text("".join(f"{g},{c}\n" for g, c in pairs[:1]))
        rc, out, err = await run_cli(tmp_path, "--input", str(source), "--endpoint", emu.url)
        assert rc == 2, err + out
        assert "1 line removed" in err
        before = emu.stats()["requests_total"]
        source.write_text("".join(f"{g},{c}\n" for g, c in pairs[:1]))
        rc, out, err = await run_cli(tmp_path, "--input", str(source), "--endpoint", emu.url)
        assert rc == 2, err + out
        assert emu.stats()["requests_total"] == before  # a refused run sends nothing
        assert delete_codes(emu) == {"OK": 2}
        # Starting afresh as told: a new journal takes the new list.
        source.write_text("".join(f"{g},{c}\n" for g, c in pairs[2:12]))
        rc, out, err = await run_cli(
            tmp_path, "--input", str(source), "--endpoint", emu.url,
            "--journal", str(tmp_path / "new.sqlite"),
        )  # fmt: skip
        assert rc == 0, err + out
        assert delete_codes(emu)["OK"] == 12  # (a busy gateway may add a mutex retry)


async def test_each_discovery_run_gets_its_own_journal(tmp_path: Path) -> None:
    async with Emulator(EmulatorConfig(gateways=1, tunnels_per_gateway=3)) as emu:
        gw = emu.tunnels()[0]["gateway"]
        args = ("--gateway", gw, "--endpoint", emu.url)
        rc, out, err = await run_cli(tmp_path, *args)  # no terminal, no --yes: refused
        assert rc == 2, err + out
        assert "refusing" in err
        rc, out, err = await run_cli(tmp_path, *args, "--yes")
        assert rc == 0, err + out
        assert delete_codes(emu) == {"OK": 3}  # the refused run's list was not "resumed"
        emu.add_tunnel("vpnx-newtun01", gw)
        rc, out, err = await run_cli(tmp_path, *args, "--yes")
        assert rc == 0, err + out
        assert "discovered 1 tunnel(s)" in err
        assert delete_codes(emu)["OK"] == 4  # (the gateway may still be busy with the last one)
    journals = sorted(tmp_path.glob("*.journal.sqlite"))
    assert len(journals) == 3  # one per discovery run (in the working directory)


# -- point 3: an endpoint that cannot be reached stops the job fast ------------------------------


async def assert_stops_fast(tmp_path: Path, endpoint: str, n: int = 30) -> str:
    source = tmp_path / "t.csv"
    source.write_text("".join(f"vpngw-{i % 5:08d},vpnx-{i:08d}\n" for i in range(n)))
    report = tmp_path / "r.jsonl"
    start = time.monotonic()
    rc, out, err = await run_cli(
        tmp_path, "--input", str(source), "--endpoint", endpoint, "--report", str(report)
    )
    elapsed = time.monotonic() - start
    assert rc == 2, err + out
    assert elapsed < 30, elapsed  # the bound is about 20 s; before, ~45 s per tunnel
    assert "cannot reach the API" in err
    assert f"{n} tunnel(s) stay pending" in err.replace("\n", " ")
    rows = read_report(report)
    assert [r["outcome"] for r in rows] == ["pending"] * n  # nothing marked failed
    return err


async def test_connection_refused_stops_the_job(tmp_path: Path) -> None:
    err = await assert_stops_fast(tmp_path, f"http://127.0.0.1:{closed_port()}")
    assert "cannot connect" in err


async def test_https_to_a_plain_http_server_stops_the_job(tmp_path: Path) -> None:
    async with Emulator(EmulatorConfig(gateways=1, tunnels_per_gateway=1)) as emu:
        await assert_stops_fast(tmp_path, emu.url.replace("http://", "https://"))
        assert emu.tunnels() != []


async def test_http_to_a_tls_server_stops_the_job(tmp_path: Path) -> None:
    pytest.importorskip("trustme")
    async with Emulator(EmulatorConfig(gateways=1, tunnels_per_gateway=1, tls=True)) as emu:
        await assert_stops_fast(tmp_path, emu.url.replace("https://", "http://"))


async def test_an_untrusted_certificate_stops_the_job(tmp_path: Path) -> None:
    """TLS to the right port, but a certificate the client does not trust (TLS mismatch)."""
    pytest.importorskip("trustme")
    async with Emulator(EmulatorConfig(gateways=1, tunnels_per_gateway=1, tls=True)) as emu:
        err = await assert_stops_fast(tmp_path, emu.url)
        assert "certificate" in err.lower()
        assert "--ca-bundle" in err  # the CLI's option, not the library's argument
        assert "ca_bundle=" not in err
        # Trusting the run's CA as told, the same job runs.
        rc, out, err = await run_cli(
            tmp_path, "--input", str(tmp_path / "t.csv"), "--endpoint", emu.url,
            "--ca-bundle", str(emu.ca_path),
        )  # fmt: skip
        assert rc == 0, err + out  # reached: the thirty made-up tunnels exist nowhere
        assert "already_gone" in out


async def test_discovery_against_a_dead_endpoint_stops_fast(tmp_path: Path) -> None:
    start = time.monotonic()
    rc, out, err = await run_cli(
        tmp_path, "--gateway", "vpngw-aaaa0001", "--yes", "--endpoint",
        f"http://127.0.0.1:{closed_port()}",
    )  # fmt: skip
    assert rc == 2, err + out
    assert time.monotonic() - start < 30
    assert "discovery cannot reach the API" in err
    assert "Traceback" not in err


# -- point 4: reasons on screen, a report by default ---------------------------------------------


async def test_reasons_and_the_default_report(tmp_path: Path) -> None:
    async with Emulator(EmulatorConfig(gateways=2, tunnels_per_gateway=2)) as emu:
        source = tmp_path / "t.csv"
        write_input(emu, source, extra="junk\nvpngw-bad,vpnx-bad\n")
        rc, out, err = await run_cli(tmp_path, "--input", str(source), "--endpoint", emu.url)
    assert rc == 1, err + out
    flat = err.replace("\n", " ")
    assert "invalid: 2 input line(s)" in flat
    assert "line 6:" in flat
    assert "line 7:" in flat
    default = Path(f"{source}.journal.report.jsonl")
    assert f"report: {default}" in flat
    rows = [json.loads(line) for line in default.read_text().splitlines()]
    assert [r["outcome"] for r in rows].count("invalid") == 2


async def test_a_second_job_leaves_the_first_jobs_report_alone(tmp_path: Path) -> None:
    """The default report sits beside the journal: only the journal's holder may write it."""
    source = tmp_path / "t.csv"
    source.write_text("vpngw-00000001,vpnx-00000001\n")
    journal = Path(f"{source}.journal.sqlite")
    being_written = Path(f"{source}.journal.report.jsonl.tmp")
    with Journal(journal):  # the first job, writing its report
        being_written.write_text("the first job's report\n")
        rc, out, err = await run_cli(
            tmp_path, "--input", str(source), "--endpoint", f"http://127.0.0.1:{closed_port()}"
        )
    assert rc == 2, err + out
    assert "in use by another job" in err
    assert being_written.read_text() == "the first job's report\n"


# -- point 5: the CLI's own words ------------------------------------------------------------------


async def test_cli_names_its_own_flags(tmp_path: Path) -> None:
    source = tmp_path / "t.csv"
    source.write_text("vpngw-00000001,vpnx-00000001\n")
    rc, _, err = await run_cli(tmp_path, "--input", str(source), "--endpoint", "http://10.1.2.3")
    assert rc == 2
    assert "--allow-insecure" in err
    assert "allow_insecure=True" not in err
    assert not Path(f"{source}.journal.sqlite").exists()  # refused before anything


async def test_missing_region_names_the_flag(tmp_path: Path) -> None:
    source = tmp_path / "t.csv"
    source.write_text("vpngw-00000001,vpnx-00000001\n")
    rc, _, err = await run_cli(
        tmp_path, "--input", str(source), "--endpoint", "http://127.0.0.1:9", region=""
    )
    assert rc == 2
    assert "--region" in err
    assert "region=" not in err


async def test_credentials_error_keeps_its_brackets(tmp_path: Path) -> None:
    source = tmp_path / "t.csv"
    source.write_text("vpngw-00000001,vpnx-00000001\n")
    rc, _, err = await run_cli(
        tmp_path, "--input", str(source), "--endpoint", "http://127.0.0.1:9", secret_id=""
    )
    assert rc == 2
    assert "[default]" in err
