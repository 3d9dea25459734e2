"""The client's memory of deletes it sent but never heard back about.

A delete cancelled by its caller, cut by its deadline or lost with its connection may have
deleted the tunnel. Without a memory, the next delete of that tunnel reads "not found" as
``already_gone`` ("someone else did it"); with one, it is ``deleted`` with ``inferred=True``.
The memory is bounded in size (oldest forgotten first) and in time (a tunnel re-created under
the same ID long after is not confused with ours).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable

__all__ = ["UnknownOutcomes"]


class UnknownOutcomes:
    """A bounded, expiring set of keys (here: :class:`tcvpc.TunnelRef`). Not thread-safe: one
    per client, used from its event loop."""

    def __init__(
        self,
        *,
        max_entries: int = 10_000,
        ttl: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be >= 1")
        if not ttl > 0:
            raise ValueError("ttl must be a positive number of seconds")
        self.max_entries = max_entries
        self.ttl = ttl
        self._clock = clock
        self._seen: OrderedDict[Hashable, float] = OrderedDict()

    def remember(self, key: Hashable) -> None:
        """Record that a request about ``key`` may have acted without us learning it."""
        self._expire()
        self._seen.pop(key, None)
        self._seen[key] = self._clock()
        while len(self._seen) > self.max_entries:
            self._seen.popitem(last=False)

    def pop(self, key: Hashable) -> bool:
        """Forget ``key``; true when it was remembered and had not expired."""
        if not self._seen:  # the usual case, asked after every delete: no key to hash
            return False
        when = self._seen.pop(key, None)
        return when is not None and self._clock() - when < self.ttl

    def __len__(self) -> int:
        self._expire()
        return len(self._seen)

    def __contains__(self, key: Hashable) -> bool:
        when = self._seen.get(key)
        return when is not None and self._clock() - when < self.ttl

    def _expire(self) -> None:
        cutoff = self._clock() - self.ttl
        while self._seen:
            key, when = next(iter(self._seen.items()))
            if when >= cutoff:
                return
            del self._seen[key]
