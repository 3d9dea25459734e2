"""When and how long to retry: a frozen :class:`RetryPolicy`, turned into tenacity per call.

* **Full jitter** (``wait_random_exponential``): every retry waits a uniformly random time in
  ``[0, min(cap, base * 2**(attempt-1))]``. Un-jittered schedules (every official Tencent SDK)
  make a fleet of workers that failed together retry together.
* **A schedule per error kind** (:class:`tcvpc.errors.RetryKind`): throttling starts around 1 s,
  transient faults around 0.1 s, a busy gateway's mutex or a tunnel mid-task (tasks that take
  seconds) slower; each kind also has its own attempt bound.
* **Bounded**: a maximum number of attempts and a deadline per call, counted from the call's
  start (queueing for the rate limiter included); a retry that would *start* after the deadline
  is not made (``stop_before_delay``), and the client cuts a wait or an attempt that runs past it.
* **Budgeted**: a :class:`RetryBudget` shared by a client (botocore's standard mode): a retry
  spends tokens, a first-try success returns one, so a systemic outage cannot multiply traffic.
  A call cancelled by its caller returns what it spent (it did not fail, it was abandoned).
* ``asyncio.CancelledError`` is never retried: only :class:`TcvpcError` with a retry kind is.

One ``AsyncRetrying`` is built per call that needs it: tenacity keeps per-call state in it, so one
shared by concurrent calls would mix their attempt counts. The client makes a call's first
attempt before building it (most calls succeed at once, and tenacity's per-call set-up costs
about as much as signing a request); a first failure is handed to tenacity as its attempt 1, so
every retry decision is still tenacity's.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    stop_after_attempt,
    stop_before_delay,
    wait_random_exponential,
)

from tcvpc.errors import RetryKind, TcvpcError


@dataclass(frozen=True, slots=True)
class Backoff:
    """The schedule for one kind of error.

    ``base``: the first retry waits up to this many seconds; the window doubles per attempt up
    to ``cap``. ``max_attempts``: attempts in total (first try included) that end in this kind.
    """

    base: float
    cap: float
    max_attempts: int

    def __post_init__(self) -> None:
        if self.base < 0 or self.cap < 0:
            raise ValueError("Backoff: base and cap must be >= 0")
        if self.max_attempts < 1:
            raise ValueError("Backoff: max_attempts must be >= 1")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How one call retries. The defaults suit a service: a call gives up within about a minute.

    Use :meth:`patient` for bulk jobs, :meth:`no_retries` to see every error, and
    :meth:`without_waits` in tests (same decisions, no sleeping).
    """

    max_attempts: int = 10
    deadline: float = 60.0
    """Seconds from the call's start (limiter queueing included) within which the call ends:
    no attempt starts later, a wait for the limiter or an attempt still running then is cut
    short with :class:`tcvpc.errors.DeadlineExceededError`."""
    throttled: Backoff = Backoff(base=1.0, cap=20.0, max_attempts=8)
    transient: Backoff = Backoff(base=0.1, cap=20.0, max_attempts=6)
    resource_busy: Backoff = Backoff(base=0.5, cap=10.0, max_attempts=4)
    gateway_busy: Backoff = Backoff(base=1.0, cap=20.0, max_attempts=10)
    invalid_state: Backoff = Backoff(base=2.0, cap=20.0, max_attempts=5)
    clock_skew: Backoff = Backoff(base=0.0, cap=0.0, max_attempts=2)
    """One re-sign with the corrected clock, immediately."""
    token_expired: Backoff = Backoff(base=0.0, cap=0.0, max_attempts=2)
    """One re-sign with a freshly refreshed credential, immediately."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("RetryPolicy: max_attempts must be >= 1")
        if not self.deadline > 0:
            raise ValueError("RetryPolicy: deadline must be > 0 seconds")

    def backoff(self, kind: RetryKind) -> Backoff:
        """The schedule for ``kind`` (each kind's value names its field)."""
        backoff: Backoff = getattr(self, kind.value)
        return backoff

    @classmethod
    def patient(cls) -> RetryPolicy:
        """For bulk jobs: up to 10 minutes and 30 attempts a call, still jittered and capped."""
        return cls(
            max_attempts=30,
            deadline=600.0,
            throttled=Backoff(1.0, 20.0, 20),
            transient=Backoff(0.1, 20.0, 12),
            resource_busy=Backoff(0.5, 20.0, 8),
            gateway_busy=Backoff(1.0, 20.0, 25),
            invalid_state=Backoff(2.0, 20.0, 10),
        )

    @classmethod
    def no_retries(cls) -> RetryPolicy:
        return cls(max_attempts=1)

    def without_waits(self) -> RetryPolicy:
        """The same decisions with every wait zero: for tests, never for production."""
        changes: dict[str, Any] = {
            f.name: Backoff(0.0, 0.0, value.max_attempts)
            for f in dataclasses.fields(self)
            if isinstance(value := getattr(self, f.name), Backoff)
        }
        return dataclasses.replace(self, **changes)


@dataclass(slots=True)
class RetryBudget:
    """Token bucket for retries shared by one client (botocore's "standard" retry quota).

    A retry spends ``retry_cost`` tokens (``timeout_cost`` when the failed attempt's outcome is
    unknown: those are the expensive failures); a call that succeeds on its first attempt puts
    ``success_refund`` back; a call that succeeds after retrying returns what it spent. When the
    bucket cannot pay, the call fails with its last error instead of retrying.
    """

    capacity: int = 500
    retry_cost: int = 5
    timeout_cost: int = 10
    success_refund: int = 1
    available: int = field(init=False)

    def __post_init__(self) -> None:
        for name in ("capacity", "retry_cost", "timeout_cost", "success_refund"):
            value = getattr(self, name)
            if type(value) is not int or value < 0:
                raise ValueError(f"RetryBudget {name} must be an int >= 0, not {value!r}")
        self.available = self.capacity

    def settle(self, spent: int) -> None:
        """A call succeeded after withdrawing ``spent``: return that, or the first-try refund."""
        if self.available < self.capacity:  # a full bucket (the usual case) takes nothing
            self.deposit(spent if spent else self.success_refund)

    def withdraw(self, cost: int) -> bool:
        if cost > self.available:
            return False
        self.available -= cost
        return True

    def deposit(self, amount: int) -> None:
        self.available = min(self.capacity, self.available + amount)


def retry_kind(exc: BaseException | None) -> RetryKind | None:
    return exc.retry_kind if isinstance(exc, TcvpcError) else None


@lru_cache(maxsize=32)
def _waits(policy: RetryPolicy) -> dict[RetryKind, wait_random_exponential]:
    """Each kind's full-jitter wait; built once per policy (policies are frozen, hashable)."""
    return {
        kind: wait_random_exponential(
            multiplier=policy.backoff(kind).base, max=policy.backoff(kind).cap
        )
        for kind in RetryKind
    }


class CallRetrying:
    """The tenacity machinery for one call: kind-aware wait and stop, the budget, the hook.

    ``on_retry(exception, attempt_number, delay)`` runs before each sleep (logging, metrics).
    ``remaining``: seconds left before the call's deadline; no retry starts after it.
    """

    def __init__(
        self,
        policy: RetryPolicy,
        budget: RetryBudget | None,
        on_retry: Callable[[TcvpcError, int, float], None] | None = None,
        *,
        remaining: float | None = None,
    ) -> None:
        self.policy = policy
        self.budget = budget
        self.spent = 0
        self.budget_exhausted = False
        """True when the budget refused a retry that was otherwise due."""
        self._on_retry = on_retry
        self._failures: Counter[RetryKind] = Counter()
        self._waits = _waits(policy)
        self._stop_common = stop_after_attempt(policy.max_attempts) | stop_before_delay(
            policy.deadline if remaining is None else max(0.0, remaining)
        )

    def _kind(self, state: RetryCallState) -> RetryKind:
        assert state.outcome is not None
        kind = retry_kind(state.outcome.exception())
        assert kind is not None  # _retry let only these through
        return kind

    def _retry(self, state: RetryCallState) -> bool:
        return state.outcome is not None and retry_kind(state.outcome.exception()) is not None

    def _count(self, state: RetryCallState) -> None:
        self._failures[self._kind(state)] += 1

    def _wait(self, state: RetryCallState) -> float:
        return self._waits[self._kind(state)](state)

    def _stop(self, state: RetryCallState) -> bool:
        kind = self._kind(state)
        if self._failures[kind] >= self.policy.backoff(kind).max_attempts:
            return True
        if self._stop_common(state):
            return True
        if self.budget is None or kind in (RetryKind.CLOCK_SKEW, RetryKind.TOKEN_EXPIRED):
            return False
        assert state.outcome is not None
        exc = state.outcome.exception()
        unknown = isinstance(exc, TcvpcError) and exc.outcome_unknown
        cost = self.budget.timeout_cost if unknown else self.budget.retry_cost
        if not self.budget.withdraw(cost):
            self.budget_exhausted = True
            return True
        self.spent += cost
        return False

    def _before_sleep(self, state: RetryCallState) -> None:
        if self._on_retry is None or state.outcome is None:
            return
        exc = state.outcome.exception()
        assert isinstance(exc, TcvpcError)
        self._on_retry(exc, state.attempt_number, state.upcoming_sleep)

    def succeeded(self) -> None:
        """Settle the budget after a successful call."""
        if self.budget is not None:
            self.budget.settle(self.spent)

    def refund(self) -> None:
        """Return everything this call withdrew: its caller abandoned it (cancellation)."""
        if self.budget is not None and self.spent:
            self.budget.deposit(self.spent)
            self.spent = 0

    def retrying(self) -> AsyncRetrying:
        return AsyncRetrying(
            retry=self._retry,
            after=self._count,
            wait=self._wait,
            stop=self._stop,
            before_sleep=self._before_sleep,
            reraise=True,
        )
