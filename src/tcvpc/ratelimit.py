"""Client-side rate limiting: a strict FIFO limiter with an adaptive rate in front, one per budget.

:class:`StrictRateLimiter` never lets more than ``ceil(rate)`` requests reach the server in any
sliding second, in arrival order, cancellation-safe. :class:`AdaptiveLimiter` paces in front of
it at the share the server admits when someone else spends the same quota (``adaptive.py``).
A :class:`Limiters` registry hands out one limiter per (account, region, action); by default
every client of one process uses :func:`shared_limiters`, so clients of one account share one
budget. Figures: ``benchmarks/b2_rate.py`` (strict) and ``benchmarks/b6_strangers.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from aiolimiter import AsyncLimiter

from tcvpc.adaptive import BETA, PERSIST, AdaptiveRate, C

__all__ = [
    "DEFAULT_RATE",
    "AdaptiveLimiter",
    "LimiterRegistry",
    "Limiters",
    "Permit",
    "RateLimiter",
    "StrictRateLimiter",
    "shared_limiters",
]

DEFAULT_RATE = 99.5
"""Requests per second per action: never more than the documented 100 in any second."""

_CATCH_UP = 0.05
"""Seconds of tokens the bucket holds (within the bounds below)."""
_BUCKET_MIN, _BUCKET_MAX = 1.5, 5.0
_WINDOW = 1.0
_EPSILON = 0.001
_INITIAL_ALLOWANCE = 0.25
"""Seconds a request may take to reach the server, until the durations of ended ones are known."""


class Permit:
    """Permission for one request; call :meth:`release` when the request has ended."""

    __slots__ = ("_ended", "_loop", "_waiter", "answered", "started")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.started = loop.time()
        self._ended: float | None = None
        self._waiter: asyncio.Future[float] | None = None
        self.answered = False
        """Whether its request ended with an answer (its duration is then a round trip)."""

    @property
    def ended(self) -> float | None:
        """``loop.time()`` when the permit was released, or ``None`` while its request runs."""
        return self._ended

    def release(self, *, answered: bool = True) -> None:
        """Mark the request as ended. Idempotent: the first call counts.

        ``answered=False`` when it ended without an answer (cancelled, timed out, connection
        lost): how long it took then says nothing about round trips (Karn's rule).
        """
        if self._ended is None:
            self._ended = self._loop.time()
            self.answered = answered
            waiter = self._waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(self._ended)

    @property
    def _released(self) -> asyncio.Future[float]:
        """A future with the release time, done once released. Made on demand: most permits
        are never waited for, and a future per request would cost every request."""
        if self._waiter is None:
            self._waiter = self._loop.create_future()
            if self._ended is not None:
                self._waiter.set_result(self._ended)
        return self._waiter


_DIRECT_TAKE = "_level" in getattr(AsyncLimiter, "__slots__", ())
"""aiolimiter 1.x keeps its bucket's fill in ``_level`` (tests/test_ratelimit.py checks that
taking it here matches what ``acquire()`` does)."""


def _take_token_now(bucket: AsyncLimiter) -> bool:
    """Take one token from ``bucket`` without waiting, or take none and return ``False``.

    aiolimiter has no non-blocking acquire. When ``has_capacity()`` says a token is there,
    ``acquire()`` would return without suspending after adding one to the bucket's level (and
    re-timing its waiters: the callers here run only while nobody waits on this bucket): that
    is done directly, which spares a coroutine and its StopIteration per request. Without that
    attribute (another aiolimiter), ``acquire()`` is run to completion here; should it ever
    suspend, it is closed and the caller waits the usual way: the entry it left in aiolimiter's
    queue takes no token (a waiter takes its token when it resumes).
    """
    if not bucket.has_capacity():
        return False
    if _DIRECT_TAKE:
        bucket._level += 1
        return True
    step = bucket.acquire()
    try:
        step.send(None)
    except StopIteration:
        return True
    step.close()
    return False


@runtime_checkable
class RateLimiter(Protocol):
    """What the client needs from the limiter of one budget (the local ones, the Redis one)."""

    async def acquire(self) -> Permit:
        """Wait for permission to start one request (every attempt, retries too)."""
        ...

    def on_throttled(self) -> None:
        """The server throttled one of our requests (``RetryKind.THROTTLED``, HTTP 429 too)."""
        ...

    def on_admitted(self) -> None:
        """The server processed one of our requests and did not throttle it."""
        ...

    @property
    def rate(self) -> float:
        """The rate currently allowed, in requests per second (for telemetry)."""
        ...


@runtime_checkable
class Limiters(Protocol):
    """Hands out the limiter of each budget; what ``VpcClient(limiters=...)`` accepts."""

    def get(self, *, account: str, region: str, action: str) -> RateLimiter: ...


class StrictRateLimiter:
    """A FIFO token bucket whose requests never exceed the window limit at the server.

    * **Strict at the server**: no ``n + 1`` requests (``n = ceil(rate)``) arrive within one
      second. A permit is released when its request ends, and the ``(k+n)``-th permit is granted
      only one second after the ``k``-th request ended (or after its start plus
      ``latency_allowance`` if it still runs): a request reaches the server before it ends, so
      this holds however the server counts and however latencies vary. Counting *starts* is not
      enough: a late request lands in the same server second as ``n`` later ones. The allowance
      grows with the requests' own durations (RFC 6298's retransmission timeout: smoothed
      duration plus four deviations, answered requests only) above ``min_latency_allowance``
      (0.25 s), so a slow network or server cannot outrun it.
    * **Paced**: underneath, a token bucket refilled at ``rate`` holding 50 ms of tokens (1.5 to
      5) spaces requests evenly and absorbs the event loop's timer rounding.
      ``AsyncLimiter(100, 1)`` alone would allow a burst of 100 on top of the steady rate.
    * **Fair**: aiolimiter lets a newcomer overtake a woken waiter; an :class:`asyncio.Lock`
      (FIFO) in front makes waiters take permits in arrival order.
    * **Cancellation-safe**: a task cancelled while waiting takes no token; one cancelled after
      acquiring has spent its permit (the request may be on the wire).
    * **Cheap when free**: :meth:`try_acquire` hands out a permit without locking or waiting when
      nobody queues and the window and the bucket allow one (what ``acquire`` does first), so the
      client needs no deadline timer for it.

    It ignores the server's answers (``on_throttled``/``on_admitted`` do nothing): put an
    :class:`AdaptiveLimiter` in front to follow them.
    """

    def __init__(
        self,
        rate: float = DEFAULT_RATE,
        *,
        window_limit: int | None = None,
        latency_allowance: float | None = None,
        min_latency_allowance: float = 0.25,
    ) -> None:
        """``latency_allowance``: how long after its start a request may still reach the server;
        ``None`` learns it, at least ``min_latency_allowance``. The floor covers what no round
        trip shows: a busy event loop between the permit and the write, a wait for a pooled
        connection. At 50 ms a loaded service once put 101 requests in one server second."""
        if not rate > 0:
            raise ValueError(f"rate must be a positive number of requests per second, not {rate!r}")
        self.rate = float(rate)
        self.window_limit = window_limit or max(1, math.ceil(self.rate))
        if self.window_limit < 1:
            raise ValueError("window_limit must be >= 1")
        if latency_allowance is not None and not latency_allowance >= 0:
            raise ValueError(f"latency_allowance must be >= 0 seconds, not {latency_allowance!r}")
        if not min_latency_allowance > 0:
            raise ValueError(
                f"min_latency_allowance must be > 0 seconds, not {min_latency_allowance!r}"
            )
        self._fixed_allowance = latency_allowance
        self._min_allowance = min_latency_allowance
        self._allowance = _INITIAL_ALLOWANCE if latency_allowance is None else latency_allowance
        self._srtt: float | None = None  # smoothed request duration (RFC 6298's SRTT)
        self._rttvar = 0.0
        capacity = min(_BUCKET_MAX, max(_BUCKET_MIN, self.rate * _CATCH_UP))
        self._bucket = AsyncLimiter(capacity, capacity / self.rate)
        self._fifo = asyncio.Lock()
        self._queued = 0
        """Calls inside :meth:`acquire`'s queue: while any, no permit is handed out at once."""
        self._recent: deque[Permit] = deque(maxlen=self.window_limit)

    def try_acquire(self) -> Permit | None:
        """A permit now, when one is free without waiting and nobody queues; else ``None``.

        Never waits and never overtakes a queued call: what :meth:`acquire` would grant at once.
        """
        if self._queued:
            return None
        loop = asyncio.get_running_loop()  # first: outside a loop, fail before taking a token
        recent = self._recent
        if len(recent) == self.window_limit and self._window_holds(recent[0], loop.time()):
            return None
        if not _take_token_now(self._bucket):
            return None
        permit = Permit(loop)
        self._push(permit)
        return permit

    async def acquire(self) -> Permit:
        permit = self.try_acquire()
        if permit is not None:
            return permit
        self._queued += 1
        try:
            async with self._fifo:
                if len(self._recent) == self.window_limit:
                    await self._one_window_after(self._recent[0])
                await self._bucket.acquire()
                permit = Permit(asyncio.get_running_loop())
                self._push(permit)
                return permit
        finally:
            self._queued -= 1

    def _push(self, permit: Permit) -> None:
        """Add a granted permit to the window; the one it pushes out teaches the allowance."""
        recent = self._recent
        if len(recent) == self.window_limit:
            oldest = recent[0]
            ended = oldest.ended
            if ended is not None and oldest.answered and self._fixed_allowance is None:
                self._learn(ended - oldest.started)
        recent.append(permit)

    def _window_holds(self, oldest: Permit, now: float) -> bool:
        """True while the window rule keeps the next permit back (see _one_window_after)."""
        allowed_until = oldest.started + self._allowance
        ended = oldest.ended
        if ended is None:
            if allowed_until > now:
                return True  # it still runs: the window counts from its end, not yet known
            ended = allowed_until
        return min(ended, allowed_until) + _WINDOW + _EPSILON > now

    async def _one_window_after(self, oldest: Permit) -> None:
        """Wait until one window has passed since ``oldest`` ended (or was allowed to)."""
        loop = asyncio.get_running_loop()
        allowed_until = oldest.started + self._allowance
        if oldest.ended is None and allowed_until > loop.time():
            released = oldest._released
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(released), allowed_until - loop.time())
        ended = oldest.ended if oldest.ended is not None else allowed_until
        delay = min(ended, allowed_until) + _WINDOW + _EPSILON - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)

    @property
    def latency_allowance(self) -> float:
        """Seconds after its start by which a request is taken to have reached the server."""
        return self._allowance

    def _learn(self, duration: float) -> None:
        """RFC 6298's estimator over the durations of requests that ended (no clock of its own).

        Sampled as each request leaves the window: only while the window is full, which is the
        only time the allowance is used. A request still running then (a stalled answer) is no
        sample: its duration is not known.
        """
        if self._srtt is None:
            self._srtt, self._rttvar = duration, duration / 2
        else:
            self._rttvar += 0.25 * (abs(self._srtt - duration) - self._rttvar)
            self._srtt += 0.125 * (duration - self._srtt)
        self._allowance = max(self._min_allowance, self._srtt + 4 * self._rttvar)

    def on_throttled(self) -> None:
        """Ignored: the strict limit does not depend on the server's answers."""

    def on_admitted(self) -> None:
        """Ignored: the strict limit does not depend on the server's answers."""

    def __repr__(self) -> str:
        return f"StrictRateLimiter(rate={self.rate}, window_limit={self.window_limit})"


