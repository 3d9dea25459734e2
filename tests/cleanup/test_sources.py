from __future__ import annotations

import io
from pathlib import Path

import pytest
from cleanup_fakes import FakeVpc, make_refs

from tcvpc.cleanup.sources import (
    InputError,
    InvalidLine,
    SourceItem,
    TunnelLine,
    discover,
    parse_lines,
    read_input,
)
from tcvpc.models import TunnelRef, TunnelState

GW = "vpngw-aaaa0001"
GW2 = "vpngw-bbbb0002"
C1 = "vpnx-cccc0001"
C2 = "vpnx-cccc0002"


def items(text: str) -> list[SourceItem]:
    return list(parse_lines(io.StringIO(text)))


def test_csv_with_header() -> None:
    got = items(f"VpnGatewayId,VpnConnectionId\n{GW},{C1}\n{GW2},{C2}\n")
    assert got == [TunnelLine(2, TunnelRef(GW, C1)), TunnelLine(3, TunnelRef(GW2, C2))]


def test_csv_without_header_and_spaces() -> None:
    got = items(f" {GW} , {C1} \n{GW2},{C2}")
    assert got == [TunnelLine(1, TunnelRef(GW, C1)), TunnelLine(2, TunnelRef(GW2, C2))]


def test_header_fixes_column_order_and_extra_columns() -> None:
    got = items(f"Name,VpnConnectionId,VpnGatewayId\nx,{C1},{GW}\n")
    assert got == [TunnelLine(2, TunnelRef(GW, C1))]


def test_json_lines_and_mixed_formats() -> None:
    text = f'{{"VpnGatewayId": "{GW}", "VpnConnectionId": "{C1}", "extra": 1}}\n{GW2},{C2}\n'
    assert items(text) == [TunnelLine(1, TunnelRef(GW, C1)), TunnelLine(2, TunnelRef(GW2, C2))]


def test_invalid_lines_keep_their_numbers_and_never_stop_the_stream() -> None:
    text = "\n".join(
        [
            "VpnGatewayId,VpnConnectionId",  # 1 header
            f"{GW},{C1}",  # 2 ok
            "",  # 3 blank: skipped, still counted
            "# a comment",  # 4 skipped
            "gw-typo,vpnx-cccc0003",  # 5 bad gateway
            f"{GW},vpnx-SHOUT001",  # 6 bad connection (uppercase)
            f"{GW},{C1},extra-without-header-column",  # 7 fine: header fixed the columns
            "{not json",  # 8
            "[1, 2]",  # 9 CSV with junk
            '{"VpnGatewayId": 5}',  # 10
            f"{GW2},{C2}",  # 11 ok
        ]
    )
    got = items(text)
    valid = [i for i in got if isinstance(i, TunnelLine)]
    invalid = [i for i in got if isinstance(i, InvalidLine)]
    assert [v.line for v in valid] == [2, 7, 11]
    assert [i.line for i in invalid] == [5, 6, 8, 9, 10]
    assert "gw-typo" in invalid[0].reason
    assert "VpnConnectionId" in invalid[1].reason
    assert "JSON" in invalid[2].reason


def test_wrong_column_count_without_header() -> None:
    [bad] = items(f"{GW}\n")
    assert isinstance(bad, InvalidLine)
    assert bad.line == 1
    assert "2 columns" in bad.reason


def test_duplicates_are_passed_through_for_the_journal_to_fold() -> None:
    got = items(f"{GW},{C1}\n{GW},{C1}\n")
    assert [i.line for i in got] == [1, 2]


def test_read_input_file_with_bom_and_undecodable_bytes(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(
        b"\xef\xbb\xbfVpnGatewayId,VpnConnectionId\n"
        + f"{GW},{C1}\n".encode()
        + b"vpngw-\xff\xfe0001,vpnx-cccc0009\n"
    )
    got = list(read_input(path))
    assert got[0] == TunnelLine(2, TunnelRef(GW, C1))
    assert isinstance(got[1], InvalidLine)
    assert got[1].line == 3


def test_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(f"{GW},{C1}\n".encode())))
    assert list(read_input("-")) == [TunnelLine(1, TunnelRef(GW, C1))]


def test_missing_file_is_an_error_at_open(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        read_input(tmp_path / "nope.csv")
    with pytest.raises(InputError, match="directory"):
        read_input(tmp_path)


async def test_discovery_filters_prefix_and_skips_deleting() -> None:
    refs = make_refs(3, 4)
    fake = FakeVpc(refs)
    fake.tunnels[refs[0].vpn_connection_id].state = TunnelState.DELETING
    gw0 = refs[0].vpn_gateway_id
    found = [i async for i in discover(fake, gateways=[gw0])]
    assert [i.tunnel for i in found if isinstance(i, TunnelLine)] == refs[1:4]
    prefix = f"name-{refs[5].vpn_connection_id}"
    found = [i async for i in discover(fake, name_prefix=prefix)]
    assert [i.tunnel for i in found if isinstance(i, TunnelLine)] == [refs[5]]
