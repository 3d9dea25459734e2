"""The emulated VPC's data and rules: tunnels, their state machine and the gateways' mutex.

Pure Python without I/O: operations take the monotonic time (or read the injected clock), so
tests drive it with a fake clock. Built for large accounts: deletion deadlines expire lazily from
a heap, listings page through a Fenwick-indexed insertion order, counts by state are kept as they
change.

    AVAILABLE --delete--> DELETING --delete_seconds--> (gone)
    delete on PENDING / DELETING --> UnsupportedOperation.DeleteVpnConnInvalidState

A delete holds the gateway's mutex for ``mutex_seconds`` (another delete there meanwhile gets
``UnsupportedOperation.MutexOperationTaskRunning``). Checks run in this order: malformed IDs,
existence and ownership, tunnel state, gateway mutex.
"""

from __future__ import annotations

import heapq
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from tcvpc.emulator.errors import EmuStateError

__all__ = [
    "FILTER_NAMES",
    "GATEWAY_ID_RE",
    "TUNNEL_ID_RE",
    "EmuStateError",
    "EmuTunnelState",
    "Tunnel",
    "VpcState",
]

TUNNEL_ID_RE = re.compile(r"^vpnx-[a-z0-9]{8}$")
GATEWAY_ID_RE = re.compile(r"^vpngw-[a-z0-9]{8}$")

FILTER_NAMES = frozenset(
    {"vpc-id", "vpn-gateway-id", "customer-gateway-id", "vpn-connection-name", "vpn-connection-id"}
)


class EmuTunnelState(StrEnum):
    PENDING = "PENDING"
    AVAILABLE = "AVAILABLE"
    DELETING = "DELETING"


@dataclass(slots=True, eq=False)
class Tunnel:
    """One VPN connection. Mutable (its state changes); compare by identity."""

    tunnel_id: str
    gateway_id: str
    vpc_id: str
    name: str
    customer_gateway_id: str
    created_at: int  # Unix seconds; rendered as Beijing time, as the real API does
    state: EmuTunnelState = EmuTunnelState.AVAILABLE
    tags: tuple[tuple[str, str], ...] = ()
    seq: int = field(default=-1, repr=False)  # position in the account-wide index
    gpos: int = field(default=-1, repr=False)  # position in the gateway's index
    gone: bool = field(default=False, repr=False)

    def as_dict(self) -> dict[str, object]:
        """A plain snapshot (for tests and debugging)."""
        return {
            "id": self.tunnel_id,
            "gateway": self.gateway_id,
            "vpc": self.vpc_id,
            "name": self.name,
            "customer_gateway": self.customer_gateway_id,
            "state": str(self.state),
            "created_at": self.created_at,
            "tags": dict(self.tags),
        }


class _OrderedIndex:
    """Tunnels in insertion order with O(log n) "the k-th live one" lookups.

    ``_tree`` is a 1-based Fenwick tree over live flags. Removed slots become ``None`` and are
    compacted away once they outnumber the live ones, so memory follows the live count.
    """

    __slots__ = ("_items", "_live", "_pos_attr", "_tree")

    def __init__(self, pos_attr: str) -> None:
        self._items: list[Tunnel | None] = []
        self._tree: list[int] = [0]
        self._live = 0
        self._pos_attr = pos_attr

    def __len__(self) -> int:
        return self._live

    def append(self, tunnel: Tunnel) -> None:
        i = len(self._tree)  # 1-based position of the new item
        total = 1
        j = i - 1
        stop = i - (i & -i)
        tree = self._tree
        while j > stop:
            total += tree[j]
            j -= j & -j
        tree.append(total)
        self._items.append(tunnel)
        setattr(tunnel, self._pos_attr, i - 1)
        self._live += 1

    def extend(self, tunnels: Sequence[Tunnel]) -> None:
        """Append many at once: O(n) tree build instead of n O(log n) appends."""
        if not tunnels:
            return
        if self._items:
            for tunnel in tunnels:
                self.append(tunnel)
            return
        if self._pos_attr == "seq":
            for i, tunnel in enumerate(tunnels):
                tunnel.seq = i
        else:
            for i, tunnel in enumerate(tunnels):
                tunnel.gpos = i
        self._items = list(tunnels)
        n = len(tunnels)
        tree = [0] + [1] * n
        for i in range(1, n + 1):
            parent = i + (i & -i)
            if parent <= n:
                tree[parent] += tree[i]
        self._tree = tree
        self._live = n

    def remove(self, tunnel: Tunnel) -> None:
        pos: int = getattr(tunnel, self._pos_attr)
        if pos < 0 or pos >= len(self._items) or self._items[pos] is not tunnel:
            return
        self._items[pos] = None
        self._live -= 1
        i = pos + 1
        tree = self._tree
        n = len(tree) - 1
        while i <= n:
            tree[i] -= 1
            i += i & -i
        dead = len(self._items) - self._live
        if dead > 1024 and dead > self._live:
            self._compact()

    def _compact(self) -> None:
        live = [t for t in self._items if t is not None]
        self._items = []
        self._tree = [0]
        self._live = 0
        for tunnel in live:
            self.append(tunnel)

    def _find(self, k: int) -> int:
        """0-based slot of the (k+1)-th live item; requires ``k < len(self)``."""
        tree = self._tree
        n = len(tree) - 1
        pos = 0
        remaining = k + 1
        step = 1 << n.bit_length()
        while step:
            nxt = pos + step
            if nxt <= n and tree[nxt] < remaining:
                pos = nxt
                remaining -= tree[nxt]
            step >>= 1
        return pos  # 1-based pos + 1 is the answer; as 0-based that is ``pos``

    def page(self, offset: int, limit: int) -> list[Tunnel]:
        if offset >= self._live or limit <= 0:
            return []
        out: list[Tunnel] = []
        items = self._items
        slot = self._find(offset)
        end = len(items)
        while slot < end and len(out) < limit:
            item = items[slot]
            if item is not None:
                out.append(item)
            slot += 1
        return out

    def __iter__(self) -> Iterator[Tunnel]:
        return (t for t in self._items if t is not None)


