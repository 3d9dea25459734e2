"""Config validation and seed files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tcvpc.emulator import REGIONS, Emulator, EmulatorConfig


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"port": -1}, ValueError),
        ({"port": 70000}, ValueError),
        ({"gateways": -1}, ValueError),
        ({"tunnels_per_gateway": -3}, ValueError),
        ({"rate_limit": 0}, ValueError),
        ({"rate_limit": -5.0}, ValueError),
        ({"delete_seconds": -0.1}, ValueError),
        ({"mutex_seconds": -1}, ValueError),
        ({"stall_seconds": float("nan")}, ValueError),
        ({"clock_skew_seconds": float("inf")}, ValueError),
        ({"secret_key": ""}, ValueError),
        ({"regions": ()}, ValueError),
        ({"regions": "ap-guangzhou"}, TypeError),
        ({"gateways": 1.5}, TypeError),
    ],
)
def test_invalid_values(kwargs: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        EmulatorConfig(**kwargs)


def test_defaults() -> None:
    config = EmulatorConfig()
    assert config.host == "127.0.0.1"
    assert config.port == 0
    assert config.effective_mutex_seconds == config.delete_seconds
    assert EmulatorConfig(mutex_seconds=0).effective_mutex_seconds == 0
    for region in (
        "ap-guangzhou",
        "ap-shanghai",
        "ap-beijing",
        "ap-shanghai-fsi",
        "na-siliconvalley",
    ):
        assert region in REGIONS
    assert EmulatorConfig(seed_file="x.csv").seed_file == Path("x.csv")  # type: ignore[arg-type]


def test_csv_seed_file(tmp_path: Path) -> None:
    path = tmp_path / "seed.csv"
    path.write_text(
        "VpnGatewayId,VpnConnectionId,VpcId,VpnConnectionName,State\n"
        "vpngw-aaaaaaaa,vpnx-aaaaaaa1,vpc-11111111,office,AVAILABLE\n"
        "vpngw-aaaaaaaa,vpnx-aaaaaaa2,,,DELETING\n"
        "vpngw-bbbbbbbb,vpnx-bbbbbbb1,vpc-22222222,dc,pending\n"
    )
    emu = Emulator(EmulatorConfig(seed_file=path, delete_seconds=60))
    tunnels = {t["id"]: t for t in emu.tunnels()}
    assert tunnels["vpnx-aaaaaaa1"]["vpc"] == "vpc-11111111"
    assert tunnels["vpnx-aaaaaaa1"]["name"] == "office"
    assert tunnels["vpnx-aaaaaaa2"]["state"] == "DELETING"
    assert tunnels["vpnx-aaaaaaa2"]["vpc"].startswith("vpc-")
    assert tunnels["vpnx-bbbbbbb1"]["state"] == "PENDING"
    assert len(tunnels) == 3  # the file replaces the generated seed


def test_json_lines_seed_file(tmp_path: Path) -> None:
    path = tmp_path / "seed.jsonl"
    path.write_text(
        '\n{"VpnGatewayId": "vpngw-aaaaaaaa", "VpnConnectionId": "vpnx-aaaaaaa1"}\n'
        '{"VpnGatewayId": "vpngw-aaaaaaaa", "VpnConnectionId": "vpnx-aaaaaaa2", "VpcId": "vpc-1"}\n'
    )
    emu = Emulator(EmulatorConfig(seed_file=path))
    assert [t["id"] for t in emu.tunnels()] == ["vpnx-aaaaaaa1", "vpnx-aaaaaaa2"]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("VpnGatewayId,VpnConnectionId\nvpngw-aaaaaaaa,vpnx-BAD\n", "malformed"),
        ("VpnGatewayId,VpnConnectionId\nvpngw-aaaaaaaa,\n", "required"),
        ("VpnGatewayId,VpnConnectionId,Colour\n", "unknown CSV columns"),
        ("VpnGatewayId,VpnConnectionId,State\nvpngw-aaaaaaaa,vpnx-aaaaaaa1,GONE\n", "State"),
        (
            "VpnGatewayId,VpnConnectionId\nvpngw-aaaaaaaa,vpnx-aaaaaaa1\nvpngw-aaaaaaaa,vpnx-aaaaaaa1\n",
            "already exists",
        ),
        ('{"VpnGatewayId": "vpngw-aaaaaaaa"\n', "not JSON"),
    ],
)
def test_bad_seed_files(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "seed.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        Emulator(EmulatorConfig(seed_file=path))


def test_repr_hides_the_secret_key() -> None:
    text = repr(EmulatorConfig(secret_id="AKIDvisible", secret_key="hidden-key-value"))
    assert "AKIDvisible" in text
    assert "hidden-key-value" not in text
