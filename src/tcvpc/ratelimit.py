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
import math
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from aiolimiter import AsyncLimiter

from tcvpc.adaptive import BETA, PERSIST, AdaptiveRate, C
from tcvpc.eventloop import clock_of, runs_here

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

_CATCH_UP = 0.2
"""Seconds of tokens the bucket holds (within the bounds below): enough for the deletes of
twenty gateways that one poll shows free at once (the job's gateway-bound B3: at 50 ms, 5
tokens, the last of them waited 150 ms). The window guard, not the bucket, keeps any second
at the server within the limit."""
_BUCKET_MIN, _BUCKET_MAX = 1.5, 20.0
_WINDOW = 1.0
_EPSILON = 0.001
_PRUNE_AT = 64
"""Permits kept before the passed ones are dropped even while slots are free: a limiter whose
rate is far above its traffic would otherwise keep every permit it granted (memory, and work
for the garbage collector)."""
_SAMPLE_EVERY = 0.01
"""Seconds between the request durations the allowance learns from: at most 100 samples a second
(every answered request below that rate), so that the estimator's cost follows time, not traffic.
Which request ends first after the gap does not depend on how long it took: no bias."""
_INITIAL_ALLOWANCE = 0.25
"""Seconds a request may take to reach the server, until the durations of ended ones are known."""


class Permit:
    """Permission for one request; call :meth:`release` when the request has ended."""

    __slots__ = ("_clock", "_ended", "_owner", "answered", "deadline", "started")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        owner: StrictRateLimiter | None = None,
        started: float | None = None,
    ) -> None:
        """``started``: ``loop.time()`` of the grant, when the caller has just read it."""
        # The owner reads the same clock as its loop, without a Python frame (clock_of).
        clock = self._clock = loop.time if owner is None else owner._clock
        self.started = clock() if started is None else started
        self.deadline = math.inf
        """When its request is taken to have reached the server at the latest, if it still runs
        (set by the limiter that granted it: start plus its latency allowance)."""
        self._owner = owner
        self._ended: float | None = None
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
            ended = self._ended = self._clock()
            self.answered = answered
            if self._owner is not None:
                self._owner._on_release(self, ended)


_DIRECT_TAKE = "_level" in getattr(AsyncLimiter, "__slots__", ())
"""aiolimiter 1.x keeps its bucket's fill in ``_level`` (tests/test_ratelimit.py checks that
taking it here matches what ``acquire()`` does)."""


