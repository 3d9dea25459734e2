"""Any bytes through the input readers: items or invalid lines, never an exception.

The default profile runs a modest number of examples; ``HYPOTHESIS_PROFILE=fuzz`` (registered in
``tests/cleanup/conftest.py``) runs 10,000 per test, e.g.
``HYPOTHESIS_PROFILE=fuzz python3 -m pytest tests/cleanup/test_fuzz_sources.py``.
"""

from __future__ import annotations

import io

from hypothesis import given
from hypothesis import strategies as st

from tcvpc.cleanup.sources import InvalidLine, TunnelLine, parse_lines, read_items

GW = "vpngw-aaaa0001"
C1 = "vpnx-cccc0001"

# Bytes biased towards what breaks parsers: separators, quotes, braces, NUL, bad UTF-8, BOMs,
# and pieces of real lines.
_SEPARATORS = [b",", b"\n", b"\r", b'"', b"{", b"}", b"[", b"]", b"\t", b"\\", b"#"]
_HOSTILE = [b"\x00", b"\xff", b"\xef\xbb\xbf", b"\xc3"]
_REAL = [f"{GW},{C1}".encode(), b'{"VpnGatewayId": "', b'", "VpnConnectionId": "']
_PIECES = st.sampled_from([*_SEPARATORS, *_HOSTILE, *_REAL])
_INPUT = st.one_of(st.binary(max_size=2000), st.lists(_PIECES, max_size=200).map(b"".join))


@given(_INPUT, st.integers(min_value=1, max_value=256))
def test_any_bytes_give_items_or_invalid_lines(data: bytes, max_line: int) -> None:
    items = list(read_items(io.BytesIO(data), max_line_bytes=max_line))
    lines = [i.line for i in items]
    assert lines == sorted(set(lines))  # one item per line at most, in order
    assert all(isinstance(i, TunnelLine | InvalidLine) for i in items)
    assert len(items) <= data.count(b"\n") + 1


@given(st.text(max_size=500))
def test_any_text_gives_items_or_invalid_lines(text: str) -> None:
    items = list(parse_lines(io.StringIO(text)))
    assert all(isinstance(i, TunnelLine | InvalidLine) for i in items)