class VpcState:
    """All tunnels of one emulated account, with their deletion timers and gateway mutexes."""

    def __init__(
        self,
        *,
        delete_seconds: float = 1.0,
        mutex_seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.delete_seconds = delete_seconds
        self.mutex_seconds = delete_seconds if mutex_seconds is None else mutex_seconds
        self._clock = clock
        self._tunnels: dict[str, Tunnel] = {}
        self._all = _OrderedIndex("seq")
        self._by_gateway: dict[str, _OrderedIndex] = {}
        self._gateways_by_vpc: dict[str, set[str]] = {}
        self._deadlines: list[tuple[float, int, Tunnel]] = []
        self._heap_seq = 0
        self._mutex_until: dict[str, float] = {}
        self._counts: dict[EmuTunnelState, int] = dict.fromkeys(EmuTunnelState, 0)
        self.deleted_total = 0  # tunnels that finished deleting and disappeared

    # -- bookkeeping -------------------------------------------------------------------------

    def now(self) -> float:
        return self._clock()

    def __len__(self) -> int:
        self.expire()
        return len(self._tunnels)

    def add_tunnel(
        self,
        tunnel_id: str,
        gateway_id: str,
        *,
        vpc_id: str,
        name: str | None = None,
        customer_gateway_id: str = "cgw-00000000",
        created_at: int | None = None,
        state: EmuTunnelState | str = EmuTunnelState.AVAILABLE,
        tags: Mapping[str, str] | Iterable[tuple[str, str]] = (),
    ) -> Tunnel:
        """Add a tunnel; IDs must look real and be unused (``ValueError`` otherwise)."""
        if not TUNNEL_ID_RE.match(tunnel_id):
            raise ValueError(f"malformed tunnel id {tunnel_id!r} (want vpnx- + 8 [a-z0-9])")
        if not GATEWAY_ID_RE.match(gateway_id):
            raise ValueError(f"malformed gateway id {gateway_id!r} (want vpngw- + 8 [a-z0-9])")
        self.expire()
        if tunnel_id in self._tunnels:
            raise ValueError(f"tunnel {tunnel_id} already exists")
        tag_pairs = tuple(tags.items()) if isinstance(tags, Mapping) else tuple(tags)
        tunnel = Tunnel(
            tunnel_id=tunnel_id,
            gateway_id=gateway_id,
            vpc_id=vpc_id,
            name=tunnel_id if name is None else name,
            customer_gateway_id=customer_gateway_id,
            created_at=int(time.time()) if created_at is None else created_at,
            state=EmuTunnelState(state),
            tags=tag_pairs,
        )
        self._tunnels[tunnel_id] = tunnel
        self._all.append(tunnel)
        index = self._by_gateway.get(gateway_id)
        if index is None:
            index = self._by_gateway[gateway_id] = _OrderedIndex("gpos")
        index.append(tunnel)
        self._gateways_by_vpc.setdefault(vpc_id, set()).add(gateway_id)
        self._counts[tunnel.state] += 1
        if tunnel.state is EmuTunnelState.DELETING:
            self._schedule_removal(tunnel, self._clock())
        return tunnel

    def add_many(self, tunnels: Iterable[Tunnel]) -> int:
        """Bulk-add tunnels built by the caller: one index build instead of one insert per tunnel.

        IDs are checked like :meth:`add_tunnel` does; returns how many were added.
        """
        self.expire()
        batch = list(tunnels)
        known = self._tunnels
        by_gateway: dict[str, list[Tunnel]] = {}
        match_tunnel = TUNNEL_ID_RE.match
        match_gateway = GATEWAY_ID_RE.match
        for tunnel in batch:
            tunnel_id = tunnel.tunnel_id
            if not match_tunnel(tunnel_id):
                raise ValueError(f"malformed tunnel id {tunnel_id!r} (want vpnx- + 8 [a-z0-9])")
            if tunnel_id in known:
                raise ValueError(f"tunnel {tunnel_id} already exists")
            group = by_gateway.get(tunnel.gateway_id)
            if group is None:
                if not match_gateway(tunnel.gateway_id):
                    raise ValueError(
                        f"malformed gateway id {tunnel.gateway_id!r} (want vpngw- + 8 [a-z0-9])"
                    )
                group = by_gateway[tunnel.gateway_id] = []
            group.append(tunnel)
            known[tunnel_id] = tunnel
        self._all.extend(batch)
        for gateway_id, group in by_gateway.items():
            index = self._by_gateway.get(gateway_id)
            if index is None:
                index = self._by_gateway[gateway_id] = _OrderedIndex("gpos")
            index.extend(group)
            for vpc_id in {t.vpc_id for t in group}:
                self._gateways_by_vpc.setdefault(vpc_id, set()).add(gateway_id)
        now = self._clock()
        counts = self._counts
        for tunnel in batch:
            counts[tunnel.state] += 1
        for tunnel in batch:
            if tunnel.state is EmuTunnelState.DELETING:
                self._schedule_removal(tunnel, now)
        return len(batch)

    def set_state(self, tunnel_id: str, state: EmuTunnelState | str) -> None:
        """Force a tunnel's state (tests: e.g. make one ``PENDING``)."""
        tunnel = self._tunnels[tunnel_id]
        new = EmuTunnelState(state)
        if new is tunnel.state:
            return
        self._counts[tunnel.state] -= 1
        self._counts[new] += 1
        tunnel.state = new
        if new is EmuTunnelState.DELETING:
            self._schedule_removal(tunnel, self._clock())

    def _schedule_removal(self, tunnel: Tunnel, now: float) -> None:
        if self.delete_seconds <= 0:
            self._remove(tunnel)
            return
        self._heap_seq += 1
        heapq.heappush(self._deadlines, (now + self.delete_seconds, self._heap_seq, tunnel))

    def _remove(self, tunnel: Tunnel) -> None:
        if tunnel.gone:
            return
        tunnel.gone = True
        del self._tunnels[tunnel.tunnel_id]
        self._all.remove(tunnel)
        index = self._by_gateway[tunnel.gateway_id]
        index.remove(tunnel)
        if not index:
            del self._by_gateway[tunnel.gateway_id]
        self._counts[tunnel.state] -= 1
        self.deleted_total += 1

    def expire(self, now: float | None = None) -> None:
        """Let every tunnel whose ``DELETING`` time is over disappear."""
        heap = self._deadlines
        if not heap:
            return
        if now is None:
            now = self._clock()
        while heap and heap[0][0] <= now:
            _, _, tunnel = heapq.heappop(heap)
            if tunnel.state is EmuTunnelState.DELETING:
                self._remove(tunnel)

    def get(self, tunnel_id: str) -> Tunnel | None:
        self.expire()
        return self._tunnels.get(tunnel_id)

    def tunnels(self) -> list[Tunnel]:
        """Every tunnel still listed, in insertion order (a snapshot list)."""
        self.expire()
        return list(self._all)

    def counts(self) -> dict[str, int]:
        """Tunnels by state, plus ``total``."""
        self.expire()
        out = {str(state): n for state, n in self._counts.items()}
        out["total"] = len(self._tunnels)
        return out

    # -- actions -----------------------------------------------------------------------------

    def delete(self, gateway_id: str, tunnel_id: str, now: float | None = None) -> Tunnel:
        """``DeleteVpnConnection``: start deleting a tunnel or raise :class:`EmuStateError`."""
        if not GATEWAY_ID_RE.match(gateway_id):
            raise EmuStateError(
                "InvalidParameterValue.Malformed",
                f"The value of VpnGatewayId `{gateway_id}` is malformed.",
            )
        if not TUNNEL_ID_RE.match(tunnel_id):
            raise EmuStateError(
                "InvalidParameterValue.Malformed",
                f"The value of VpnConnectionId `{tunnel_id}` is malformed.",
            )
        if now is None:
            now = self._clock()
        self.expire(now)
        tunnel = self._tunnels.get(tunnel_id)
        if tunnel is None or tunnel.gateway_id != gateway_id:
            raise EmuStateError(
                "ResourceNotFound",
                f"The resource `{tunnel_id}` of VPN gateway `{gateway_id}` does not exist.",
            )
        if tunnel.state is not EmuTunnelState.AVAILABLE:
            raise EmuStateError(
                "UnsupportedOperation.DeleteVpnConnInvalidState",
                f"The VPN connection `{tunnel_id}` is {tunnel.state}: it cannot be deleted now.",
            )
        if self._mutex_until.get(gateway_id, 0.0) > now:
            raise EmuStateError(
                "UnsupportedOperation.MutexOperationTaskRunning",
                f"A mutually exclusive task is running on VPN gateway `{gateway_id}`.",
            )
        self._counts[tunnel.state] -= 1
        tunnel.state = EmuTunnelState.DELETING
        self._counts[tunnel.state] += 1
        if self.mutex_seconds > 0:
            self._mutex_until[gateway_id] = now + self.mutex_seconds
        self._schedule_removal(tunnel, now)
        return tunnel

    def describe(
        self,
        *,
        ids: Sequence[str] | None = None,
        filters: Mapping[str, Sequence[str]] | None = None,
        offset: int = 0,
        limit: int = 20,
        strict_ids: bool = True,
    ) -> tuple[int, list[Tunnel]]:
        """``DescribeVpnConnections`` after parameter validation: ``(TotalCount, page)``.

        ``filters`` maps a filter name to its values: values of one name are OR-ed, names are
        AND-ed. Unknown names raise ``InvalidParameter.FilterInvalidKey``.
        """
        self.expire()
        if ids is not None:
            return self._describe_ids(ids, offset, limit, strict_ids)
        if not filters:
            return len(self._all), self._all.page(offset, limit)
        for name in filters:
            if name not in FILTER_NAMES:
                raise EmuStateError(
                    "InvalidParameter.FilterInvalidKey",
                    f"The filter key `{name}` is invalid.",
                )
        wanted = {name: frozenset(values) for name, values in filters.items()}
        candidates: Iterable[Tunnel]
        residual = dict(wanted)
        if "vpn-connection-id" in wanted:
            residual.pop("vpn-connection-id")
            found = (self._tunnels.get(i) for i in wanted["vpn-connection-id"])
            candidates = sorted((t for t in found if t is not None), key=_by_seq)
        elif "vpn-gateway-id" in wanted:
            residual.pop("vpn-gateway-id")
            gateways = [g for g in wanted["vpn-gateway-id"] if g in self._by_gateway]
            if len(gateways) == 1 and not residual:
                index = self._by_gateway[gateways[0]]
                return len(index), index.page(offset, limit)
            candidates = sorted(
                (t for g in gateways for t in self._by_gateway[g]),
                key=_by_seq,
            )
        elif "vpc-id" in wanted:
            gateways = sorted(
                {g for v in wanted["vpc-id"] for g in self._gateways_by_vpc.get(v, ())}
            )
            candidates = sorted(
                (t for g in gateways if g in self._by_gateway for t in self._by_gateway[g]),
                key=_by_seq,
            )
        else:
            candidates = self._all
        matched = [t for t in candidates if _matches(t, residual)]
        return len(matched), matched[offset : offset + limit]

    def _describe_ids(
        self, ids: Sequence[str], offset: int, limit: int, strict: bool
    ) -> tuple[int, list[Tunnel]]:
        found: list[Tunnel] = []
        seen: set[str] = set()
        for tunnel_id in ids:
            if not TUNNEL_ID_RE.match(tunnel_id):
                raise EmuStateError(
                    "InvalidParameterValue.Malformed",
                    f"The value of VpnConnectionIds `{tunnel_id}` is malformed.",
                )
            if tunnel_id in seen:
                continue
            seen.add(tunnel_id)
            tunnel = self._tunnels.get(tunnel_id)
            if tunnel is None:
                if strict:
                    raise EmuStateError(
                        "ResourceNotFound", f"The resource `{tunnel_id}` does not exist."
                    )
                continue
            found.append(tunnel)
        return len(found), found[offset : offset + limit]


def _by_seq(tunnel: Tunnel) -> int:
    return tunnel.seq


_FIELD_OF_FILTER: dict[str, Callable[[Tunnel], str]] = {
    "vpc-id": lambda t: t.vpc_id,
    "vpn-gateway-id": lambda t: t.gateway_id,
    "customer-gateway-id": lambda t: t.customer_gateway_id,
    "vpn-connection-name": lambda t: t.name,
    "vpn-connection-id": lambda t: t.tunnel_id,
}


def _matches(tunnel: Tunnel, wanted: Mapping[str, frozenset[str]]) -> bool:
    return all(_FIELD_OF_FILTER[name](tunnel) in values for name, values in wanted.items())
