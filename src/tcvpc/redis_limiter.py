"""One account's request budget shared by every process that holds it, through Redis.

The 100 requests per second belong to the account (per action and region), not to a process:
workers, replicas of a service and a cleanup job of one account must share one budget.
:class:`RedisLimiterRegistry` hands out one :class:`RedisRateLimiter` per (secret id, region,
action); all processes pointing at the same Redis and key prefix share it.

How a permit is granted (one short Lua script, one round trip, atomic in Redis):

* **Time slots from Redis's clock.** The script reads ``TIME`` and hands out the next slot on
  a pacing grid: ``max(now - catch-up, previous grid point + 1/rate)``, never before the
  previous slot, started at once when already due. The catch-up (50 ms of slots; the local
  limiter's bucket holds 0.2 s) lets the fleet make up slots missed while every process was
  busy or while the window guard held one back. Workers' clocks never enter the decision; each
  process only measures its own offset to Redis on each reply and sleeps until its slot.
* **At most one reservation outstanding per process and budget** (an :class:`asyncio.Lock`, held
  from the reservation until its slot): a process never hoards slots, and the lock keeps waiters
  FIFO within a process.
* **Window guard, as the local limiter's**: the script keeps the last ``2n`` slots
  (``n = ceil(rate)``) in a sorted set (member: slot number, score: time), and slot ``k+n`` is
  at least one second (+1 ms) after the time of slot ``k``. Each process reports, with its next
  reservation, when its earlier requests actually started and ended (capped at start +
  ``latency_allowance``, in Redis time); the set keeps the latest of slot, start and end. So the
  ``(k+n)``-th request starts one second after the ``k``-th ended: no sliding second at the
  server holds more than ``n``, even when a process was late for its slot or a request spent
  long in transit. (A request that ends after the process's last reservation is known by its
  start only; a Redis that restarts with no memory forgets the last second's slots.)
* **Cancellation-safe**: a waiter cancelled before its reservation takes no slot; one cancelled
  while sleeping until its slot wastes that slot (the budget is only under-used).
* **Adaptive, fleet-wide**: ``on_throttled()`` is carried by the process's next reservation; the
  script then records ``W_max``, the rate the fleet sent over the last second (counted from the
  slots it handed out), and the throttle time, at most once per ``cooldown`` for the whole
  fleet. Every reservation spaces slots by the CUBIC curve ``W(t) = c*(t-K)**3 + W_max`` from
  that shared state (capped at the configured rate): one stranger slows the fleet once.
* **Never silently local**: when Redis cannot be reached mid-run, ``acquire()`` waits with
  jittered exponential backoff (tenacity), logs and calls ``on_wait`` each time, and resumes when
  Redis is back; no request is ever sent without a slot. Other failures (wrong password, not a
  Redis server) raise :class:`~tcvpc.errors.QuotaBackendError`.

Keys: ``{PREFIX:SHA256(secret id)[:16]:REGION:ACTION}:slots`` and ``...:state``; the braces are a
Redis Cluster hash tag, so both keys of one budget live on one shard. The secret id itself never
reaches Redis. Keys expire after a minute without use.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions as rexc
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_delay,
    stop_never,
    wait_random_exponential,
)
from yarl import URL

from tcvpc import adaptive
from tcvpc.endpoint import is_loopback
from tcvpc.errors import QuotaBackendError
from tcvpc.ratelimit import DEFAULT_RATE, Permit

__all__ = [
    "BETA",
    "C",
    "QuotaBackendEvent",
    "RedisLimiterRegistry",
    "RedisRateLimiter",
    "cubic_rate",
    "redact_url",
]

logger = logging.getLogger("tcvpc.redis_limiter")

# The curve is tcvpc.adaptive's; the constants differ on purpose. Here W_max is the rate the fleet
# *sent* (counted from its slots), as botocore measures it, so botocore's beta and C fit; the
# in-process limiter measures what the server *admitted*, which allows a gentler cut.
BETA = 0.7
"""Fraction of the measured rate the fleet drops to on a throttle."""
C = 0.4
"""CUBIC's scaling constant: how fast the rate returns to W_max and probes beyond."""


