"""Counters behind ``GET /_emulator/stats``: what the emulator saw, for tests and benchmarks.

The benchmark's key question is "did the client ever start more than 100 requests in one second?",
so every API request is stamped on arrival (before any check) in an exact sliding-window maximum,
overall and per action.
"""

from __future__ import annotations

import time
from collections import Counter

from tcvpc.emulator.limits import SlidingWindow

__all__ = ["UNKNOWN_ACTION", "Stats"]

#: Stats key for requests whose ``X-TC-Action`` is missing or not an action we serve.
UNKNOWN_ACTION = "<unknown>"


class Stats:
    def __init__(self, actions: tuple[str, ...]) -> None:
        self._actions = frozenset(actions)
        self.started_at = time.monotonic()
        self.requests_total = 0
        self.by_action: dict[str, Counter[str]] = {}
        self._overall = SlidingWindow()
        self._windows: dict[str, SlidingWindow] = {a: SlidingWindow() for a in actions}

    def key(self, action: str | None) -> str:
        return action if action is not None and action in self._actions else UNKNOWN_ACTION

    def started(self, action_key: str, now: float) -> None:
        """A request arrived (any outcome)."""
        self.requests_total += 1
        self._overall.add(now)
        window = self._windows.get(action_key)
        if window is not None:
            window.add(now)

    def answered(self, action_key: str, code: str) -> None:
        """What the request got: an API error code, ``OK``, or a transport-level fault name."""
        counter = self.by_action.get(action_key)
        if counter is None:
            counter = self.by_action[action_key] = Counter()
        counter[code] += 1

    def snapshot(
        self,
        *,
        throttled: int,
        faults: Counter[str],
        tunnels: dict[str, int],
        deleted: int,
        rate_limit: dict[str, object] | None = None,
    ) -> dict[str, object]:
        """``rate_limit``: the server-side limiter's counts (ours and the stranger's)."""
        return {
            "uptime_seconds": round(time.monotonic() - self.started_at, 3),
            "requests_total": self.requests_total,
            "requests": {a: dict(c) for a, c in sorted(self.by_action.items())},
            "throttled": throttled,
            "faults": dict(faults),
            "max_requests_per_second": {
                "overall": self._overall.max_seen,
                "by_action": {a: w.max_seen for a, w in sorted(self._windows.items())},
            },
            "tunnels": tunnels,
            "tunnels_deleted": deleted,
            "rate_limit": rate_limit,
        }