_PACER_BUCKET = 1.5
"""Tokens the adaptive pacer holds: above 1, so the loop's timer rounding costs no rate."""
_RETUNE = 0.02
"""The pacer's bucket is rebuilt when the adaptive rate has moved by more than this fraction."""


class AdaptiveLimiter:
    """Paces at the adaptive rate (:class:`~tcvpc.adaptive.AdaptiveRate`) in front of a strict one.

    The adaptive rate follows the share the server admits us; the strict limiter underneath keeps
    its guarantees whatever the adaptive rate says. Both queues are FIFO, so new requests and
    retries of throttled ones take turns at the same rate: a burst of throttles cannot turn into
    a burst of retries.
    """

    def __init__(
        self,
        strict: StrictRateLimiter,
        *,
        beta: float = BETA,
        c: float = C,
        persist: float = PERSIST,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.strict = strict
        self.state = AdaptiveRate(strict.rate, beta=beta, c=c, persist=persist)
        self._clock = clock
        self._fifo = asyncio.Lock()
        self._queued = 0
        """Calls inside :meth:`acquire`'s pacing queue."""
        self._pacer: AsyncLimiter | None = None
        self._pacer_rate = 0.0
        self._last_grant = -math.inf

    def try_acquire(self) -> Permit | None:
        """A permit now, when the full rate is allowed and the strict limiter grants one at once
        with nobody queued; else ``None`` (never waits, never overtakes)."""
        if self._queued or self.state.rate(self._clock()) < self.strict.rate:
            return None
        self._pacer = None
        return self.strict.try_acquire()

    async def acquire(self) -> Permit:
        permit = self.try_acquire()
        if permit is not None:
            return permit
        self._queued += 1
        try:
            async with self._fifo:
                rate = self.state.rate(self._clock())
                if rate < self.strict.rate:
                    await self._pace(rate)
                else:
                    self._pacer = None
        finally:
            self._queued -= 1
        # No await between releasing our lock and queueing on the strict one: FIFO end to end.
        return await self.strict.acquire()

    async def _pace(self, rate: float) -> None:
        loop = asyncio.get_running_loop()
        if self._pacer is None or abs(rate - self._pacer_rate) > _RETUNE * rate:
            self._pacer = AsyncLimiter(_PACER_BUCKET, _PACER_BUCKET / rate)
            self._pacer_rate = rate
            # A fresh bucket grants its first token at once: keep the new spacing from the last
            # grant, or every retune would send two requests back to back.
            delay = self._last_grant + 1.0 / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        await self._pacer.acquire()
        self._last_grant = loop.time()

    def on_throttled(self) -> None:
        self.state.on_throttled(self._clock())

    def on_admitted(self) -> None:
        self.state.on_admitted(self._clock())

    @property
    def rate(self) -> float:
        return min(self.strict.rate, self.state.rate(self._clock()))

    def __repr__(self) -> str:
        return f"AdaptiveLimiter(max_rate={self.strict.rate}, rate={self.rate:.1f})"


_Key = tuple[str, str, str]


class LimiterRegistry:
    """One limiter per (account, region, action) and event loop, made on first use.

    Tencent counts limits per action, region and account, so Delete and Describe have separate
    budgets. asyncio primitives belong to one event loop and a process may run several in turn
    (``asyncio.run`` twice, pytest), so each loop gets its own limiters; those of closed loops
    are dropped. ``adaptive=False`` gives strict limiters that ignore throttles; ``persist`` is
    how long throttles must keep coming before an adaptive one slows down (see ``adaptive.py``).
    """

    def __init__(
        self,
        rate: float = DEFAULT_RATE,
        *,
        rates: dict[str, float] | None = None,
        adaptive: bool = True,
        persist: float = PERSIST,
    ) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be a positive number of requests per second, not {rate!r}")
        for action, value in (rates or {}).items():
            if not value > 0:
                raise ValueError(f"rate for {action} must be positive, not {value!r}")
        self.rate = float(rate)
        self.adaptive = adaptive
        if not persist >= 0:
            raise ValueError(f"persist must be >= 0 seconds, not {persist!r}")
        self.persist = float(persist)
        self._rates = dict(rates or {})
        self._by_loop: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[_Key, RateLimiter]
        ] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()  # loops in other threads may share the registry

    def rate_for(self, action: str) -> float:
        return self._rates.get(action, self.rate)

    def get(self, *, account: str, region: str, action: str) -> RateLimiter:
        """The limiter of this budget in the running loop (call it from a coroutine)."""
        loop = asyncio.get_running_loop()
        key = (account, region, action)
        with self._lock:
            limiters = self._by_loop.get(loop)
            if limiters is None:
                # A limiter holds its loop, so weak keys alone would never let go of it.
                for old in [old for old in self._by_loop if old.is_closed()]:
                    del self._by_loop[old]
                limiters = self._by_loop[loop] = {}
            limiter = limiters.get(key)
            if limiter is None:
                strict = StrictRateLimiter(self.rate_for(action))
                limiter = AdaptiveLimiter(strict, persist=self.persist) if self.adaptive else strict
                limiters[key] = limiter
            return limiter

    def __repr__(self) -> str:
        return f"LimiterRegistry(rate={self.rate}, adaptive={self.adaptive})"


_shared: dict[float, LimiterRegistry] = {}
_shared_lock = threading.Lock()


def shared_limiters(rate: float = DEFAULT_RATE) -> LimiterRegistry:
    """The process-wide registry of clients at ``rate``: what ``VpcClient`` uses by default.

    Two clients with the same credentials and rate in one process share one budget per region
    and action; pass your own :class:`LimiterRegistry` (or a Redis one) to decide otherwise.
    """
    if not rate > 0:
        raise ValueError(f"rate must be a positive number of requests per second, not {rate!r}")
    with _shared_lock:
        registry = _shared.get(float(rate))
        if registry is None:
            registry = _shared[float(rate)] = LimiterRegistry(rate)
        return registry