def cubic_rate(elapsed: float, w_max: float, *, beta: float = BETA, c: float = C) -> float:
    """:func:`tcvpc.adaptive.cubic_rate` with the fleet's constants (the Lua script's twin)."""
    return adaptive.cubic_rate(elapsed, w_max, beta=beta, c=c)


_WINDOW_US = 1_000_000
_EPSILON_US = 1_000  # the guard's margin, as the local limiter's
_KEY_TTL_MS = 60_000
_CATCH_UP, _BUCKET_MIN, _BUCKET_MAX = 0.05, 1.5, 5.0
_OFFSET_MEMORY = 1.0
_FLOOR_RATE = 0.5
"""The adaptive curve never spaces slots further apart than two seconds."""

# Shared by the reservation script and the probe the tests compare with cubic_rate().
_LUA_CUBIC = """
local function cubic(elapsed, w_max, beta, c)
  local k = (w_max * (1 - beta) / c) ^ (1 / 3)
  local d = elapsed - k
  return c * d * d * d + w_max
end
"""

# KEYS: slots (sorted set: member = slot sequence number, score = microseconds, Redis time),
#       state (hash: last slot, seq, w_max, t_thr).
# ARGV: rate, n, beta, c, cooldown_us, throttled (0/1), floor rate, ttl_ms, catch-up us,
#       then pairs (sequence number, observed microseconds) for this process's earlier slots.
# Returns {seq, start_us, now_us, current rate as a string}: start when to send (maybe now).
_LUA_RESERVE = (
    _LUA_CUBIC
    + """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local base = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local beta = tonumber(ARGV[3])
local c = tonumber(ARGV[4])
local cooldown = tonumber(ARGV[5])
local floor = tonumber(ARGV[7])
local ttl = tonumber(ARGV[8])
local function us(x) return string.format('%.0f', x) end

local catchup = tonumber(ARGV[9])
for i = 10, #ARGV, 2 do
  redis.call('ZADD', KEYS[1], 'XX', 'GT', ARGV[i + 1], ARGV[i])
end

local st = redis.call('HMGET', KEYS[2], 'last', 'w_max', 't_thr', 'prev')
local last = tonumber(st[1])
local prev = tonumber(st[4])
local w_max = tonumber(st[2])
local t_thr = tonumber(st[3])

if ARGV[6] == '1' and (t_thr == nil or now - t_thr >= cooldown) then
  local sent = redis.call('ZCOUNT', KEYS[1], '(' .. us(now - 1000000), us(now))
  w_max = math.max(sent, floor)
  t_thr = now
  redis.call('HSET', KEYS[2], 'w_max', string.format('%.17g', w_max), 't_thr', us(t_thr))
end

local rate = base
if t_thr ~= nil and w_max ~= nil then
  rate = math.min(base, math.max(floor, cubic((now - t_thr) / 1000000, w_max, beta, c)))
end

-- The pacing grid ('last') may lag "now" by the catch-up: slots missed while every process
-- was busy, or while the guard below held one back, are granted at once (a few), as the local
-- limiter's 50 ms bucket does. Starts never go backwards ('prev'): the guard's proof needs
-- slot order to be start order.
local grid = now - catchup
if last ~= nil and last + 1000000 / rate > grid then grid = last + 1000000 / rate end
local slot = grid
if prev ~= nil and prev > slot then slot = prev end
local seq = redis.call('HINCRBY', KEYS[2], 'seq', 1)
-- The window guard: one second after the n-th previous slot's request ended (or started late).
local kth = redis.call('ZSCORE', KEYS[1], seq - n)
if kth then
  local guard = tonumber(kth) + 1000000 + 1000
  if guard > slot then slot = guard end
end
slot = math.floor(slot + 0.5)

local start = math.max(slot, now)
redis.call('ZADD', KEYS[1], us(start), seq)
redis.call('ZREM', KEYS[1], seq - 2 * n)
redis.call('HSET', KEYS[2], 'last', us(grid), 'prev', us(start))
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
return {seq, start, now, string.format('%.17g', rate)}
"""
)

