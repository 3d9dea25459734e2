"""Where the tunnels to delete come from: a file or stdin (streamed), or discovery.

Files are read as bytes in bounded chunks and every line becomes one item, so memory does not
depend on the input's size (a line longer than ``max_line_bytes`` is dropped as it streams by,
never held whole) and a bad line never stops the job: an over-long line, bytes that are not UTF-8,
a NUL byte, broken CSV or JSON (even nested 50,000 deep) all become an :class:`InvalidLine` with
its line number and the reason, and the next line goes on.

The format is detected per line, so CSV and JSON lines may even be mixed:

* a line starting with ``{`` is JSON with the keys ``VpnGatewayId`` and ``VpnConnectionId``, and
  optionally ``Region``;
* anything else is CSV: ``VpnGatewayId,VpnConnectionId``. A header naming both columns is
  optional; when present it fixes the column order, may name a ``Region`` column, and other
  columns are ignored;
* blank lines and lines starting with ``#`` are skipped.

A line without a region (no ``Region`` column, or an empty cell) goes to the job's ``--region``. A
region must be one of :data:`~tcvpc.regions.KNOWN_REGIONS` (a typo would otherwise send deletes
to a region where the tunnel does not exist), unless ``any_region`` lets any well-formed name
through (a region newer than tcvpc's list).

IDs must look like real ones (``vpngw-``/``vpnx-`` + 8 lowercase letters or digits): a typo is
reported as an invalid line instead of costing a request that would fail anyway.

Opening the file happens in :func:`open_input`, before anything is sent, so a missing or
unreadable file is an :class:`InputError` the command turns into exit status 2.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import stat
import sys
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from tcvpc.apilimits import MAX_FILTER_VALUES
from tcvpc.cleanup.protocol import CleanupClient
from tcvpc.models import (
    TunnelRef,
    TunnelState,
    looks_like_connection_id,
    looks_like_gateway_id,
)
from tcvpc.regions import is_known_region
from tcvpc.retry import RetryPolicy

__all__ = [
    "CONNECTION_COLUMN",
    "DEFAULT_MAX_LINE_BYTES",
    "GATEWAY_COLUMN",
    "REGION_COLUMN",
    "InputError",
    "InvalidLine",
    "LineDigests",
    "SourceItem",
    "TunnelLine",
    "discover",
    "open_input",
    "parse_lines",
    "read_input",
    "read_items",
]

GATEWAY_COLUMN = "VpnGatewayId"
CONNECTION_COLUMN = "VpnConnectionId"
REGION_COLUMN = "Region"
_REGION_SHAPE = re.compile(r"[a-z]{2}-[a-z0-9]+(?:-[a-z0-9]+)*")
"""What a region newer than tcvpc's list must still look like (``ap-guangzhou``, ``ap-x-fsi``)."""

DEFAULT_MAX_LINE_BYTES = 64 * 1024
"""Real lines are about 40 bytes; the bound only stops a runaway line from costing memory."""

_EXCERPT = 120
_CHUNK = 64 * 1024
_BOM = b"\xef\xbb\xbf"


class InputError(Exception):
    """The input cannot be read at all (missing, a directory, no permission, not UTF-8...)."""


@dataclass(frozen=True, slots=True)
class TunnelLine:
    """A usable input line: the tunnel it names and where it was."""

    line: int
    tunnel: TunnelRef
    region: str | None = None
    """The line's ``Region``; ``None``: the job's default region."""


@dataclass(frozen=True, slots=True)
class InvalidLine:
    """An unusable input line: reported with the outcome ``invalid``, never sent."""

    line: int
    reason: str


SourceItem = TunnelLine | InvalidLine


def open_input(path: str | Path) -> BinaryIO:
    """Open ``path`` (``-`` is stdin) for streaming, or raise :class:`InputError` now.

    A closed stdin, or stdin on ``/dev/null`` (what cron and systemd give a job by default), is
    an error: it is never an empty list, and never a reason to discover tunnels instead.
    """
    if str(path) == "-":
        return _stdin()
    p = Path(path)
    try:
        return p.open("rb")
    except FileNotFoundError:
        raise InputError(f"input file not found: {p}") from None
    except IsADirectoryError:
        raise InputError(f"input is a directory, not a file: {p}") from None
    except OSError as exc:
        raise InputError(f"cannot read input file {p}: {exc.strerror or exc}") from None


