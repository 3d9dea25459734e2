"""Gateway lanes: a service's deletes to one VPN gateway take turns inside the client.

The API runs one task at a time per VPN gateway: while a delete runs there (the tunnel is
``DELETING``), another delete on that gateway is refused with ``MutexOperationTaskRunning``
(:class:`~tcvpc.errors.GatewayBusyError`). A service that gathers many deletes would otherwise
collide on every gateway and retry at random, spending the retry budget meant for failures.

* **One lane per (account, region, gateway).** A delete waits for its turn in FIFO order; the
  lane never holds back other gateways, other actions or the rate limiter (the lane is taken
  before the limiter's token, so a waiting delete holds no token).
* **Timed by what the client learned.** After an accepted delete the lane stays closed for
  :attr:`HoldEstimator.hold` seconds, the time the gateway's task is believed to need. The
  estimate starts at zero (no waiting until a gateway has been seen busy), grows when a delete
  sent after the hold still meets ``MutexOperationTaskRunning``, and shrinks slowly while deletes
  sent at the hold go through at once; it stays within ``[0, ceiling]``.
* **A busy gateway is expected, not a failure.** The lane retries a ``GatewayBusy`` answer itself
  when the estimate says the task is over, instead of the retry policy's random backoff (a
  gateway kept busy by someone else's task, which nothing times, gets the policy's jittered
  ``gateway_busy`` wait), and such a retry costs no retry budget. It is still bounded by the
  policy: ``gateway_busy.max_attempts`` busy answers, ``max_attempts`` attempts, and the call's
  ``deadline``, which counts from the call's start: waiting for the turn counts, as waiting for
  the rate limiter does.
* **No Describe look.** The lane does not poll ``DescribeVpnConnections`` to learn that a task is
  over: a tunnel's disappearance does not prove the gateway's mutex is free (the mutex may
  outlive it), the polls would spend the Describe quota the service itself uses, and the delete
  is the direct probe: a too-early one costs one delete token and no budget.
* **Cancellation-safe and bounded.** A cancelled waiter leaves the queue (a turn handed to it
  passes on); a cancelled holder releases the lane, which then counts the delete as possibly
  accepted. Lanes of idle gateways whose hold is over are dropped.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from tcvpc.errors import DeadlineExceededError, RetryKind, TcvpcError
from tcvpc.retry import Backoff, RetryPolicy

__all__ = ["GatewayLanes", "HoldEstimator", "LaneStats"]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
ACTION = "DeleteVpnConnection"
"""The one action lanes serve (named in their errors)."""


class Call(Protocol[T_co]):
    """One round of a call: ``(result, attempts made)``; a failure carries ``attempts`` and
    ``after_unknown_outcome`` (see :class:`~tcvpc.errors.TcvpcError`)."""

    def __call__(self, policy: RetryPolicy, *, deadline: float) -> Awaitable[tuple[T_co, int]]: ...


class HoldEstimator:
    """How long after an accepted delete its gateway stays busy, learned from the answers.

    ``hold`` only moves on evidence from our own deletes, measured from the answer of the
    previous accepted delete on the same gateway (its *offset*):

    * :meth:`busy`: a delete sent at ``offset`` met a busy gateway, so the task needs longer:
      ``hold`` becomes at least ``offset * grow`` (``* regrow`` when the same call already met
      a busy answer: the estimate is far off), and at least ``step`` when it was zero.
    * :meth:`free`: a delete sent at about ``hold`` went through at once: ``hold * shrink``, so
      the estimate keeps probing down toward the true duration (and to zero for a gateway
      without a mutex). A delete sent long after the hold says nothing and changes nothing.

    Growth is taken from the offset, not compounded on ``hold``, so many lanes that meet the
    same busy gateway at once do not multiply the estimate. One estimator is shared by the lanes
    of a client: the task takes about as long on every gateway, so they learn together.
    """

    def __init__(
        self,
        *,
        initial: float = 0.0,
        ceiling: float = 30.0,
        step: float = 0.1,
        grow: float = 1.1,
        regrow: float = 1.5,
        shrink: float = 0.99,
    ) -> None:
        if not 0 <= initial <= ceiling:
            raise ValueError("HoldEstimator: need 0 <= initial <= ceiling")
        if not 0 < step <= ceiling:
            raise ValueError("HoldEstimator: need 0 < step <= ceiling")
        if not (grow > 1 and regrow > 1 and 0 < shrink < 1):
            raise ValueError("HoldEstimator: need grow > 1, regrow > 1 and 0 < shrink < 1")
        self.hold = float(initial)
        self.ceiling = float(ceiling)
        self.step = float(step)
        self.grow = grow
        self.regrow = regrow
        self.shrink = shrink

    def __repr__(self) -> str:
        return f"HoldEstimator(hold={self.hold:.3f})"

    def busy(self, offset: float, *, repeat: bool = False) -> None:
        """A delete sent ``offset`` seconds after the previous accept found the gateway busy."""
        factor = self.regrow if repeat else self.grow
        least = self.step if self.hold == 0.0 else 0.0  # a first sighting: at least one step
        self.hold = min(self.ceiling, max(self.hold, least, max(0.0, offset) * factor))

    def free(self, offset: float) -> None:
        """A delete sent ``offset`` seconds after the previous accept went through at once."""
        if self.hold == 0.0 or offset > self.hold * 1.1 + 0.02:
            return  # sent long after the hold: says nothing about the task's length
        self.hold *= self.shrink
        if self.hold < self.step / 20:
            self.hold = 0.0  # no mutex to speak of: stop waiting altogether


@dataclass(slots=True)
class LaneStats:
    """Counters for metrics and benchmarks."""

    turns: int = 0
    """Calls that ran in a lane."""
    waited: int = 0
    """Calls that queued behind another call on their gateway."""
    busy: int = 0
    """``GatewayBusy`` answers the lanes retried themselves (no retry budget spent)."""


class _Lane:
    """One gateway's turn: made per burst of calls, so it is kept as light as a lane can be."""

    __slots__ = ("accepted_at", "held", "taken_at", "waiters")

    def __init__(self, taken_at: float) -> None:
        self.held = True  # made for the call that takes it
        self.taken_at = taken_at
        """When a fresh turn (GatewayLanes.fresh_turn) took it: its call's deadline counts from
        then."""
        self.waiters: deque[asyncio.Future[None]] | None = None
        """Made when a second call queues (most lanes never see one)."""
        self.accepted_at: float | None = None
        """When our last delete here was (or may have been) accepted: its answer's time."""