_LUA_CUBIC_PROBE = (
    _LUA_CUBIC
    + """
return string.format('%.17g', cubic(tonumber(ARGV[1]), tonumber(ARGV[2]),
                                    tonumber(ARGV[3]), tonumber(ARGV[4])))
"""
)

# Worth waiting for: Redis restarting, a network blip, a failover in progress.
_TRANSIENT: tuple[type[BaseException], ...] = (
    rexc.ConnectionError,
    rexc.TimeoutError,
    rexc.BusyLoadingError,
    rexc.ReadOnlyError,
    OSError,
)
_MIN_REDIS = (6, 2)  # ZADD ... XX GT
_TELL_EVERY = 5.0


def redact_url(url: str) -> str:
    """The URL without its password (and without a query, which may carry one)."""
    try:
        parsed = URL(url)
        if parsed.password is not None:
            parsed = parsed.with_password("***")
        return str(parsed.with_query(None).with_fragment(None))
    except (ValueError, TypeError):
        return "<unparsable Redis URL>"


@dataclass(frozen=True, slots=True)
class QuotaBackendEvent:
    """What ``on_wait`` is told: Redis is unreachable (``waiting``), or back (``not waiting``)."""

    url: str
    """The Redis URL without its password."""
    waiting: bool
    attempt: int = 0
    delay: float = 0.0
    """Seconds until the next try."""
    error: str = ""

    def __str__(self) -> str:
        if not self.waiting:
            return f"quota backend: Redis at {self.url} is back; sending again"
        return (
            f"quota backend: Redis at {self.url} unreachable ({self.error}); no request is sent "
            f"without a slot: retrying in {self.delay:.1f} s (attempt {self.attempt})"
        )


@dataclass(slots=True)
class _Reservation:
    seq: int
    slot_us: int
    now_us: int
    rate: float
    offset: float
    """Redis time minus this loop's clock (an upper bound: reported times are never early)."""


class _ClockOffset:
    """Bounds on (Redis time - this loop's clock) from the recent round trips.

    Redis read ``TIME`` between our send and our receive, so ``now - received <= offset <= now -
    sent``; the tightest bounds come from the fastest recent round trip (a loaded machine makes
    most of them slow). Samples older than a second are dropped, so a clock slewing under NTP
    cannot make a bound wrong by more than a fraction of a millisecond.
    """

    def __init__(self) -> None:
        self._samples: deque[tuple[float, float, float]] = deque()

    def add(self, *, sent: float, received: float, redis_now: float) -> tuple[float, float]:
        """Record one round trip; returns (lower, upper) bounds on the offset."""
        samples = self._samples
        samples.append((received, redis_now - received, redis_now - sent))
        while samples[0][0] < received - _OFFSET_MEMORY:
            samples.popleft()
        lower, upper = max(s[1] for s in samples), min(s[2] for s in samples)
        if lower > upper:  # Redis's clock jumped (a failover to another server): start afresh
            samples.clear()
            samples.append((received, redis_now - received, redis_now - sent))
            lower, upper = redis_now - received, redis_now - sent
        return lower, upper