def _stdin() -> BinaryIO:
    hint = "pipe the tunnels in, or give --input FILE"
    stream = sys.stdin
    if stream is None or stream.closed:  # None: file descriptor 0 was closed at startup
        raise InputError(f"--input -: stdin is closed; {hint}")
    try:
        info = os.fstat(stream.fileno())
    except (OSError, ValueError) as exc:
        if not isinstance(exc, io.UnsupportedOperation):  # not a real file: nothing to check
            raise InputError(f"--input -: stdin is closed; {hint}") from None
    else:
        if stat.S_ISCHR(info.st_mode) and _is_dev_null(info):
            raise InputError(f"--input -: stdin is /dev/null (a cron or systemd job?); {hint}")
    return stream.buffer


def _is_dev_null(info: os.stat_result) -> bool:
    try:
        null = os.stat(os.devnull)
    except OSError:
        return False
    return info.st_rdev == null.st_rdev


def read_input(
    path: str | Path, *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES, any_region: bool = False
) -> Iterator[SourceItem]:
    """Open ``path`` immediately (errors surface here) and stream its items."""
    stream = open_input(path)
    return _read_and_close(stream, max_line_bytes, any_region, close=str(path) != "-")


def _read_and_close(
    stream: BinaryIO, max_line_bytes: int, any_region: bool, *, close: bool
) -> Iterator[SourceItem]:
    try:
        yield from read_items(stream, max_line_bytes=max_line_bytes, any_region=any_region)
    except OSError as exc:  # e.g. EIO halfway through: the rest cannot be read
        raise InputError(f"error while reading input: {exc.strerror or exc}") from None
    finally:
        if close:
            stream.close()


@dataclass(frozen=True, slots=True)
class _Unreadable:
    """A line that never became text: too long, not UTF-8, a NUL byte."""

    reason: str


class LineDigests:
    """One digest per physical input line, in order: what a journal binds a rerun to.

    :func:`read_items` feeds it as lines stream by (a line's digest is added before the line's
    item is yielded, an over-long line is hashed as it is skipped), and the journal takes the
    digests in batches (:meth:`take`), so memory stays bounded. A digest covers the line's bytes
    without its ``\\n``: a last line that gains its newline is unchanged, one that gains text is
    changed.
    """

    def __init__(self) -> None:
        self.count = 0
        """Lines seen so far (the last digest's line number)."""
        self._pending: list[tuple[int, bytes]] = []

    @staticmethod
    def new_hash() -> hashlib.blake2b:
        return hashlib.blake2b(digest_size=16)

    def add(self, digest: bytes) -> None:
        self.count += 1
        self._pending.append((self.count, digest))

    def take(self) -> list[tuple[int, bytes]]:
        """``(line, digest)`` pairs added since the last call."""
        taken, self._pending = self._pending, []
        return taken


def read_items(
    stream: BinaryIO,
    *,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    digests: LineDigests | None = None,
    any_region: bool = False,
) -> Iterator[SourceItem]:
    """Stream the items of a binary input; any bytes give items or invalid lines, never a crash.

    Only ``OSError`` from the stream itself escapes (the rest of the input cannot be read).
    ``digests`` receives a digest of every line (blank and comment lines too) as it is read.
    """
    if max_line_bytes < 1:
        raise ValueError("max_line_bytes must be >= 1")
    return _parse(_decode(_raw_lines(stream, max_line_bytes, digests), max_line_bytes), any_region)