def _acquire_at_once(bucket: AsyncLimiter) -> bool:
    """Take the token ``has_capacity()`` just found, through ``acquire()``, without waiting.

    For an aiolimiter without ``_level`` (see ``_DIRECT_TAKE``): ``acquire()`` is run to
    completion here; should it ever suspend, it is closed and ``False`` returned, and the
    caller waits the usual way: the entry it left in aiolimiter's queue takes no token (a
    waiter takes its token when it resumes).
    """
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
      second. Each permit holds one of ``n`` slots from its grant until one second after its
      request reached the server at the latest: after it ended (it reached the server before
      that), or after its start plus ``latency_allowance`` if it ends later. A new permit is
      granted only while fewer than ``n`` slots are held, so any server second that holds it
      holds at most ``n - 1`` earlier requests, however the server counts and however latencies
      vary. Counting *starts* is not enough: a late request lands in the same server second as
      ``n`` later ones. A request whose answer stalls holds its own slot for the allowance, not
      the others'. The allowance grows with the requests' own durations (RFC 6298's
      retransmission timeout: smoothed duration plus four deviations, answered requests only,
      at most one every 10 ms) above ``min_latency_allowance`` (0.25 s), so a slow network or
      server cannot outrun it.
    * **Paced**: underneath, a token bucket refilled at ``rate`` holding 0.2 s of tokens (1.5 to
      20) spaces requests evenly once it is empty, absorbs the event loop's timer rounding, and
      lets a handful of requests that became ready together go at once.
      ``AsyncLimiter(100, 1)`` alone would allow a burst of 100 on top of the steady rate.
    * **Fair**: aiolimiter lets a newcomer overtake a woken waiter; an :class:`asyncio.Lock`
      (FIFO) in front makes waiters take permits in arrival order.
    * **Cancellation-safe**: a task cancelled while waiting takes no token; one cancelled after
      acquiring has spent its permit (the request may be on the wire).
    * **Cheap when free**: :meth:`try_acquire` hands out a permit without locking or waiting when
      nobody queues and a slot and the bucket allow one (what ``acquire`` does first), so the
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
        connection, a lost packet's retransmission (Linux waits at least 200 ms)."""
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
        self._next_sample = -math.inf  # no sample from a request that ends before this
        self._rttvar = 0.0
        capacity = min(_BUCKET_MAX, max(_BUCKET_MIN, self.rate * _CATCH_UP))
        self._bucket = AsyncLimiter(capacity, capacity / self.rate)
        self._fifo = asyncio.Lock()
        self._queued = 0
        """Calls inside :meth:`acquire`'s queue: while any, no permit is handed out at once."""
        # The slots. A permit's slot is held until min(end, deadline) + one window:
        self._granted: deque[Permit] = deque()
        """Permits in grant order (so in deadline order) until their slot's end is known to
        have passed; one that ended before its deadline is skipped (its end is in _early)."""
        self._early: deque[float] = deque()
        """End times, ascending, of requests that ended before their deadline."""
        self._held = 0
        """Slots held: permits in _granted not ended early, plus the ends in _early."""
        self._last_deadline = -math.inf
        self._loop: asyncio.AbstractEventLoop | None = None
        """The loop of the last grant (a registry's limiter only ever sees one)."""
        self._clock: Callable[[], float] = time.monotonic
        """``_loop``'s clock (eventloop.clock_of), set with it."""
        self._wake: asyncio.Future[None] | None = None
        """Set by a release while the head of the queue waits on a deadline (a release may
        free a slot sooner)."""

    def try_acquire(self) -> Permit | None:
        """A permit now, when one is free without waiting and nobody queues; else ``None``.

        Never waits and never overtakes a queued call: what :meth:`acquire` would grant at once.
        """
        if self._queued:
            return None
        loop = self._loop
        if loop is None or not runs_here(loop):
            # First, so that outside a loop it fails before taking a token.
            loop = self._loop = asyncio.get_running_loop()
            self._clock = clock_of(loop)
        now = self._clock()
        if (
            self._held >= self.window_limit or len(self._granted) > _PRUNE_AT
        ) and not self._slot_free(now):
            return None
        # aiolimiter has no non-blocking acquire. When has_capacity() says a token is there,
        # acquire() would add one to the level without suspending (and re-time its waiters:
        # none, while nobody queues here); that is done directly, sparing a coroutine.
        bucket = self._bucket
        if not bucket.has_capacity():
            return None
        if _DIRECT_TAKE:
            bucket._level += 1
        elif not _acquire_at_once(bucket):
            return None
        return self._grant(loop, now)

    async def acquire(self) -> Permit:
        permit = self.try_acquire()
        if permit is not None:
            return permit
        self._queued += 1
        try:
            async with self._fifo:
                loop = asyncio.get_running_loop()
                while not self._slot_free(loop.time()):
                    await self._until_a_slot_may_free(loop)
                await self._bucket.acquire()
                # Slots only free up while the bucket is awaited.
                return self._grant(loop, loop.time())
        finally:
            self._queued -= 1

    def _grant(self, loop: asyncio.AbstractEventLoop, now: float) -> Permit:
        permit = Permit(loop, self, now)
        deadline = now + self._allowance
        if deadline < self._last_deadline:
            deadline = self._last_deadline  # the allowance shrank: keep deadlines in grant order
        permit.deadline = self._last_deadline = deadline
        self._granted.append(permit)
        self._held += 1
        return permit

    def _on_release(self, permit: Permit, ended: float) -> None:
        """A granted permit was released: learn its duration; an early end frees its slot sooner.

        The learning is RFC 6298's estimator over the durations of answered requests (no clock of
        its own), one sample per ``_SAMPLE_EVERY`` at most: a request still running (a stalled
        answer) or one that ended without an answer is no sample, its duration says nothing about
        round trips.
        """
        if permit.answered and ended >= self._next_sample and self._fixed_allowance is None:
            self._next_sample = ended + _SAMPLE_EVERY
            duration = ended - permit.started
            srtt = self._srtt
            if srtt is None:
                srtt, rttvar = duration, duration / 2
            else:
                rttvar = self._rttvar
                rttvar += 0.25 * (abs(srtt - duration) - rttvar)
                srtt += 0.125 * (duration - srtt)
            self._srtt, self._rttvar = srtt, rttvar
            allowance = srtt + 4 * rttvar
            floor = self._min_allowance  # max(floor, allowance), without the call
            self._allowance = allowance if allowance > floor else floor
        if ended < permit.deadline:
            self._early.append(ended)
            wake = self._wake
            if wake is not None and not wake.done():
                wake.set_result(None)

    def _slot_free(self, now: float) -> bool:
        """Drop the slots whose window has passed; true when fewer than ``n`` are still held."""
        early, granted = self._early, self._granted
        passed = now - _WINDOW - _EPSILON  # a slot whose request reached the server by then is free
        while early and early[0] <= passed:
            early.popleft()
            self._held -= 1
        while granted:
            head = granted[0]
            ended = head._ended
            if ended is not None and ended < head.deadline:
                granted.popleft()  # its slot is counted by its end, in _early
            elif head.deadline <= passed:
                granted.popleft()
                self._held -= 1
            else:
                break
        return self._held < self.window_limit

    async def _until_a_slot_may_free(self, loop: asyncio.AbstractEventLoop) -> None:
        """Sleep until the earliest known slot frees, or a release may have freed one sooner."""
        early, granted = self._early, self._granted
        frees = min(early[0] if early else math.inf, granted[0].deadline if granted else math.inf)
        delay = frees + _WINDOW + _EPSILON - loop.time()
        if early:
            await asyncio.sleep(delay)  # a release from now on would free its slot later
            return
        # Only deadlines are known: a request ending before the first of them frees a slot
        # one window after its end, sooner than that deadline's.
        wake = self._wake = loop.create_future()
        try:
            async with asyncio.timeout(delay):
                await wake
        except TimeoutError:
            pass
        finally:
            self._wake = None

    @property
    def latency_allowance(self) -> float:
        """Seconds after its start by which a request is taken to have reached the server."""
        return self._allowance

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
        if self._queued:
            return None
        state = self.state
        # Not adapting: the full rate, without asking the curve (and the clock).
        if state.throttled_at is not None and state.rate(self._clock()) < self.strict.rate:
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