class RedisLimiterRegistry:
    """A ``Limiters`` registry whose budgets live in Redis, shared by every process using it.

    ``redis``: a URL (``redis://``, ``rediss://``, ``unix://``; the registry owns the connection
    pool and :meth:`aclose` closes it) or a ``redis.asyncio.Redis`` you own. ``rate`` is each
    budget's rate (default 99.5; at most ``ceil(rate)`` start in any sliding second at the
    server). Plain ``redis://`` to a host that is not loopback carries the password and the
    traffic in clear text: refused unless ``allow_insecure``. ``max_wait``: how long ``acquire``
    waits for an unreachable Redis before raising (``None``: until it is back).
    Call :meth:`check` once before sending anything: it turns a wrong URL, password or port into
    a :class:`~tcvpc.errors.QuotaBackendError` at start instead of a wait. ``account``: the
    name every process of the fleet keys its budgets by (hashed; see :meth:`use_account`);
    default: what the client passes, the secret id of a static ``Credential``.
    """

    def __init__(
        self,
        redis: str | aioredis.Redis,
        *,
        rate: float = DEFAULT_RATE,
        prefix: str = "tcvpc",
        beta: float = BETA,
        c: float = C,
        cooldown: float = 0.5,
        latency_allowance: float = 0.25,
        max_backoff: float = 2.0,
        max_wait: float | None = None,
        allow_insecure: bool = False,
        account: str | None = None,
        on_wait: Callable[[QuotaBackendEvent], None] | None = None,
    ) -> None:
        if not (isinstance(rate, int | float) and math.isfinite(rate) and rate > 0):
            raise ValueError(f"rate must be a positive number of requests per second: {rate!r}")
        if not 0 < beta < 1:
            raise ValueError(f"beta must be between 0 and 1, not {beta!r}")
        if not c > 0:
            raise ValueError(f"c must be positive, not {c!r}")
        if not prefix or "{" in prefix or "}" in prefix:
            raise ValueError("prefix must be non-empty and contain no braces (the hash tag's)")
        self.rate = float(rate)
        self.window_limit = max(1, math.ceil(self.rate))
        # 50 ms of slots (1.5 to 5) may be granted late, at once (the local bucket holds 0.2 s).
        tokens = min(_BUCKET_MAX, max(_BUCKET_MIN, self.rate * _CATCH_UP))
        self._catch_up_us = round(tokens / self.rate * 1e6)
        self.prefix = prefix
        self.beta, self.c = float(beta), float(c)
        self._cooldown_us = round(cooldown * 1e6)
        self._allowance = latency_allowance
        self._max_backoff = max_backoff
        self._max_wait = max_wait
        self.on_wait = on_wait
        self._account = account
        if isinstance(redis, str):
            self.url = redact_url(redis)
            _vet_url(redis, self.url, allow_insecure=allow_insecure)
            self.redis: aioredis.Redis = _client_from_url(redis, self.url)
            self._owns_client = True
        else:
            self.redis = redis
            kwargs = redis.connection_pool.connection_kwargs
            where = kwargs.get("path") or f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"
            self.url = f"redis at {where}"
            self._owns_client = False
        self._reserve = self.redis.register_script(_LUA_RESERVE)
        self._probe = self.redis.register_script(_LUA_CUBIC_PROBE)
        self._limiters: dict[tuple[str, str, str], RedisRateLimiter] = {}
        self._told_waiting_at: float | None = None
        self._offset = _ClockOffset()

    def __repr__(self) -> str:
        return f"RedisLimiterRegistry({self.url!r}, rate={self.rate}, prefix={self.prefix!r})"

    def rate_for(self, action: str) -> float:
        return self.rate

    def use_account(self, account: str) -> None:
        """Key every budget by ``account`` from now on, whatever the client passes to :meth:`get`.

        Call it before the first request. A ``VpcClient`` keys a static ``Credential`` by its
        secret id, which every process shares; a credential *provider* by a per-process name,
        which no other process shares: a fleet using providers must name its account here (or
        pass ``account=``), e.g. with the secret id the provider returned.
        """
        if not account:
            raise ValueError("account must be a non-empty string")
        self._account = account
        self._limiters.clear()

    def get(self, *, account: str, region: str, action: str) -> RedisRateLimiter:
        """The limiter of one budget (made on first use; cheap, no I/O)."""
        account = self._account or account
        key = (account, region, action)
        limiter = self._limiters.get(key)
        if limiter is None:
            account_hash = hashlib.sha256(account.encode("utf-8")).hexdigest()[:16]
            tag = f"{{{self.prefix}:{account_hash}:{region}:{action}}}"
            limiter = RedisRateLimiter(self, slots_key=f"{tag}:slots", state_key=f"{tag}:state")
            self._limiters[key] = limiter
        return limiter

    async def check(self) -> None:
        """Reach Redis once (PING, version, script): a clear error now rather than a wait later."""
        problem: str | None = None
        try:
            await self.redis.ping()
            info = await self.redis.info("server")
            version = str(info.get("redis_version", ""))
            parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
            if len(parts) == 2 and parts < _MIN_REDIS:
                problem = f"Redis at {self.url} is version {version}; the shared limiter needs 6.2+"
            else:
                await self.cubic_in_redis(1.0, 100.0)
        except rexc.AuthenticationError as exc:
            problem = (
                f"Redis at {self.url} refused the credentials (wrong password or user?): {exc}"
            )
        except (rexc.ConnectionError, rexc.TimeoutError, OSError) as exc:
            problem = f"cannot reach Redis at {self.url}: {_describe(exc)}"
        except rexc.RedisError as exc:
            problem = (
                f"Redis at {self.url} failed the check (is it a Redis server?): {_describe(exc)}"
            )
        if problem is not None:
            # Raised here, outside the handler: no chained redis error (__context__) to leak.
            raise QuotaBackendError(problem)

    async def cubic_in_redis(self, elapsed: float, w_max: float) -> float:
        """The Lua twin of :func:`cubic_rate`, evaluated in Redis (the tests compare the two)."""
        args = [repr(elapsed), repr(w_max), repr(self.beta), repr(self.c)]
        return float(await self._probe(keys=[], args=args))

    async def aclose(self) -> None:
        """Close the connection pool if the registry made it (from a URL). Idempotent."""
        if self._owns_client:
            await self.redis.aclose()

    async def __aenter__(self) -> RedisLimiterRegistry:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- used by the limiters -------------------------------------------------------------

    async def _reserve_with_backoff(
        self, keys: list[str], args: list[Any]
    ) -> tuple[list[Any], float]:
        """Run the reservation script; wait out an unreachable Redis, raise anything else.

        Returns the script's answer and the loop time just before the call that succeeded (the
        caller's clock offset to Redis is measured from it, not from before the waits).
        """
        loop = asyncio.get_running_loop()
        sent = loop.time()
        waited = False

        def before_sleep(state: RetryCallState) -> None:
            nonlocal waited
            waited = True
            exc = state.outcome.exception() if state.outcome is not None else None
            delay = state.next_action.sleep if state.next_action is not None else 0.0
            self._tell(
                QuotaBackendEvent(
                    self.url, True, state.attempt_number, delay, _describe(exc) if exc else ""
                )
            )

        retrying = AsyncRetrying(
            retry=retry_if_exception_type(_TRANSIENT),
            wait=wait_random_exponential(multiplier=0.1, max=self._max_backoff),
            stop=stop_never if self._max_wait is None else stop_after_delay(self._max_wait),
            before_sleep=before_sleep,
            reraise=True,
        )
        problem: str | None = None
        try:
            async for attempt in retrying:
                with attempt:
                    sent = loop.time()
                    result: list[Any] = await self._reserve(keys=keys, args=args)
        except _TRANSIENT as exc:
            problem = f"Redis at {self.url} unreachable for {self._max_wait} s: {_describe(exc)}"
        except rexc.RedisError as exc:
            problem = f"Redis at {self.url} refused the reservation: {_describe(exc)}"
        if problem is not None:
            raise QuotaBackendError(problem)  # outside the handler: nothing chained
        if waited:
            self._tell(QuotaBackendEvent(self.url, False))
        return result, sent

    def _tell(self, event: QuotaBackendEvent) -> None:
        """Log and call ``on_wait``: once when an outage starts, every few seconds while it lasts
        (every limiter of every task retries: one line each would flood a terminal), and once
        when Redis is back."""
        now = asyncio.get_running_loop().time()
        if event.waiting:
            if self._told_waiting_at is not None and now - self._told_waiting_at < _TELL_EVERY:
                return
            self._told_waiting_at = now
        else:
            if self._told_waiting_at is None:
                return
            self._told_waiting_at = None
        (logger.warning if event.waiting else logger.info)("%s", event)
        if self.on_wait is not None:
            self.on_wait(event)