def _raw_lines(
    stream: BinaryIO, limit: int, digests: LineDigests | None = None
) -> Iterator[bytes | None]:
    """Lines without their ``\\n``; ``None`` for a line over ``limit`` bytes (never kept whole)."""
    read = getattr(stream, "read1", stream.read)  # read1: a pipe's lines as they come
    line = bytearray()
    too_long = False
    digest = LineDigests.new_hash() if digests is not None else None
    pending = False  # bytes of a line not yet ended (it may be the unterminated last one)
    while chunk := read(_CHUNK):
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            if not too_long:
                line += chunk[start:end]
            if digests is not None and digest is not None:
                digest.update(chunk[start:end])
                digests.add(digest.digest())
                digest = LineDigests.new_hash()
            yield None if too_long or len(line) > limit else bytes(line)
            line.clear()
            too_long = False
            pending = False
            start = end + 1
        if digest is not None and start < len(chunk):
            digest.update(chunk[start:])
        pending = pending or start < len(chunk)
        if not too_long:
            line += chunk[start:]
            if len(line) > limit:
                too_long = True  # drop it now; the rest of the line is skipped as it comes
                line.clear()
    if not pending:
        return
    if digests is not None and digest is not None:
        digests.add(digest.digest())
    if too_long:
        yield None
    elif line:
        yield bytes(line)


def _decode(lines: Iterable[bytes | None], limit: int) -> Iterator[str | _Unreadable]:
    first = True
    for raw in lines:
        if raw is None:
            yield _Unreadable(f"line longer than {limit} bytes (--max-line-bytes); skipped")
        else:
            if first and raw.startswith(_BOM):
                raw = raw[len(_BOM) :]
            if b"\0" in raw:
                yield _Unreadable("contains a NUL byte")
            else:
                try:
                    yield raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    yield _Unreadable(
                        f"not UTF-8 (byte {raw[exc.start]:#04x} at column {exc.start + 1})"
                    )
        first = False


def parse_lines(lines: Iterable[str], *, any_region: bool = False) -> Iterator[SourceItem]:
    """Turn text lines into items, numbering lines from 1 (blank and ``#`` lines count too)."""
    return _parse(lines, any_region)


@dataclass(frozen=True, slots=True)
class _Columns:
    """Where a CSV header put the columns."""

    gateway: int
    connection: int
    region: int | None


def _parse(lines: Iterable[str | _Unreadable], any_region: bool) -> Iterator[SourceItem]:
    columns: _Columns | None = None
    seen_data = False
    for number, raw in enumerate(lines, start=1):
        if isinstance(raw, _Unreadable):
            seen_data = True
            yield InvalidLine(number, raw.reason)
            continue
        text = raw.strip().lstrip("\ufeff")
        if not text or text.startswith("#"):
            continue
        if "\0" in text:
            seen_data = True
            yield InvalidLine(number, "contains a NUL byte")
            continue
        if text.startswith("{"):
            seen_data = True
            yield _parse_json(number, text, any_region)
            continue
        fields = _split_csv(text)
        if not seen_data and columns is None:
            header = _header_columns(fields)
            if header is not None:
                columns = header
                continue
        seen_data = True
        yield _parse_csv(number, fields, columns, text, any_region)


def _split_csv(text: str) -> list[str]:
    try:
        row = next(csv.reader([text]), [])
    except csv.Error:
        row = text.split(",")
    return [f.strip() for f in row]


def _header_columns(fields: Sequence[str]) -> _Columns | None:
    lowered = [f.lower() for f in fields]
    try:
        gateway = lowered.index(GATEWAY_COLUMN.lower())
        connection = lowered.index(CONNECTION_COLUMN.lower())
    except ValueError:
        return None
    region = lowered.index(REGION_COLUMN.lower()) if REGION_COLUMN.lower() in lowered else None
    return _Columns(gateway, connection, region)


def _excerpt(text: str) -> str:
    return text if len(text) <= _EXCERPT else text[: _EXCERPT - 3] + "..."


