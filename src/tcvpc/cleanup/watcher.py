"""Learning when a deleted tunnel is gone, so its gateway can take the next delete.

An accepted delete holds the gateway's mutex for the duration of the task (seconds). Sending the
next delete on that gateway earlier only earns ``MutexOperationTaskRunning`` and spends the
account's delete quota (100/s, the job's real limit) on nothing. The task's end is visible: the
tunnel leaves ``DELETING`` and disappears from ``DescribeVpnConnections``, which has its own,
separate quota. So the job watches deleted tunnels with Describe and frees the gateway's slot the
moment its tunnel is gone; the client's ``GatewayBusyError`` retry stays as the fallback when the
mutex outlives the tunnel.

How the polls are shaped:

* **Filters, 5 IDs per call.** ``VpnConnectionIds`` would take 100, but the API answers
  ``ResourceNotFound`` for the whole call as soon as one of them is gone, which is exactly the
  news we poll for. The ``vpn-connection-id`` filter silently omits gone tunnels; it takes at most
  5 values. One call covers tunnels of 5 different gateways.
* **Polls when a tunnel is due, not on a fixed tick.** The watcher learns the delete duration from
  what it saw: ``hi`` is the shortest time after which a tunnel was seen gone, ``lo`` the longest
  after which one was still there. The first look at a new tunnel is at ``hi`` (most are gone by
  then); while the window ``(lo, hi)`` is wider than 0.5% of ``hi``, one watch in three looks at
  its middle instead (a bisection across tunnels; if the tunnel is still there, the next look
  is at ``hi``), so the window narrows to the true duration within a few dozen tunnels. A
  tunnel still there is looked at again after 10% of the time it has been watched (at least
  20 ms, at most 2 s): quick for short tasks, cheap for long ones; but while it is younger than
  twice the learned duration, after at most 2% of that duration and at least 10 ms (a look just
  before the end is the common case, and its gateway idles until the next).
* **Coalescing.** When a look is due, tunnels due within the next few milliseconds ride along, so
  calls carry 5 IDs whenever there are 5 to carry.
* **A failed poll is not retried, it is re-polled.** A poll that meets an error (throttled, a
  server fault, a dropped connection) gives up at once and its tunnels are looked at again after
  ``retry_after``: a retry inside the call would sleep for the throttle schedule (seconds) while
  up to five gateways wait for the answer, and the next look is a retry anyway (the client's
  limiter and throttle pacer still bound the rate).
* **An overdue poll is hedged, a stalled one abandoned.** A poll unanswered after four times
  the 95th percentile of recent polls (at least ``min_poll_hedge``) is sent once more, and the
  first answer wins: Describe only reads, and up to five gateways wait on its answer. If neither
  has answered ``min_poll_timeout`` (or four times the 95th percentile) later, both are cancelled
  and the tunnels polled again at once.
* **Looks for the engine's hedge.** :meth:`DeletionWatcher.look` asks once, as soon as possible
  (riding in the next batch), whether a tunnel whose delete has not been answered yet is
  ``DELETING`` or gone: the engine frees its gateway on that evidence instead of waiting out a
  stalled answer. A hedged watch does not teach the estimator (its start is not the delete's).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import heapq
import itertools
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from tcvpc.apilimits import MAX_FILTER_VALUES
from tcvpc.cleanup.protocol import CleanupClient
from tcvpc.errors import AuthError, TcvpcError
from tcvpc.models import TunnelRef, TunnelState
from tcvpc.retry import RetryPolicy

__all__ = ["DelayEstimator", "DeletionWatcher", "WatchResult"]

_POLL_POLICY = RetryPolicy.no_retries()


class WatchResult(enum.Enum):
    GONE = "gone"
    """The tunnel disappeared: the delete task is over."""
    NOT_DELETING = "not_deleting"
    """The tunnel is there but no longer ``DELETING``: the task ended without deleting it."""
    TIMEOUT = "timeout"
    """Still ``DELETING`` after the watcher's timeout."""
    DELETING = "deleting"
    """Only from :meth:`DeletionWatcher.look`: the tunnel is ``DELETING`` (a delete acted)."""