def _client_from_url(raw: str, shown: str) -> aioredis.Redis:
    problem = ""
    try:
        return aioredis.Redis.from_url(
            raw,
            socket_connect_timeout=3.0,
            socket_timeout=5.0,
            # No silent retries inside redis-py (its default backs off up to 10 s per stale
            # connection after a restart): acquire() retries, says so, and backs off itself.
            retry=Retry(NoBackoff(), 0),
        )
    except (ValueError, TypeError, rexc.RedisError) as exc:
        problem = f"invalid Redis URL {shown}: {type(exc).__name__}"  # its text may quote the URL
    raise QuotaBackendError(problem)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _vet_url(raw: str, shown: str, *, allow_insecure: bool) -> None:
    try:
        url = URL(raw)
    except (ValueError, TypeError):
        url = None
    if url is None:
        raise QuotaBackendError(f"invalid Redis URL {shown}")
    if url.scheme not in ("redis", "rediss", "unix"):
        raise QuotaBackendError(
            f"invalid Redis URL {shown}: the scheme must be redis://, rediss:// or unix://"
        )
    if url.scheme == "redis" and not is_loopback(url.host or "") and not allow_insecure:
        raise QuotaBackendError(
            f"Redis URL {shown} is plain redis:// to a host that is not loopback: its password "
            "and traffic would travel in clear text; use rediss:// (or allow_insecure=True)"
        )


