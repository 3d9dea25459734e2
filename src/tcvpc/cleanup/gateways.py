"""The engine's ready queue: gateways with work and a free slot, busiest first.

A gateway's deletes are serialised by its mutex (``per_gateway`` slots, 1 by default). Among the
gateways with a free slot, the one with the most tunnels left goes first: its serial chain is the
job's critical path (longest-processing-time first). A gateway whose next tunnel is not due yet
(a requeued one) is parked until then.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Gateway", "GatewayQueue"]


@dataclass(eq=False)
class Gateway:
    gateway_id: str
    remaining: int
    """Tunnels of this gateway still queued (not taken by a worker)."""
    busy: int = 0
    queued: bool = False
    parked: bool = False


class GatewayQueue:
    """Which gateway takes the next worker; ``wake`` is called whenever one may be ready."""

    def __init__(self, per_gateway: int, wake: Callable[[], None]) -> None:
        self._per_gateway = per_gateway
        self._wake = wake
        self._ready: list[tuple[int, int, Gateway]] = []
        self._seq = itertools.count()
        self._timers: set[asyncio.TimerHandle] = set()
        self.remaining = 0
        """Tunnels queued across all gateways."""

    def add(self, gateway_id: str, pending: int) -> None:
        gw = Gateway(gateway_id, pending)
        self.remaining += pending
        self._push(gw)

    def pop(self) -> Gateway | None:
        """The busiest gateway with a free slot, or None."""
        while self._ready:
            _, _, gw = heapq.heappop(self._ready)
            gw.queued = False
            if gw.remaining > 0 and gw.busy < self._per_gateway and not gw.parked:
                return gw
        return None

    def take(self, gw: Gateway) -> None:
        """A worker took one of the gateway's tunnels (its slot is busy until :meth:`release`)."""
        gw.busy += 1
        gw.remaining -= 1
        self.remaining -= 1
        self._push(gw)

    def release(self, gw: Gateway) -> None:
        """The gateway's slot is free again."""
        gw.busy -= 1
        self._push(gw)
        self._wake()

    def put_back(self, gw: Gateway) -> None:
        """The taken tunnel is queued again (requeued, or the job stopped before its turn)."""
        gw.remaining += 1
        self.remaining += 1

    def drop(self, gw: Gateway) -> None:
        """The journal has nothing more for this gateway: trust it over the counts."""
        self.remaining -= gw.remaining
        gw.remaining = 0

    def park(self, gw: Gateway, delay: float) -> None:
        """Offer the gateway again only after ``delay`` seconds (its next tunnel is not due)."""
        gw.parked = True
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle | None = None

        def unpark() -> None:
            gw.parked = False
            if handle is not None:
                self._timers.discard(handle)
            self._push(gw)

        handle = loop.call_later(max(0.0, delay), unpark)
        self._timers.add(handle)

    def close(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()

    def _push(self, gw: Gateway) -> None:
        if gw.queued or gw.parked or gw.remaining <= 0 or gw.busy >= self._per_gateway:
            return
        gw.queued = True
        heapq.heappush(self._ready, (-gw.remaining, next(self._seq), gw))
        self._wake()
