"""Where the tunnels to delete come from: a file or stdin (streamed), or discovery.

Files are read one line at a time and every line becomes one item, so memory does not depend on
the input's size and a bad line never stops the job: it becomes an :class:`InvalidLine` with its
line number and the reason, and the next line goes on.

The format is detected per line, so CSV and JSON lines may even be mixed:

* a line starting with ``{`` is JSON with the keys ``VpnGatewayId`` and ``VpnConnectionId``;
* anything else is CSV: ``VpnGatewayId,VpnConnectionId``. A header naming both columns is
  optional; when present it fixes the column order (extra columns are ignored);
* blank lines and lines starting with ``#`` are skipped.

IDs must look like real ones (``vpngw-``/``vpnx-`` + 8 lowercase letters or digits): a typo is
reported as an invalid line instead of costing a request that would fail anyway.

Opening the file happens in :func:`open_input`, before anything is sent, so a missing or
unreadable file is an :class:`InputError` the command turns into exit status 2.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from tcvpc.cleanup.protocol import CleanupClient
from tcvpc.client import MAX_FILTER_VALUES
from tcvpc.models import (
    TunnelRef,
    TunnelState,
    looks_like_connection_id,
    looks_like_gateway_id,
)

__all__ = [
    "CONNECTION_COLUMN",
    "GATEWAY_COLUMN",
    "InputError",
    "InvalidLine",
    "SourceItem",
    "TunnelLine",
    "discover",
    "open_input",
    "parse_lines",
    "read_input",
]

GATEWAY_COLUMN = "VpnGatewayId"
CONNECTION_COLUMN = "VpnConnectionId"

_EXCERPT = 120


class InputError(Exception):
    """The input cannot be read at all (missing, a directory, no permission, not UTF-8...)."""


@dataclass(frozen=True, slots=True)
class TunnelLine:
    """A usable input line: the tunnel it names and where it was."""

    line: int
    tunnel: TunnelRef


@dataclass(frozen=True, slots=True)
class InvalidLine:
    """An unusable input line: reported with the outcome ``invalid``, never sent."""

    line: int
    reason: str


SourceItem = TunnelLine | InvalidLine


def open_input(path: str | Path) -> TextIO:
    """Open ``path`` (``-`` is stdin) for streaming, or raise :class:`InputError` now.

    Undecodable bytes become U+FFFD, so they make that line invalid instead of the whole file.
    """
    if str(path) == "-":
        return sys.stdin
    p = Path(path)
    try:
        return p.open(encoding="utf-8-sig", errors="replace", newline="")
    except FileNotFoundError:
        raise InputError(f"input file not found: {p}") from None
    except IsADirectoryError:
        raise InputError(f"input is a directory, not a file: {p}") from None
    except OSError as exc:
        raise InputError(f"cannot read input file {p}: {exc.strerror or exc}") from None


def read_input(path: str | Path) -> Iterator[SourceItem]:
    """Open ``path`` immediately (errors surface here) and stream its items."""
    stream = open_input(path)
    return _read_and_close(stream, close=stream is not sys.stdin)


def _read_and_close(stream: TextIO, *, close: bool) -> Iterator[SourceItem]:
    try:
        yield from parse_lines(stream)
    except OSError as exc:  # e.g. EIO halfway through: the rest cannot be read
        raise InputError(f"error while reading input: {exc.strerror or exc}") from None
    finally:
        if close:
            stream.close()


def parse_lines(lines: Iterable[str]) -> Iterator[SourceItem]:
    """Turn text lines into items, numbering lines from 1 (blank and ``#`` lines count too)."""
    columns: tuple[int, int] | None = None  # (gateway index, connection index) from a header
    seen_data = False
    for number, raw in enumerate(lines, start=1):
        text = raw.strip().lstrip("\ufeff")
        if not text or text.startswith("#"):
            continue
        if text.startswith("{"):
            seen_data = True
            yield _parse_json(number, text)
            continue
        fields = _split_csv(text)
        if not seen_data and columns is None:
            header = _header_columns(fields)
            if header is not None:
                columns = header
                continue
        seen_data = True
        yield _parse_csv(number, fields, columns, text)


def _split_csv(text: str) -> list[str]:
    try:
        row = next(csv.reader([text]), [])
    except csv.Error:
        row = text.split(",")
    return [f.strip() for f in row]


def _header_columns(fields: Sequence[str]) -> tuple[int, int] | None:
    lowered = [f.lower() for f in fields]
    try:
        return lowered.index(GATEWAY_COLUMN.lower()), lowered.index(CONNECTION_COLUMN.lower())
    except ValueError:
        return None


def _excerpt(text: str) -> str:
    return text if len(text) <= _EXCERPT else text[: _EXCERPT - 3] + "..."


def _parse_csv(
    number: int, fields: Sequence[str], columns: tuple[int, int] | None, text: str
) -> SourceItem:
    if columns is None:
        if len(fields) != 2:
            return InvalidLine(
                number,
                f"expected 2 columns {GATEWAY_COLUMN},{CONNECTION_COLUMN}, "
                f"got {len(fields)}: {_excerpt(text)!r}",
            )
        gateway, connection = fields
    else:
        gi, ci = columns
        if max(gi, ci) >= len(fields):
            return InvalidLine(number, f"missing columns: {_excerpt(text)!r}")
        gateway, connection = fields[gi], fields[ci]
    return _validate(number, gateway, connection)


def _parse_json(number: int, text: str) -> SourceItem:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        return InvalidLine(number, f"not valid JSON ({exc.msg}): {_excerpt(text)!r}")
    if not isinstance(obj, dict):
        return InvalidLine(number, "a JSON line must be an object")
    gateway = obj.get(GATEWAY_COLUMN)
    connection = obj.get(CONNECTION_COLUMN)
    if not isinstance(gateway, str) or not isinstance(connection, str):
        return InvalidLine(
            number, f"a JSON line needs string keys {GATEWAY_COLUMN} and {CONNECTION_COLUMN}"
        )
    return _validate(number, gateway.strip(), connection.strip())


def _validate(number: int, gateway: str, connection: str) -> SourceItem:
    if not looks_like_gateway_id(gateway):
        return InvalidLine(
            number,
            f"{GATEWAY_COLUMN} {_excerpt(gateway)!r} is not a VPN gateway ID "
            "(vpngw- and 8 lowercase letters or digits)",
        )
    if not looks_like_connection_id(connection):
        return InvalidLine(
            number,
            f"{CONNECTION_COLUMN} {_excerpt(connection)!r} is not a VPN connection ID "
            "(vpnx- and 8 lowercase letters or digits)",
        )
    return TunnelLine(number, TunnelRef(gateway, connection))


def _chunks(values: Sequence[str], size: int) -> list[list[str]]:
    unique = list(dict.fromkeys(values))
    return [unique[i : i + size] for i in range(0, len(unique), size)] or [[]]


async def discover(
    client: CleanupClient,
    *,
    gateways: Sequence[str] = (),
    vpcs: Sequence[str] = (),
    name_prefix: str | None = None,
) -> AsyncIterator[SourceItem]:
    """Stream the tunnels matching the filters (AND across kinds, OR within one kind).

    The API matches ``vpn-connection-name`` exactly, so the name prefix is applied here. Tunnels
    already ``DELETING`` are skipped: they are on their way out and a delete would be refused.
    A tunnel listed twice (pages shifting under deletions) is caught later by the journal's
    duplicate check. Items are numbered in discovery order, as if they were lines.
    """
    number = 0
    for gateway_chunk in _chunks(gateways, MAX_FILTER_VALUES):
        for vpc_chunk in _chunks(vpcs, MAX_FILTER_VALUES):
            filters: dict[str, list[str]] = {}
            if gateway_chunk:
                filters["vpn-gateway-id"] = gateway_chunk
            if vpc_chunk:
                filters["vpc-id"] = vpc_chunk
            async for conn in client.describe_vpn_connections(filters=filters or None):
                if name_prefix and not conn.name.startswith(name_prefix):
                    continue
                if conn.state is TunnelState.DELETING:
                    continue
                number += 1
                yield TunnelLine(number, conn.ref)