class RedisRateLimiter:
    """One budget (secret id, region, action) held in Redis; see the module docstring."""

    def __init__(self, registry: RedisLimiterRegistry, *, slots_key: str, state_key: str) -> None:
        self._registry = registry
        self._keys = [slots_key, state_key]
        self._fifo = asyncio.Lock()
        self._throttled = False
        self._rate = registry.rate
        # Permits whose start and end Redis has not heard of yet: (permit, reservation, told).
        self._unreported: list[tuple[Permit, _Reservation, bool]] = []

    @property
    def rate(self) -> float:
        """The fleet's slot rate at this process's last reservation."""
        return self._rate

    def on_throttled(self) -> None:
        """Carried by the next reservation, which lowers the fleet's rate (once per cooldown)."""
        self._throttled = True

    def on_admitted(self) -> None:
        """Nothing to do: Redis counts the fleet's rate from the slots it handed out."""

    async def acquire(self) -> Permit:
        async with self._fifo:
            loop = asyncio.get_running_loop()
            reg = self._registry
            throttled, self._throttled = self._throttled, False
            observed, unreported = self._observed(loop.time())
            args: list[Any] = [
                repr(reg.rate),
                reg.window_limit,
                repr(reg.beta),
                repr(reg.c),
                reg._cooldown_us,
                1 if throttled else 0,
                repr(_FLOOR_RATE),
                _KEY_TTL_MS,
                reg._catch_up_us,
                *observed,
            ]
            try:
                answer, sent = await reg._reserve_with_backoff(self._keys, args)
            except BaseException:
                self._throttled = self._throttled or throttled  # carried by the next one
                raise
            self._unreported = unreported  # told; kept for the next reservation otherwise
            received = loop.time()
            seq, slot_us, now_us, rate = answer
            lower, upper = reg._offset.add(sent=sent, received=received, redis_now=now_us / 1e6)
            reservation = _Reservation(int(seq), int(slot_us), int(now_us), float(rate), upper)
            self._rate = reservation.rate
            # Sleep until the slot by the lower bound: never early, late by the best round trip.
            delay = int(slot_us) / 1e6 - lower - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)  # cancelled here: the slot is wasted, which is safe
            permit = Permit(loop)
            self._unreported.append((permit, reservation, False))
            return permit

    def _observed(self, now: float) -> tuple[list[Any], list[tuple[Permit, _Reservation, bool]]]:
        """(seq, Redis microseconds) pairs: when earlier requests started, or ended; and the
        permits still to report once these are told."""
        out: list[Any] = []
        keep: list[tuple[Permit, _Reservation, bool]] = []
        allowance = self._registry._allowance
        for permit, res, told in self._unreported:
            ended = permit.ended
            limit = permit.started + allowance
            if ended is not None or now >= limit:
                at = min(ended if ended is not None else limit, limit)
            elif not told:
                at = permit.started
                keep.append((permit, res, True))
            else:
                keep.append((permit, res, told))
                continue
            out += [res.seq, f"{(at + res.offset) * 1e6:.0f}"]
        return out, keep

    def __repr__(self) -> str:
        return f"RedisRateLimiter({self._keys[0]!r}, rate={self._rate:.2f})"
