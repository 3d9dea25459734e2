"""Initial tunnels: generated from a seed, or read from a CSV / JSON-lines file.

Generated IDs look like real ones (``vpngw-``/``vpnx-``/``vpc-``/``cgw-`` + 8 lowercase letters
or digits) and come from a ``random.Random`` seeded with the emulator's seed, so the same seed
gives the same account on every run (tests and benchmarks can name tunnels in advance).
"""

from __future__ import annotations

import csv
import gc
import json
import random
from collections.abc import Iterable, Iterator
from pathlib import Path

from tcvpc.emulator.state import EmuTunnelState, Tunnel, VpcState

__all__ = ["generate", "load_file", "populate", "random_id"]

_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
_BASE_CREATED_AT = 1_656_000_000  # 2022-06-23: seeded tunnels were "created" after this


# Maps every byte to one of the 36 characters: a 256/36 bias is of no concern for fake IDs, and
# ``randbytes(8).translate(...)``: one call per ID instead of eight ``choices`` draws.
_BYTE_TO_CHAR = bytes((_ALPHABET[b % len(_ALPHABET)]).encode()[0] for b in range(256))


def random_id(rng: random.Random, prefix: str) -> str:
    return prefix + rng.randbytes(8).translate(_BYTE_TO_CHAR).decode("ascii")


def generate(gateways: int, tunnels_per_gateway: int, seed: int) -> Iterator[Tunnel]:
    """``gateways`` x ``tunnels_per_gateway`` AVAILABLE tunnels, each gateway in its own VPC.

    Built for large accounts: IDs come 8 random bytes at a time from one
    ``randbytes`` call per gateway.
    """
    rng = random.Random(f"tcvpc-emulator-ids:{seed}")
    used: set[str] = set()

    def fresh(prefix: str) -> str:
        while True:
            candidate = random_id(rng, prefix)
            if candidate not in used:
                used.add(candidate)
                return candidate

    available = EmuTunnelState.AVAILABLE
    for g in range(gateways):
        gateway_id = fresh("vpngw-")
        vpc_id = fresh("vpc-")
        customer_gateway_id = fresh("cgw-")
        created = _BASE_CREATED_AT + rng.randrange(0, 365 * 86_400)
        chars = rng.randbytes(8 * tunnels_per_gateway).translate(_BYTE_TO_CHAR).decode("ascii")
        for t in range(tunnels_per_gateway):
            tunnel_id = "vpnx-" + chars[8 * t : 8 * t + 8]
            if tunnel_id in used:
                tunnel_id = fresh("vpnx-")
            else:
                used.add(tunnel_id)
            yield Tunnel(
                tunnel_id,
                gateway_id,
                vpc_id,
                f"tunnel-{g:04d}-{t:04d}",
                customer_gateway_id,
                created + 60 * t,
                available,
            )


_KEYS = ("VpnGatewayId", "VpnConnectionId", "VpcId", "VpnConnectionName", "State")


def _spec_from_row(row: dict[str, object], where: str, vpcs: dict[str, str]) -> Tunnel:
    def text(key: str) -> str:
        value = row.get(key)
        return "" if value is None else str(value).strip()

    gateway_id = text("VpnGatewayId")
    tunnel_id = text("VpnConnectionId")
    if not gateway_id or not tunnel_id:
        raise ValueError(f"{where}: VpnGatewayId and VpnConnectionId are required")
    vpc_id = text("VpcId")
    if not vpc_id:  # one stable made-up VPC per gateway
        vpc_id = vpcs.setdefault(gateway_id, "vpc-" + gateway_id.removeprefix("vpngw-"))
    state_text = text("State").upper() or EmuTunnelState.AVAILABLE.value
    try:
        state = EmuTunnelState(state_text)
    except ValueError:
        raise ValueError(f"{where}: unknown State {state_text!r}") from None
    return Tunnel(
        tunnel_id=tunnel_id,
        gateway_id=gateway_id,
        vpc_id=vpc_id,
        name=text("VpnConnectionName") or tunnel_id,
        customer_gateway_id="cgw-" + gateway_id.removeprefix("vpngw-"),
        created_at=_BASE_CREATED_AT,
        state=state,
    )


def load_file(path: Path) -> Iterator[Tunnel]:
    """Tunnels from a CSV file with a header row, or JSON lines (one object per line).

    The format is sniffed from the first non-blank character: ``{`` means JSON lines.
    Columns/keys: ``VpnGatewayId``, ``VpnConnectionId`` (required), ``VpcId``,
    ``VpnConnectionName``, ``State`` (``PENDING``/``AVAILABLE``/``DELETING``; default AVAILABLE).
    """
    vpcs: dict[str, str] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        first = ""
        while True:
            pos = handle.tell()
            line = handle.readline()
            if not line:
                break
            if line.strip():
                first = line.lstrip()[0]
                handle.seek(pos)
                break
        if first == "{":
            for lineno, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{lineno}: not JSON: {exc}") from None
                if not isinstance(row, dict):
                    raise ValueError(f"{path}:{lineno}: expected a JSON object")
                yield _spec_from_row(row, f"{path}:{lineno}", vpcs)
        elif first:
            reader = csv.DictReader(handle)
            fieldnames = reader.fieldnames or []
            unknown = set(fieldnames) - set(_KEYS)
            if unknown:
                raise ValueError(f"{path}: unknown CSV columns {sorted(unknown)}; known: {_KEYS}")
            for row in reader:
                yield _spec_from_row(dict(row), f"{path}:{reader.line_num}", vpcs)


def populate(state: VpcState, tunnels: Iterable[Tunnel]) -> int:
    """Add every spec to ``state`` in one bulk load; return how many.

    The cyclic GC is paused meanwhile: the new objects hold no cycles, so the full collections
    their number would trigger find nothing.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return state.add_many(tunnels)
    finally:
        if was_enabled:
            gc.enable()
