"""Client-side rate limiting: strict, fair and adaptive.

Semantics of :class:`StrictRateLimiter` (rate ``r`` per second, default 99.5; window limit
``n = ceil(r)``, 100 at the default):

* **Strict where it counts, at the server**: no ``n + 1`` requests arrive within one second. A
  permit is released when its request ends, and the ``(k+n)``-th permit is granted only one
  second after the ``k``-th request ended (or after its start plus ``latency_allowance`` if it is
  still running). A request reaches the server before it ends, so this holds whatever the
  server's way of counting (fixed windows, sliding windows, its own bucket) and however the
  requests' latencies vary (a first connection, a TLS handshake, a busy loop), unless one
  request spends more than ``latency_allowance`` in transit. Counting *starts* is not enough: a
  late request lands in the same server second as ``n`` later ones.
* **Paced**: underneath, a token bucket refilled at ``r``/s holding 50 ms worth of tokens
  (at least 1.5, ~5 at the default: ``AsyncLimiter(5, 5/r)``) spaces requests evenly; that slack
  lets it catch up after the event loop was busy for a few tens of milliseconds, so the
  sustained rate stays at ``r``, and absorbs the loop's millisecond timer rounding (which costs
  a bucket of exactly 1 about 4% of its rate). At steady state (millisecond latencies) the
  window guard never waits: 100 requests at 99.5/s span more than a second.
  ``AsyncLimiter(100, 1)`` alone would allow a burst of 100 on top of the steady 100/s: up to
  ~199 in one sliding second.
* **Fair**: aiolimiter lets a newcomer overtake a waiter that was woken but has not resumed yet;
  an :class:`asyncio.Lock` (FIFO) in front makes waiters take permits in arrival order.
* **Cancellation-safe**: a task cancelled while waiting takes no token and leaves the queue;
  one cancelled after acquiring has spent its permit (the request may be on the wire).

:class:`AdaptivePacer` slows a limiter down when the server says we are throttled (someone else
spends the same quota): to 0.7x at most once per 500 ms, then back to full rate along a cubic
curve over about 4 s, like botocore's adaptive mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Protocol, runtime_checkable

from aiolimiter import AsyncLimiter

DEFAULT_RATE = 99.5
"""Requests per second per action: never more than the documented 100 in any second."""

_CATCH_UP = 0.05
"""Seconds of tokens the bucket holds (within the bounds below)."""
_BUCKET_MIN, _BUCKET_MAX = 1.5, 5.0
_WINDOW = 1.0
_EPSILON = 0.001


class Permit:
    """Permission for one request; call :meth:`release` when the request has ended."""

    __slots__ = ("_released", "started")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.started = loop.time()
        self._released: asyncio.Future[float] = loop.create_future()

    def release(self) -> None:
        """Mark the request as ended (answered, failed or cancelled). Idempotent."""
        if not self._released.done():
            self._released.set_result(self._released.get_loop().time())


@runtime_checkable
class RateLimiter(Protocol):
    """What the client needs from a limiter: wait for permission to start one request."""

    async def acquire(self) -> Permit: ...


class StrictRateLimiter:
    """A FIFO token bucket whose requests never exceed the window limit at the server."""

    def __init__(
        self,
        rate: float = DEFAULT_RATE,
        *,
        window_limit: int | None = None,
        latency_allowance: float = 0.25,
    ) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be a positive number of requests per second, not {rate!r}")
        self.rate = float(rate)
        self.window_limit = window_limit or max(1, math.ceil(self.rate))
        if self.window_limit < 1:
            raise ValueError("window_limit must be >= 1")
        self._allowance = latency_allowance
        capacity = min(_BUCKET_MAX, max(_BUCKET_MIN, self.rate * _CATCH_UP))
        self._bucket = AsyncLimiter(capacity, capacity / self.rate)
        self._fifo = asyncio.Lock()
        self._recent: deque[Permit] = deque(maxlen=self.window_limit)

    async def acquire(self) -> Permit:
        async with self._fifo:
            if len(self._recent) == self.window_limit:
                await self._one_window_after(self._recent[0])
            await self._bucket.acquire()
            permit = Permit(asyncio.get_running_loop())
            self._recent.append(permit)
            return permit

    async def _one_window_after(self, oldest: Permit) -> None:
        """Wait until one window has passed since ``oldest`` ended (or was allowed to)."""
        loop = asyncio.get_running_loop()
        allowed_until = oldest.started + self._allowance
        released = oldest._released
        if not released.done() and allowed_until > loop.time():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(released), allowed_until - loop.time())
        ended = released.result() if released.done() else allowed_until
        delay = min(ended, allowed_until) + _WINDOW + _EPSILON - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)

    def __repr__(self) -> str:
        return f"StrictRateLimiter(rate={self.rate}, window_limit={self.window_limit})"


class AdaptivePacer:
    """Puts a slower, variable rate in front of a strict limiter while the server throttles us.

    ``on_throttled()`` is called by the client for every ``RequestLimitExceeded``-type answer.
    The current rate factor is ``1`` normally; after throttling it drops to 0.7x (compounding, at
    most once per ``cooldown`` and never below ``floor``) and climbs back along
    ``1 - (1 - f0) * (1 - t/recovery)**3`` so it returns to full rate after ``recovery`` seconds.
    """

    def __init__(
        self,
        inner: StrictRateLimiter,
        *,
        beta: float = 0.7,
        cooldown: float = 0.5,
        recovery: float = 4.0,
        floor: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inner = inner
        self._beta = beta
        self._cooldown = cooldown
        self._recovery = recovery
        self._floor = floor
        self._clock = clock
        self._dropped_to = 1.0
        self._dropped_at = -1e9
        self._pacer: AsyncLimiter | None = None
        self._pacer_factor = 1.0

    def factor(self) -> float:
        """The fraction of the inner rate currently allowed."""
        elapsed = self._clock() - self._dropped_at
        if elapsed >= self._recovery:
            return 1.0
        remaining = 1.0 - elapsed / self._recovery
        return 1.0 - (1.0 - self._dropped_to) * remaining**3

    def on_throttled(self) -> None:
        now = self._clock()
        if now - self._dropped_at < self._cooldown:
            return
        self._dropped_to = max(self._floor, self.factor() * self._beta)
        self._dropped_at = now

    async def acquire(self) -> Permit:
        factor = self.factor()
        if factor < 0.999:
            # A fresh bucket when the factor has moved by more than 5%: close enough to the
            # curve, and it keeps the strict limiter's guarantee untouched underneath.
            if self._pacer is None or abs(factor - self._pacer_factor) > 0.05 * factor:
                self._pacer = AsyncLimiter(1, 1 / (self.inner.rate * factor))
                self._pacer_factor = factor
            await self._pacer.acquire()
        return await self.inner.acquire()

    @property
    def rate(self) -> float:
        return self.inner.rate * self.factor()

    def __repr__(self) -> str:
        return f"AdaptivePacer(rate={self.inner.rate}, factor={self.factor():.2f})"


class LimiterRegistry:
    """One :class:`AdaptivePacer` per key (credential id, region, action), made on first use.

    Tencent counts limits per action, region and account, so Delete and Describe have separate
    budgets. Share one registry between clients to share their budgets.
    """

    def __init__(
        self,
        rate: float = DEFAULT_RATE,
        *,
        rates: dict[str, float] | None = None,
    ) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be a positive number of requests per second, not {rate!r}")
        for action, value in (rates or {}).items():
            if not value > 0:
                raise ValueError(f"rate for {action} must be positive, not {value!r}")
        self.rate = float(rate)
        self._rates = dict(rates or {})
        self._limiters: dict[Hashable, AdaptivePacer] = {}

    def rate_for(self, action: str) -> float:
        return self._rates.get(action, self.rate)

    def get(self, *, account: str, region: str, action: str) -> AdaptivePacer:
        key = (account, region, action)
        limiter = self._limiters.get(key)
        if limiter is None:
            limiter = AdaptivePacer(StrictRateLimiter(self.rate_for(action)))
            self._limiters[key] = limiter
        return limiter