def _one_busy_attempt(policy: RetryPolicy) -> RetryPolicy:
    """``policy`` with busy answers left to the lane: a round ends at its first one."""
    busy = policy.gateway_busy
    return dataclasses.replace(policy, gateway_busy=Backoff(busy.base, busy.cap, 1))


class GatewayLanes:
    """The lanes of one or more clients (pass one instance to several to share them).

    Lanes belong to one event loop, like the clients that use them.

    ``clock`` and ``sleep`` are injectable for tests; ``random`` draws the jitter of a wait
    for a gateway kept busy by someone else (that wait follows the policy's ``gateway_busy``
    schedule, as without lanes: there is nothing to time it by).
    """

    def __init__(
        self,
        estimator: HoldEstimator | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        random: Callable[[], float] = random.random,
    ) -> None:
        self.estimator = estimator if estimator is not None else HoldEstimator()
        self.stats = LaneStats()
        self._clock = clock
        self._sleep = sleep
        self._random = random
        self._lanes: dict[Hashable, _Lane] = {}
        self._sweep_at = 64
        self._round_policies: dict[int, tuple[RetryPolicy, RetryPolicy]] = {}
        """By ``id``: hashing a policy (seven dataclasses) on every call would cost more than
        the lane itself; the policy is kept, so its id is not reused meanwhile."""
        self._last_policy: RetryPolicy | None = None
        self._last_round = RetryPolicy()

    def round_policy(self, policy: RetryPolicy) -> RetryPolicy:
        """``policy`` for one round in a lane: its first busy answer ends the round."""
        if policy is self._last_policy:  # a client's calls mostly share its one policy
            return self._last_round
        cached = self._round_policies.get(id(policy))
        if cached is not None and cached[0] is policy:
            return cached[1]
        if len(self._round_policies) >= 32:
            self._round_policies.clear()
        derived = _one_busy_attempt(policy)
        self._round_policies[id(policy)] = (policy, derived)
        self._last_policy, self._last_round = policy, derived
        return derived

    def __len__(self) -> int:
        """Lanes currently kept (busy gateways, and idle ones whose hold is not over)."""
        return len(self._lanes)

    def __repr__(self) -> str:
        return f"GatewayLanes(lanes={len(self._lanes)}, {self.estimator!r})"

    async def run(
        self,
        key: Hashable,
        call: Call[T],
        policy: RetryPolicy,
        on_busy: Callable[[TcvpcError, int, float], object] | None = None,
        *,
        deadline: float | None = None,
    ) -> tuple[T, int]:
        """Run ``call`` in ``key``'s lane: after its turn, retrying busy answers in the lane.

        ``deadline`` (default: the policy's) bounds the whole call from now, the wait for the
        turn included, as it bounds the wait for the rate limiter: past it the call fails with
        :class:`~tcvpc.errors.DeadlineExceededError`. ``on_busy(error, attempt, delay)`` runs
        before the lane waits to retry a busy answer.
        """
        limit = _limit(policy, deadline)
        lane = self.fresh_turn(key, limit)  # a free gateway: the lane is made held by this call
        now = self._clock() if lane is None else lane.taken_at
        deadline_at = now + limit
        started: float | None = now
        if lane is None:
            self.stats.turns += 1
            lane = self._lanes[key]
            if lane.held:
                self.stats.waited += 1
                await self._queue(key, lane, deadline_at, limit)
                started = None  # waited: the first round reads the clock again
            else:
                lane.held = True
        try:
            return await self._rounds(lane, call, policy, on_busy, deadline_at, limit, started)
        finally:
            self._release(key, lane)

    def fresh_turn(self, key: Hashable, limit: float) -> _Lane | None:
        """The turn of a gateway without a lane, taken now; ``None`` when ``key`` has a lane.

        :meth:`run`'s first round, for its caller to run itself: without a lane there is no
        turn to wait for and no hold to time, and the round is the call the caller would hand
        to :meth:`run`, which spares run's coroutine and the call's wrapper per delete. The
        caller sends one round with :meth:`round_policy` and ``limit`` (the call's deadline,
        as ``run``'s), then calls exactly one of :meth:`end_turn` (an answer, or a
        ``BaseException`` that is not a ``TcvpcError``: cancelled in flight) or
        :meth:`after_failed_turn`, which goes on as :meth:`run` would after that round.
        """
        if not limit > 0:
            raise ValueError("deadline must be a positive number of seconds")
        lanes = self._lanes
        if key in lanes:
            return None
        if len(lanes) >= self._sweep_at:
            self._sweep()  # amortised: memory follows the busy gateways
        self.stats.turns += 1
        lane = lanes[key] = _Lane(self._clock())
        return lane

    def end_turn(self, key: Hashable, lane: _Lane) -> None:
        """A fresh turn's round ended without a ``TcvpcError``: answered, or cancelled in flight
        (it may have been accepted). The gateway's hold counts from now; the turn passes on."""
        lane.accepted_at = self._clock()
        self._release(key, lane)

    async def after_failed_turn(
        self,
        key: Hashable,
        lane: _Lane,
        error: TcvpcError,
        call: Call[T],
        policy: RetryPolicy,
        on_busy: Callable[[TcvpcError, int, float], object] | None,
        limit: float,
    ) -> tuple[T, int]:
        """A fresh turn's round raised ``error``: what :meth:`run` does next (a busy gateway is
        retried in the lane with ``call``, any other error raised); the turn passes on when
        this returns or raises."""
        try:
            return await self._rounds(
                lane, call, policy, on_busy, lane.taken_at + limit, limit, None, error
            )
        finally:
            del error  # this frame is in the traceback of what _rounds raises: no cycle
            self._release(key, lane)

    async def _rounds(
        self,
        lane: _Lane,
        call: Call[T],
        policy: RetryPolicy,
        on_busy: Callable[[TcvpcError, int, float], object] | None,
        deadline_at: float,
        limit: float,
        started: float | None,
        failed: TcvpcError | None = None,
    ) -> tuple[T, int]:
        """The call's rounds until one is not a busy answer the lane may retry.

        ``started``: when a first round that awaits nothing before it is sent starts (else the
        clock is read). ``failed``: the failure of a first round the caller ran itself on a
        fresh lane (:meth:`fresh_turn`), taken as this loop's first round.
        """
        attempts = 0
        unknown = False  # an earlier round's attempt may have taken effect
        busy = 0
        not_before = 0.0
        since_accept: float | None = None
        round_policy = self.round_policy(policy)
        while True:
            if failed is None:
                if lane.accepted_at is not None or not_before:
                    if attempts == 0 and self._due(lane, not_before) >= deadline_at:
                        raise _deadline_error(limit, "before the gateway's task would be over")
                    await self._wait_turn(lane, not_before)
                    started = None
                if started is None:
                    sent = self._clock()
                    remaining = deadline_at - sent
                else:  # a first round that awaited nothing starts when the call did
                    sent, remaining, started = started, limit, None
                since_accept = None if lane.accepted_at is None else sent - lane.accepted_at
                if attempts:  # a later round gets what is left of the call's attempts
                    round_policy = dataclasses.replace(
                        round_policy, max_attempts=policy.max_attempts - attempts
                    )
                try:
                    result, made = await call(round_policy, deadline=max(1e-3, remaining))
                except TcvpcError as exc:
                    # Handled below, outside this block: the next round's failure must not
                    # carry this one as its __context__.
                    failed = exc
                except BaseException:
                    # Cancelled in flight: it may have been accepted.
                    lane.accepted_at = self._clock()
                    raise
                else:
                    if busy == 0 and made == 1 and since_accept is not None:
                        self.estimator.free(since_accept)
                    lane.accepted_at = self._clock()
                    return result, attempts + made
            error, failed = failed, None
            error.attempts += attempts
            error.after_unknown_outcome = error.after_unknown_outcome or unknown
            if error.retry_kind is not RetryKind.GATEWAY_BUSY:
                if error.may_have_taken_effect:
                    lane.accepted_at = self._clock()  # it may hold the gateway now
                break
            attempts = error.attempts
            unknown = error.may_have_taken_effect
            busy += 1
            self.stats.busy += 1
            not_before = self._after_busy(lane, since_accept, busy, policy)
            due = self._due(lane, not_before)
            give_up = self._give_up(policy, attempts, busy, due >= deadline_at)
            if give_up:
                error.add_note(f"gateway lane: gave up after {give_up}")
                break
            if on_busy is not None:
                on_busy(error, attempts, max(0.0, due - self._clock()))
        # Raised with the local dropped as it leaves: a frame that holds the exception it raises
        # is in its traceback, a cycle only the garbage collector frees (every not-found delete
        # of a cleanup job made one).
        try:
            raise error
        finally:
            del error

    async def _queue(self, key: Hashable, lane: _Lane, deadline_at: float, limit: float) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters = lane.waiters
        if waiters is None:
            waiters = lane.waiters = deque()
        waiters.append(waiter)
        timeout = asyncio.timeout(deadline_at - self._clock())
        try:
            async with timeout:
                try:
                    await waiter
                except asyncio.CancelledError:
                    if waiter.done() and not waiter.cancelled():
                        self._release(key, lane)  # the turn came as we were cancelled: pass it on
                    else:
                        waiters.remove(waiter)
                    raise
        except TimeoutError:
            if not timeout.expired():
                raise
            raise _deadline_error(limit, "while waiting for its turn on the gateway") from None

    def _release(self, key: Hashable, lane: _Lane) -> None:
        waiters = lane.waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the lane stays held: it passes to this waiter
                return
        lane.held = False
        if self._expired(lane) and self._lanes.get(key) is lane:
            del self._lanes[key]

    def _expired(self, lane: _Lane) -> bool:
        accepted_at = lane.accepted_at
        if accepted_at is None:
            return True
        hold = self.estimator.hold
        # With no hold a lane is over once accepted (the clock does not run back): no reading.
        return hold <= 0.0 or self._clock() >= accepted_at + hold

    def _sweep(self) -> None:
        """Drop idle lanes whose hold is over; amortised, so memory follows the busy gateways."""
        for key in [k for k, lane in self._lanes.items() if not lane.held and self._expired(lane)]:
            del self._lanes[key]
        self._sweep_at = max(64, 2 * len(self._lanes))

    def _due(self, lane: _Lane, not_before: float) -> float:
        """When the lane's next delete may go: the hold after its last accept is over."""
        if lane.accepted_at is None:
            return not_before
        return max(not_before, lane.accepted_at + self.estimator.hold)

    async def _wait_turn(self, lane: _Lane, not_before: float) -> None:
        """Sleep until :meth:`_due` (re-read after each sleep: the estimate may have grown)."""
        while (delay := self._due(lane, not_before) - self._clock()) > 0:
            await self._sleep(delay)

    def _after_busy(
        self, lane: _Lane, since_accept: float | None, busy: int, policy: RetryPolicy
    ) -> float:
        """Learn from a busy answer; the earliest time for the next try (besides the hold)."""
        estimator = self.estimator
        if since_accept is not None and since_accept <= 2 * max(estimator.hold, estimator.step):
            # Sent at about the hold after our own accepted delete: the estimate was short.
            estimator.busy(since_accept, repeat=busy > 1)
            if self._due(lane, 0.0) > self._clock():
                return 0.0  # the grown hold says when (at its ceiling it may not: back off)
        # Someone else's task, or one of ours we no longer remember: nothing to time it by, so
        # the policy's own full-jitter schedule for a busy gateway.
        backoff = policy.gateway_busy
        window = min(backoff.cap, backoff.base * 2.0 ** (busy - 1))
        return self._clock() + window * self._random()

    def _give_up(self, policy: RetryPolicy, attempts: int, busy: int, too_late: bool) -> str:
        """Why the lane stops retrying a busy gateway, or ``""`` to go on (the policy's bounds)."""
        if busy >= policy.gateway_busy.max_attempts:
            return f"{busy} busy answers (the policy's gateway_busy.max_attempts)"
        if attempts >= policy.max_attempts:
            return f"{attempts} attempts (the policy's max_attempts)"
        if too_late:
            return f"{busy} busy answers: a next try would start after the call's deadline"
        return ""


def _limit(policy: RetryPolicy, deadline: float | None) -> float:
    limit = policy.deadline if deadline is None else deadline
    if not limit > 0:
        raise ValueError("deadline must be a positive number of seconds")
    return limit


def _deadline_error(limit: float, when: str) -> DeadlineExceededError:
    return DeadlineExceededError(
        f"{ACTION}: the call's deadline of {limit:g}s passed {when} (nothing was sent)",
        action=ACTION,
        deadline=limit,
        sent=False,
    )
