"""The server-side rate limit: at most N admitted requests in any sliding second.

Tencent documents "100 requests per second" without saying how a second is counted; a sliding
window is the strictest reading, so a client that passes here passes a fixed window or a token
bucket too. Only admitted requests enter the window, so a hammering client still gets N answers
per second, as from a real service.
"""

from __future__ import annotations

from collections import deque

__all__ = ["SlidingWindow", "SlidingWindowLimiter"]


class SlidingWindow:
    """Counts events in the last ``width`` seconds and remembers the largest count seen.

    The largest number of events in any half-open window ``(t - width, t]`` is reached at a
    window that ends on an event, so checking at each event gives the exact maximum.
    """

    __slots__ = ("_events", "max_seen", "width")

    def __init__(self, width: float = 1.0) -> None:
        self.width = width
        self._events: deque[float] = deque()
        self.max_seen = 0

    def _trim(self, now: float) -> None:
        events = self._events
        edge = now - self.width
        while events and events[0] <= edge:
            events.popleft()

    def count(self, now: float) -> int:
        self._trim(now)
        return len(self._events)

    def add(self, now: float) -> int:
        """Record an event at ``now``; return the count in the window ending at ``now``."""
        self._trim(now)
        self._events.append(now)
        n = len(self._events)
        if n > self.max_seen:
            self.max_seen = n
        return n


class SlidingWindowLimiter:
    """Admits at most ``rate`` requests per key in any sliding ``width``-second window."""

    def __init__(self, rate: float, width: float = 1.0) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be > 0, got {rate!r}")
        self.rate = rate
        self.width = width
        self._windows: dict[tuple[str, str, str], SlidingWindow] = {}
        self.rejected = 0

    def admit(self, key: tuple[str, str, str], now: float) -> bool:
        """Admit (and count) a request for ``key``, or refuse it without counting it."""
        window = self._windows.get(key)
        if window is None:
            if len(self._windows) > 10_000:  # keys are (secret id, region, action): tiny
                self._windows.clear()
            window = self._windows[key] = SlidingWindow(self.width)
        if window.count(now) >= self.rate:
            self.rejected += 1
            return False
        window.add(now)
        return True