def _parse_csv(
    number: int, fields: Sequence[str], columns: _Columns | None, text: str, any_region: bool
) -> SourceItem:
    region: str | None = None
    if columns is None:
        if len(fields) != 2:
            return InvalidLine(
                number,
                f"expected 2 columns {GATEWAY_COLUMN},{CONNECTION_COLUMN}, "
                f"got {len(fields)}: {_excerpt(text)!r}",
            )
        gateway, connection = fields
    else:
        if max(columns.gateway, columns.connection) >= len(fields):
            return InvalidLine(number, f"missing columns: {_excerpt(text)!r}")
        gateway, connection = fields[columns.gateway], fields[columns.connection]
        if columns.region is not None and columns.region < len(fields):
            region = fields[columns.region] or None  # an empty cell: the default region
    return _validate(number, gateway, connection, region, any_region)


def _parse_json(number: int, text: str, any_region: bool) -> SourceItem:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        return InvalidLine(number, f"not valid JSON ({exc.msg}): {_excerpt(text)!r}")
    except RecursionError:
        return InvalidLine(number, "not valid JSON (nested too deep)")
    except ValueError as exc:  # e.g. an integer too long to convert
        return InvalidLine(number, f"not valid JSON ({_excerpt(str(exc))})")
    if not isinstance(obj, dict):
        return InvalidLine(number, "a JSON line must be an object")
    gateway = obj.get(GATEWAY_COLUMN)
    connection = obj.get(CONNECTION_COLUMN)
    if not isinstance(gateway, str) or not isinstance(connection, str):
        return InvalidLine(
            number, f"a JSON line needs string keys {GATEWAY_COLUMN} and {CONNECTION_COLUMN}"
        )
    region = obj.get(REGION_COLUMN)
    if region is not None and not isinstance(region, str):
        return InvalidLine(number, f"{REGION_COLUMN} must be a string")
    region = region.strip() if region else None
    return _validate(number, gateway.strip(), connection.strip(), region or None, any_region)


def _validate(
    number: int, gateway: str, connection: str, region: str | None, any_region: bool
) -> SourceItem:
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
    if region is not None and not (
        is_known_region(region) or (any_region and _REGION_SHAPE.fullmatch(region))
    ):
        hint = (
            "not a region name" if any_region else "unknown region (--any-region lets it through)"
        )
        return InvalidLine(number, f"{REGION_COLUMN} {_excerpt(region)!r}: {hint}")
    return TunnelLine(number, TunnelRef(gateway, connection), region)


def _chunks(values: Sequence[str], size: int) -> list[list[str]]:
    unique = list(dict.fromkeys(values))
    return [unique[i : i + size] for i in range(0, len(unique), size)] or [[]]


async def discover(
    client: CleanupClient,
    *,
    gateways: Sequence[str] = (),
    vpcs: Sequence[str] = (),
    name_prefix: str | None = None,
    retry_policy: RetryPolicy | None = None,
) -> AsyncIterator[SourceItem]:
    """Stream the tunnels matching the filters (AND across kinds, OR within one kind).

    The API matches ``vpn-connection-name`` exactly, so the name prefix is applied here. Tunnels
    already ``DELETING`` are skipped: they are on their way out and a delete would be refused.
    A tunnel listed twice (pages shifting under deletions) is caught later by the journal's
    duplicate check. Items are numbered in discovery order, as if they were lines.

    At least one non-empty filter is required: discovery never lists "every tunnel".
    ``retry_policy`` is passed to every Describe call (default: the client's).
    """
    if not (gateways or vpcs or name_prefix) or any(
        not v.strip() for v in (*gateways, *vpcs, name_prefix or "x")
    ):
        raise ValueError("discovery needs a non-empty gateway, VPC or name-prefix filter")
    number = 0
    for gateway_chunk in _chunks(gateways, MAX_FILTER_VALUES):
        for vpc_chunk in _chunks(vpcs, MAX_FILTER_VALUES):
            filters: dict[str, list[str]] = {}
            if gateway_chunk:
                filters["vpn-gateway-id"] = gateway_chunk
            if vpc_chunk:
                filters["vpc-id"] = vpc_chunk
            listing = client.describe_vpn_connections(
                filters=filters or None, retry_policy=retry_policy
            )
            async for conn in listing:
                if name_prefix and not conn.name.startswith(name_prefix):
                    continue
                if conn.state is TunnelState.DELETING:
                    continue
                number += 1
                yield TunnelLine(number, conn.ref)
