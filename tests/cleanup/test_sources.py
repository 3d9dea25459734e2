from __future__ import annotations

import io
import os
import tracemalloc
from pathlib import Path

import pytest
from cleanup_fakes import FakeVpc, make_refs
from hypothesis import given
from hypothesis import strategies as st

from tcvpc.cleanup import sources
from tcvpc.cleanup.sources import (
    DEFAULT_MAX_LINE_BYTES,
    InputError,
    InvalidLine,
    SourceItem,
    TunnelLine,
    discover,
    parse_lines,
    read_input,
    read_items,
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


# -- stdin that is not an input ------------------------------------------------------------------


def test_closed_stdin_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", None)  # what Python sets when fd 0 was closed
    with pytest.raises(InputError, match="stdin is closed"):
        read_input("-")
    closed = io.TextIOWrapper(io.BytesIO())
    closed.close()
    monkeypatch.setattr("sys.stdin", closed)
    with pytest.raises(InputError, match="stdin is closed"):
        read_input("-")


def test_stdin_on_dev_null_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with open(os.devnull) as null:
        monkeypatch.setattr("sys.stdin", null)
        with pytest.raises(InputError, match="/dev/null"):
            read_input("-")


# -- input that costs memory out of proportion ---------------------------------------------------


def read_bytes(data: bytes, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> list[SourceItem]:
    return list(read_items(io.BytesIO(data), max_line_bytes=max_line_bytes))


def test_an_over_long_line_is_invalid_and_the_next_line_goes_on() -> None:
    ok = f"{GW},{C1}\n".encode()
    got = read_bytes(ok + b"," * 5000 + b"\n" + ok.replace(b"0001\n", b"0002\n"), 1024)
    assert got[0] == TunnelLine(1, TunnelRef(GW, C1))
    assert isinstance(got[1], InvalidLine)
    assert got[1].line == 2
    assert "longer than 1024 bytes" in got[1].reason
    assert got[2] == TunnelLine(3, TunnelRef(GW, "vpnx-cccc0002"))
    line = f"{GW},{C1}".encode()  # exactly at the bound is fine; one byte over is not
    assert read_bytes(line, len(line)) == [TunnelLine(1, TunnelRef(GW, C1))]
    assert isinstance(read_bytes(line + b" ", len(line))[0], InvalidLine)


def test_a_20_mb_line_is_never_held_in_memory(tmp_path: Path) -> None:
    path = tmp_path / "huge.csv"
    with path.open("wb") as f:
        for _ in range(20):
            f.write(b"," * 1_000_000)
        f.write(f"\n{GW},{C1}\n".encode())
    tracemalloc.start()
    try:
        got = list(read_input(path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [type(i) for i in got] == [InvalidLine, TunnelLine]
    assert peak < 2_000_000  # about the bound (64 KiB) and one read chunk, not 20 MB


def test_every_decode_failure_is_one_invalid_line() -> None:
    ok = f"{GW},{C1}\n".encode()
    nested = b'{"a": ' + b"[" * 50_000 + b"]" * 50_000 + b"}\n"  # RecursionError in json
    deep = b'{"VpnGatewayId": ' + b"{" * 50_000 + b"}" * 50_000 + b"}\n"
    lines = [
        nested,
        deep,
        b"vpngw-\xff\xfe0001,vpnx-cccc0009\n",  # not UTF-8
        b"vpngw-aaaa0001,vpnx-cc\x00cc0001\n",  # NUL
        b'"unterminated,quote\n',
        b'{"VpnGatewayId": 1' + b"0" * 5000 + b"}\n",  # int too long to convert
        b"\r\n",  # only a CR: blank
        b"a,\r,b\n",
    ]
    got = read_bytes(b"".join(lines) + ok, 200_000)
    assert got[-1] == TunnelLine(len(lines) + 1, TunnelRef(GW, C1))
    invalid = [i for i in got if isinstance(i, InvalidLine)]
    assert [i.line for i in invalid] == [1, 2, 3, 4, 5, 6, 8]
    reasons = [i.reason for i in invalid]
    assert "nested too deep" in reasons[0]
    assert "not valid JSON" in reasons[1]
    assert "not UTF-8" in reasons[2]
    assert "NUL" in reasons[3]


@given(st.binary(max_size=400), st.integers(min_value=1, max_value=40), st.integers(1, 17))
def test_chunked_lines_match_a_plain_split(data: bytes, limit: int, chunk: int) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sources, "_CHUNK", chunk)
        got = list(sources._raw_lines(io.BytesIO(data), limit))
    parts = data.split(b"\n")
    if parts[-1] == b"":
        parts.pop()
    assert got == [None if len(p) > limit else p for p in parts]


async def test_discovery_without_a_real_filter_is_refused() -> None:
    fake = FakeVpc(make_refs(2, 2))
    for kwargs in ({}, {"name_prefix": ""}, {"gateways": [" "]}, {"vpcs": [""]}):
        with pytest.raises(ValueError, match="non-empty"):
            [i async for i in discover(fake, **kwargs)]  # type: ignore[arg-type]
    assert fake.describes == 0