class DelayEstimator:
    """Bounds on how long after its delete was acknowledged a tunnel disappears."""

    def __init__(self, initial: float = 0.2, window: int = 16) -> None:
        self.initial = initial
        self._gone: deque[float] = deque(maxlen=window)
        self._present: deque[float] = deque(maxlen=window)
        self._counter = itertools.count()

    def saw_gone(self, delay: float) -> None:
        self._gone.append(delay)

    def saw_present(self, delay: float) -> None:
        self._present.append(delay)

    @property
    def bounds(self) -> tuple[float, float | None]:
        lo = max(self._present, default=0.0)
        hi = min(self._gone, default=None)
        return lo, hi

    def first_look(self) -> float:
        """Seconds after the acknowledgement to look first."""
        lo, hi = self.bounds
        if hi is None:
            return max(self.initial, lo)
        gap = hi - lo
        # Wide: more than 0.5% of the duration (1 ms at least), each ms of it is on a chain.
        if gap > max(0.005 * hi, 0.001) and next(self._counter) % 3 == 0:
            return (lo + hi) / 2
        return hi


@dataclass(order=True)
class _Watch:
    due: float
    seq: int
    tunnel: TunnelRef = field(compare=False)
    since: float = field(compare=False)
    future: asyncio.Future[WatchResult] = field(compare=False)
    once: bool = field(default=False, compare=False)
    """A :meth:`DeletionWatcher.look`: answer ``DELETING`` instead of watching on."""
    learn: bool = field(default=True, compare=False)
    """Whether what it sees teaches the estimator (``since`` is the delete's acknowledgement)."""


