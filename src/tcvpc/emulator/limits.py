"""The server-side rate limit: at most N admitted requests in any sliding second.

Tencent documents "100 requests per second" without saying how a second is counted; a sliding
window is the strictest reading, so a client that passes here passes a fixed window or a token
bucket too. Only admitted requests enter the window, so a hammering client still gets N answers
per second, as from a real service.

A *stranger* (another program of the same account) takes a fixed rate out of every budget: its
requests arrive evenly spaced and always enter the same window as ours, so the server admits us
only what is left. They are replayed lazily, in time order, each time one of ours arrives.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field

__all__ = ["SlidingWindow", "SlidingWindowLimiter"]

_TIMELINE_SECONDS = 3600
"""Per-second counts kept for the stats (the last hour)."""


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


@dataclass
class _Budget:
    """One (secret id, region, action) budget: its window and where the stranger is in it."""

    window: SlidingWindow
    stranger_next: float
    counts: _Counts


@dataclass
class _Second:
    ours_admitted: int = 0
    ours_throttled: int = 0
    stranger_admitted: int = 0


@dataclass
class _Counts:
    """Totals and a per-second timeline (seconds since the limiter started)."""

    started: float
    seconds: deque[tuple[int, _Second]] = field(
        default_factory=lambda: deque(maxlen=_TIMELINE_SECONDS)
    )
    total: _Second = field(default_factory=_Second)

    def at(self, now: float) -> _Second:
        index = max(0, int(now - self.started))
        seconds = self.seconds
        if not seconds or seconds[-1][0] < index:
            seconds.append((index, _Second()))
            return seconds[-1][1]
        # Another budget's stranger replay may look back a second or two.
        for position in range(len(seconds) - 1, -1, -1):
            found, second = seconds[position]
            if found == index:
                return second
            if found < index and len(seconds) == _TIMELINE_SECONDS:
                break
            if found < index and len(seconds) < _TIMELINE_SECONDS:
                seconds.insert(position + 1, (index, second := _Second()))
                return second
        return _Second()  # older than the kept timeline: not counted per second


class SlidingWindowLimiter:
    """Admits at most ``rate`` requests per key in any sliding ``width``-second window.

    ``stranger_rate`` requests per second of every key's budget go to a stranger, for
    ``stranger_seconds`` after ``start`` (``None``: for ever).
    """

    def __init__(
        self,
        rate: float,
        width: float = 1.0,
        *,
        stranger_rate: float = 0.0,
        stranger_seconds: float | None = None,
        start: float | None = None,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be > 0, got {rate!r}")
        if not 0 <= stranger_rate <= rate:
            raise ValueError(f"stranger_rate must be in [0, {rate:g}], got {stranger_rate!r}")
        if stranger_seconds is not None and not stranger_seconds > 0:
            raise ValueError(f"stranger_seconds must be > 0, got {stranger_seconds!r}")
        self.rate = rate
        self.width = width
        self.stranger_rate = stranger_rate
        self.stranger_seconds = stranger_seconds
        self.started = time.monotonic() if start is None else start
        self._stranger_end = (
            self.started + stranger_seconds if stranger_seconds is not None else math.inf
        )
        self._budgets: dict[tuple[str, str, str], _Budget] = {}
        self._counts: dict[str, _Counts] = {}  # per action: the stats' timelines
        self.rejected = 0

    def admit(self, key: tuple[str, str, str], now: float) -> bool:
        """Admit (and count) a request for ``key``, or refuse it without counting it."""
        budget = self._budgets.get(key)
        if budget is None:
            if len(self._budgets) > 10_000:  # keys are (secret id, region, action): tiny
                self._budgets.clear()
            counts = self._counts.get(key[2])
            if counts is None:
                counts = self._counts[key[2]] = _Counts(self.started)
            # The stranger has been running: its last second is already in the window.
            budget = self._budgets[key] = _Budget(
                SlidingWindow(self.width), max(self.started, now - self.width), counts
            )
        if self.stranger_rate > 0:
            self._replay_stranger(budget, now)
        window, counts = budget.window, budget.counts
        second = counts.at(now)
        if window.count(now) >= self.rate:
            self.rejected += 1
            second.ours_throttled += 1
            counts.total.ours_throttled += 1
            return False
        window.add(now)
        second.ours_admitted += 1
        counts.total.ours_admitted += 1
        return True

    def _replay_stranger(self, budget: _Budget, now: float) -> None:
        """Put the stranger's requests due by ``now`` into the window, in time order."""
        step = 1.0 / self.stranger_rate
        until = min(now, self._stranger_end)
        t = budget.stranger_next
        if t < until - 2 * self.width:  # idle for a while: only the last window matters
            t += math.floor((until - 2 * self.width - t) / step) * step
        window, counts = budget.window, budget.counts
        while t <= until:
            # The stranger always gets its share (it retries until it does, at our expense).
            window.add(t)
            counts.at(t).stranger_admitted += 1
            counts.total.stranger_admitted += 1
            t += step
        budget.stranger_next = t

    def snapshot(self, now: float | None = None) -> dict[str, object]:
        """Counts of ours and the stranger's requests per action (every key of that action).

        ``per_second`` rows are ``[second, ours admitted, ours throttled, stranger admitted]``,
        seconds counted from the emulator's start, busy seconds only.
        """
        now = time.monotonic() if now is None else now
        last = int(now - self.started) - 1  # the last complete second
        by_action: dict[str, object] = {}
        for action, counts in sorted(self._counts.items()):
            last_second = next((s for i, s in counts.seconds if i == last), _Second())
            by_action[action] = {
                "ours": {
                    "admitted": counts.total.ours_admitted,
                    "throttled": counts.total.ours_throttled,
                    "admitted_last_second": last_second.ours_admitted,
                },
                "stranger": {
                    "admitted": counts.total.stranger_admitted,
                    "admitted_last_second": last_second.stranger_admitted,
                },
                "per_second": [
                    [i, s.ours_admitted, s.ours_throttled, s.stranger_admitted]
                    for i, s in counts.seconds
                ],
            }
        return {
            "limit_per_second": self.rate,
            "uptime_seconds": round(now - self.started, 3),
            "stranger": {
                "rate": self.stranger_rate,
                "seconds": self.stranger_seconds,
                "active": self.stranger_rate > 0 and now < self._stranger_end,
            },
            "by_action": by_action,
        }