class DeletionWatcher:
    """Polls DescribeVpnConnections for watched tunnels; run :meth:`run` as a task."""

    def __init__(
        self,
        client: CleanupClient,
        *,
        timeout: float = 600.0,
        min_recheck: float = 0.02,
        max_recheck: float = 2.0,
        max_concurrent_polls: int = 8,
        retry_after: float = 0.02,
        min_poll_timeout: float = 0.25,
        min_poll_hedge: float = 0.02,
        estimator: DelayEstimator | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self.timeout = timeout
        self.min_recheck = min_recheck
        self.max_recheck = max_recheck
        self.retry_after = retry_after
        self.min_poll_timeout = min_poll_timeout
        self.min_poll_hedge = min_poll_hedge
        self._poll_times: deque[float] = deque(maxlen=128)
        self.estimator = estimator or DelayEstimator()
        self._clock = clock
        self._heap: list[_Watch] = []
        self._seq = itertools.count()
        self._changed = asyncio.Event()
        self._polls = asyncio.Semaphore(max_concurrent_polls)
        self._polling: dict[asyncio.Task[None], list[_Watch]] = {}
        self._stopped = False
        self.polls = 0
        self.hedged_polls = 0
        """Polls sent a second time because the first was overdue."""
        self.fatal: AuthError | None = None

    def __len__(self) -> int:
        return len(self._heap)

    def watch(
        self, tunnel: TunnelRef, since: float | None = None, *, learn: bool = True
    ) -> asyncio.Future[WatchResult]:
        """Start watching a tunnel whose delete was acknowledged at ``since`` (default: now).

        ``learn=False`` when ``since`` is not the acknowledgement (a hedged delete): what it
        sees then says nothing about the delete's duration. Once the watcher has stopped, the
        future comes back cancelled: nobody would resolve it.
        """
        start = self._clock() if since is None else since
        due = start + self.estimator.first_look()
        return self._add(_Watch(due, 0, tunnel, start, self._future(), learn=learn))

    def look(self, tunnel: TunnelRef) -> asyncio.Future[WatchResult]:
        """Look once, as soon as possible: ``GONE``, ``DELETING`` or ``NOT_DELETING``."""
        now = self._clock()
        return self._add(_Watch(now, 0, tunnel, now, self._future(), once=True, learn=False))

    def _future(self) -> asyncio.Future[WatchResult]:
        return asyncio.get_running_loop().create_future()

    def _add(self, entry: _Watch) -> asyncio.Future[WatchResult]:
        if self._stopped:
            entry.future.cancel()
            return entry.future
        entry.seq = next(self._seq)
        heapq.heappush(self._heap, entry)
        self._changed.set()
        return entry.future

    async def run(self) -> None:
        """Poll forever (until cancelled); cancelling also cancels every pending future.

        That includes the futures of polls on the wire, so whoever waits on a watch (the engine
        draining after Ctrl-C) wakes up at once instead of waiting out its timeout.
        """
        try:
            while True:
                if not self._heap:
                    self._changed.clear()
                    await self._changed.wait()
                    continue
                delay = self._heap[0].due - self._clock()
                if delay > 0:
                    self._changed.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), delay)
                    continue
                batch = self._take_batch()
                if batch:
                    await self._polls.acquire()
                    task = asyncio.create_task(self._poll(batch))
                    self._polling[task] = batch
                    task.add_done_callback(self._polling.pop)
        finally:
            self._stopped = True
            for task, polled in list(self._polling.items()):
                task.cancel()  # a task cancelled before its first step never runs its handlers
                for entry in polled:
                    entry.future.cancel()
            for entry in self._heap:
                entry.future.cancel()
            self._heap.clear()

    def _take_batch(self) -> list[_Watch]:
        now = self._clock()
        horizon = now + max(self.min_recheck / 2, 0.005)
        batch: list[_Watch] = []
        while self._heap and len(batch) < MAX_FILTER_VALUES:
            head = self._heap[0]
            if head.due > horizon and (head.due > now or batch):
                break
            heapq.heappop(self._heap)
            if head.future.done():  # the engine gave up on it
                continue
            batch.append(head)
        return batch

    def _next_look(self, entry: _Watch, now: float) -> float:
        """When to look again at a tunnel that was still there at ``now``.

        Never before the learned upper bound (a tunnel watched before anything was learned
        catches up with what its neighbours taught), else after 10% of its age.
        """
        age = now - entry.since
        recheck = min(self.max_recheck, max(self.min_recheck, 0.1 * age))
        _, hi = self.estimator.bounds
        if hi is not None:
            if entry.since + hi > now:
                return entry.since + hi
            if age < 2 * hi:  # about when the task ends: a gateway waits on every late look
                recheck = max(self.min_recheck / 2, min(recheck, 0.02 * hi))
        return now + recheck

    def _poll_timeouts(self) -> tuple[float, float]:
        """(when to send the same poll again, when to give up on both) in seconds."""
        if len(self._poll_times) < 8:
            timeout = max(self.min_poll_timeout, 1.0)
            return timeout, timeout
        ordered = sorted(self._poll_times)
        overdue = 4.0 * ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
        return max(self.min_poll_hedge, overdue), max(self.min_poll_timeout, overdue)

    async def _describe_hedged(self, ids: list[str]) -> dict[str, TunnelState]:
        """One Describe, and the same one again if it is overdue; the first to end decides.

        Raises :class:`TimeoutError` when neither ended in time (a stalled poll).
        """
        hedge_after, timeout = self._poll_timeouts()
        tasks = {asyncio.ensure_future(self._describe(ids))}
        try:
            done, _ = await asyncio.wait(tasks, timeout=hedge_after)
            if not done:
                tasks.add(asyncio.ensure_future(self._describe(ids)))
                self.hedged_polls += 1
                done, _ = await asyncio.wait(
                    tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
            if not done:
                raise TimeoutError
            return done.pop().result()
        finally:
            for task in tasks:
                if not task.done():
                    task.cancel()
                elif not task.cancelled():
                    task.exception()  # the loser's error was seen: no "never retrieved" warning

    async def _describe(self, ids: list[str]) -> dict[str, TunnelState]:
        return {
            c.vpn_connection_id: c.state
            async for c in self._client.describe_vpn_connections(
                filters={"vpn-connection-id": ids}, retry_policy=_POLL_POLICY
            )
        }

    async def _poll(self, batch: list[_Watch]) -> None:
        try:
            ids = [w.tunnel.vpn_connection_id for w in batch]
            sent = self._clock()
            try:
                states = await self._describe_hedged(ids)
            except AuthError as exc:
                self.fatal = exc
                for w in batch:
                    if not w.future.done():
                        w.future.set_exception(exc)
                return
            except (TcvpcError, TimeoutError) as exc:
                now = self._clock()
                stalled = isinstance(exc, TimeoutError) and not isinstance(exc, TcvpcError)
                for w in batch:
                    w.due = now if stalled else now + self.retry_after
                    self._reschedule(w, now)
                return
            now = self._clock()
            self._poll_times.append(now - sent)
            seen_at = (sent + now) / 2
            self.polls += 1
            for w in batch:
                if w.future.done():
                    continue
                state = states.get(w.tunnel.vpn_connection_id)
                if state is None:
                    if w.learn:
                        self.estimator.saw_gone(seen_at - w.since)
                    w.future.set_result(WatchResult.GONE)
                elif state is not TunnelState.DELETING:
                    w.future.set_result(WatchResult.NOT_DELETING)
                elif w.once:
                    w.future.set_result(WatchResult.DELETING)
                else:
                    if w.learn:
                        self.estimator.saw_present(seen_at - w.since)
                    w.due = self._next_look(w, now)
                    self._reschedule(w, now)
        finally:
            self._polls.release()

    def _reschedule(self, w: _Watch, now: float) -> None:
        if now - w.since > self.timeout:
            if not w.future.done():
                w.future.set_result(WatchResult.TIMEOUT)
            return
        w.seq = next(self._seq)
        heapq.heappush(self._heap, w)
        self._changed.set()
