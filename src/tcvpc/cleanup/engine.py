"""The scheduler: delete every queued tunnel as fast as the API allows, and no faster.

The account's delete rate (enforced by the client's limiter) is the only real limit, so the
engine's job is to always have a delete ready for the limiter and never waste one:

* **Per-gateway slots.** A gateway's deletes are serialised (``per_gateway=1`` by default): its
  mutex admits one task at a time, and a delete sent while it is held only earns
  ``MutexOperationTaskRunning``. A slot is freed when the tunnel is gone, which
  :class:`~tcvpc.cleanup.watcher.DeletionWatcher` learns from batched Describe calls on their own
  quota. Different gateways run side by side.
* **Busiest gateway first.** Among gateways with a free slot, the one with the most tunnels left
  gets the next worker: its serial chain is the job's critical path (longest-processing-time
  first), so the job ends close to ``max(deletes / rate, busiest gateway's serial time)``
  (:class:`~tcvpc.cleanup.gateways.GatewayQueue`).
* **Bounded workers, no task per line.** ``concurrency`` workers at most; tunnels are read from
  the journal one at a time per gateway, so memory does not grow with the input.
* **Mid-task tunnels go back in the queue.** ``DeleteVpnConnInvalidState`` puts the tunnel back
  with a delay (doubling, bounded number of times) and frees its gateway slot and worker at once.
  The default retry policy (:func:`job_retry_policy`) leaves that code to the engine.
* **Authentication failures stop the job.** So do setup errors that every delete would meet
  (:class:`~tcvpc.errors.SetupError`: ``UnsupportedRegion``, ``InvalidAction``...). The first
  delete goes out alone; only after an answer does the engine open up to ``concurrency`` calls,
  so wrong credentials cost one request (plus whatever was already on the wire when an
  ``AuthError`` arrives later, e.g. a revoked key).
* **Stopping.** :meth:`CleanupEngine.stop` (Ctrl-C) stops taking new work and lets the calls on
  the wire finish within ``drain_timeout``; whatever is cut off stays ``inflight`` in the journal,
  which turns it back into pending-with-unknown-outcome when it is closed.

Every outcome is committed to the journal before it is yielded by :meth:`CleanupEngine.outcomes`.
A journal that fails (disk full, read-only, corrupted) stops the job: calls on the wire end,
their rows stay ``inflight`` (an unknown outcome for the next run), and :meth:`outcomes` /
:meth:`run` raise the :class:`~tcvpc.cleanup.journal.JournalError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field

from tcvpc.cleanup.gateways import Gateway, GatewayQueue
from tcvpc.cleanup.journal import Journal, JournalError, PendingTunnel
from tcvpc.cleanup.protocol import CleanupClient, HasClientStats
from tcvpc.cleanup.watcher import DelayEstimator, DeletionWatcher, WatchResult
from tcvpc.errors import (
    ApiError,
    AuthError,
    CredentialsError,
    InvalidStateError,
    NotFoundError,
    SetupError,
    TcvpcError,
)
from tcvpc.models import DeleteOutcome, DeleteResult, TunnelRef
from tcvpc.retry import Backoff, RetryPolicy

__all__ = [
    "CleanupEngine",
    "EngineConfig",
    "Progress",
    "Summary",
    "TunnelOutcome",
    "job_retry_policy",
]


def job_retry_policy() -> RetryPolicy:
    """Patient, still jittered; ``DeleteVpnConnInvalidState`` is requeued by the engine.

    Throttled deletes start from a 0.25 s window instead of 1 s: every attempt of the job goes
    through the client's strict limiter, which the throttle pacer slows down, so the retry wait
    does not have to keep the rate down; it only spreads the retries (full jitter). Each second a
    throttled delete sleeps is a second added to its gateway's serial chain (see benchmarks/).
    """
    return dataclasses.replace(
        RetryPolicy.patient(),
        throttled=Backoff(0.25, 20.0, 20),
        invalid_state=Backoff(0.0, 0.0, 1),  # the engine's requeue is the better retry for it
    )


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """How the engine schedules; the defaults suit the real API at 100 deletes per second."""

    concurrency: int = 32
    """Delete calls in flight at most (they mostly wait for the client's rate limiter)."""
    per_gateway: int = 1
    """Deletes in flight per gateway; more than 1 only makes sense without a gateway mutex."""
    wait: bool = False
    """Report a deletion only once the tunnel has disappeared (``--wait``)."""
    watch: bool = True
    """Free a gateway's slot when its tunnel is gone; ``False`` frees it at once (the client's
    ``MutexOperationTaskRunning`` retry then does the waiting)."""
    retry_policy: RetryPolicy | None = field(default_factory=job_retry_policy)
    """Passed to every delete call (default: :func:`job_retry_policy`); ``None`` uses the
    client's, which should then not retry ``DeleteVpnConnInvalidState`` itself."""
    max_requeues: int = 10
    requeue_delay: float = 1.0
    requeue_cap: float = 30.0
    drain_timeout: float = 15.0
    wait_timeout: float = 600.0
    """How long a deleted tunnel may stay ``DELETING`` before the watcher gives up."""
    first_look: float = 0.2
    """The watcher's first guess of the delete duration, before it has measured one."""

    def __post_init__(self) -> None:
        if self.concurrency < 1 or self.per_gateway < 1:
            raise ValueError("concurrency and per_gateway must be >= 1")
        if self.max_requeues < 0:
            raise ValueError("max_requeues must be >= 0")


@dataclass(frozen=True, slots=True)
class TunnelOutcome:
    """What became of one tunnel (already committed to the journal)."""

    tunnel: TunnelRef
    outcome: DeleteOutcome
    attempts: int
    code: str | None = None
    message: str | None = None
    request_id: str | None = None
    inferred: bool = False
    line: int | None = None


@dataclass(frozen=True, slots=True)
class Progress:
    """A live snapshot for progress displays."""

    total: int
    done: int
    counts: Mapping[str, int]
    requests_sent: int
    throttled: int
    retries: int
    requeued: int
    elapsed: float


@dataclass(frozen=True, slots=True)
class Summary:
    """The end of a run. ``counts`` covers the whole journal (earlier runs too)."""

    total: int
    counts: Mapping[str, int]
    duplicates: int
    done_this_run: int
    requests_sent: int
    throttled: int
    retries_by_code: Mapping[str, int]
    requeued: int
    describe_polls: int
    elapsed: float
    interrupted: bool
    fatal: TcvpcError | None = None
    """An error that stopped the job (authentication)."""

    @property
    def effective_rate(self) -> float:
        """Tunnels finished per second in this run."""
        return self.done_this_run / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def ok(self) -> bool:
        """Every tunnel deleted or already gone, no invalid line, nothing left pending."""
        bad = ("failed", "invalid", "pending")
        return self.fatal is None and not self.interrupted and not any(self.counts[k] for k in bad)


@dataclass(frozen=True, slots=True)
class _Stop:
    pass


_DONE = _Stop()


@dataclass
class _RunState:
    started: float = 0.0
    requeued: int = 0
    done_this_run: int = 0
    counts: Counter[str] = field(default_factory=Counter)


class CleanupEngine:
    """Deletes the journal's pending tunnels; iterate :meth:`outcomes` or await :meth:`run`."""

    def __init__(
        self,
        client: CleanupClient,
        journal: Journal,
        config: EngineConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._journal = journal
        self.config = config or EngineConfig()
        self._clock = clock
        self._awaiting = 0  # --wait: accepted, not yet seen gone
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._gateways = GatewayQueue(self.config.per_gateway, self._wake.set)
        self._first_answer = asyncio.Event()
        self._stopping = False
        self._fatal: TcvpcError | None = None
        self._journal_error: JournalError | None = None
        self._queue: asyncio.Queue[TunnelOutcome | _Stop] = asyncio.Queue()
        self._watcher = DeletionWatcher(
            client,
            timeout=self.config.wait_timeout,
            estimator=DelayEstimator(initial=self.config.first_look),
            clock=clock,
        )
        self._run = _RunState()
        self._total = 0
        self._summary: Summary | None = None
        self._watcher_task: asyncio.Task[None] | None = None

    # -- public ------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop taking new work; calls on the wire finish (bounded). Safe from signal handlers."""
        self._stopping = True
        self._wake.set()
        self._first_answer.set()

    @property
    def stopping(self) -> bool:
        return self._stopping

    async def outcomes(self) -> AsyncIterator[TunnelOutcome]:
        """Run the job, yielding each outcome once it is durable in the journal.

        Raises :class:`~tcvpc.cleanup.journal.JournalError` (after the calls on the wire ended)
        if the journal failed: the outcomes yielded before it are committed.
        """
        runner = asyncio.create_task(self._main())
        try:
            while True:
                item = await self._queue.get()
                if isinstance(item, _Stop):
                    break
                yield item
            await runner
        finally:
            if not runner.done():
                self.stop()
                runner.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await runner

    async def run(self) -> Summary:
        """Run the job to its end and return the summary."""
        async for _ in self.outcomes():
            pass
        return self.summary()

    def progress(self) -> Progress:
        counts = self._run.counts
        done = sum(counts[str(o)] for o in DeleteOutcome if o is not DeleteOutcome.INVALID)
        requests, throttled, retries = self._client_stats()
        return Progress(
            total=self._total,
            done=done,
            counts=dict(counts),
            requests_sent=requests,
            throttled=throttled,
            retries=sum(retries.values()),
            requeued=self._run.requeued,
            elapsed=self._clock() - self._run.started if self._run.started else 0.0,
        )

    def summary(self) -> Summary:
        """The summary of the finished run (a live one before it ends)."""
        if self._summary is not None:
            return self._summary
        return self._make_summary()

    # -- the run -----------------------------------------------------------------------------

    def _client_stats(self) -> tuple[int, int, Mapping[str, int]]:
        if isinstance(self._client, HasClientStats):
            s = self._client.stats
            return s.requests_sent, s.throttled, dict(s.retries_by_code)
        return 0, 0, {}

    def _make_summary(self) -> Summary:
        requests, throttled, retries = self._client_stats()
        try:
            total = self._journal.total_tunnels()
            counts: Mapping[str, int] = self._journal.counts()
            duplicates = self._journal.duplicates()
        except JournalError:  # a broken journal: what this run saw is all there is to say
            total, counts, duplicates = self._total, dict(self._run.counts), 0
        return Summary(
            total=total,
            counts=counts,
            duplicates=duplicates,
            done_this_run=self._run.done_this_run,
            requests_sent=requests,
            throttled=throttled,
            retries_by_code=retries,
            requeued=self._run.requeued,
            describe_polls=self._watcher.polls,
            elapsed=(self._clock() - self._run.started) if self._run.started else 0.0,
            interrupted=self._stopping and self._fatal is None,
            fatal=self._fatal,
        )

    async def _main(self) -> None:
        self._run.started = self._clock()
        watcher_task: asyncio.Task[None] | None = None
        try:
            self._load()
            watcher_task = self._watcher_task = asyncio.create_task(self._watcher.run())
            await self._dispatch()
            await self._drain()
            if self._journal_error is not None:
                raise self._journal_error
        finally:
            try:
                if watcher_task is not None:
                    watcher_task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await watcher_task
                for task in list(self._tasks):
                    task.cancel()
                if self._tasks:
                    await asyncio.gather(*self._tasks, return_exceptions=True)
                self._gateways.close()
                with contextlib.suppress(JournalError):  # they stay inflight: the same to a resume
                    self._journal.release_inflight()
                self._summary = self._make_summary()
            finally:
                self._queue.put_nowait(_DONE)  # whatever happened, outcomes() must not wait on

    def _journal_failed(self, exc: JournalError) -> None:
        """A journal write failed in a delete's task: stop the job, keep the first error."""
        self._journal_error = self._journal_error or exc
        self.stop()

    def _load(self) -> None:
        journal = self._journal
        journal.release_inflight()
        journal.retry_failed()
        for outcome, n in journal.counts().items():
            self._run.counts[outcome] = n
        self._run.counts["pending"] = 0
        for gateway_id, n in journal.pending_by_gateway():
            self._gateways.add(gateway_id, n)
        self._total = journal.total_tunnels()

    def _finished(self) -> bool:
        return self._gateways.remaining == 0 and not self._tasks and self._awaiting == 0

    async def _dispatch(self) -> None:
        workers = asyncio.Semaphore(self.config.concurrency)
        gateways = self._gateways
        first = True
        while not self._stopping:
            if self._finished():
                return
            gw = gateways.pop()
            if gw is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            item = self._journal.next_pending(gw.gateway_id)
            if item is None:  # counts drifted (should not happen): trust the journal
                gateways.drop(gw)
                continue
            if isinstance(item, float):
                gateways.park(gw, item - time.time())
                continue
            await workers.acquire()
            if self._stopping:
                workers.release()
                break
            self._journal.mark_inflight(item.tunnel)
            gateways.take(gw)
            task = asyncio.create_task(self._delete(gw, item, workers))
            self._tasks.add(task)
            task.add_done_callback(self._task_done)
            if first:
                first = False
                await self._first_answer.wait()

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._wake.set()

    async def _drain(self) -> None:
        """After dispatching stopped: wait for the calls on the wire (bounded when stopping)."""
        while self._tasks or (self._awaiting and not self._stopping):
            pending = list(self._tasks)
            if self._stopping:
                # Watches hold nothing durable (``--wait``'s accepted rows stay ``accepted``):
                # end them now and give only the calls on the wire time to finish.
                if self._watcher_task is not None:
                    self._watcher_task.cancel()
                if pending:
                    _, still = await asyncio.wait(pending, timeout=self.config.drain_timeout)
                    for task in still:
                        task.cancel()
                    await asyncio.gather(*pending, return_exceptions=True)
                return
            self._wake.clear()
            await self._wake.wait()

    # -- one tunnel --------------------------------------------------------------------------

    async def _delete(self, gw: Gateway, item: PendingTunnel, workers: asyncio.Semaphore) -> None:
        try:
            await self._delete_one(gw, item, workers)
        except JournalError as exc:
            self._journal_failed(exc)

    async def _delete_one(
        self, gw: Gateway, item: PendingTunnel, workers: asyncio.Semaphore
    ) -> None:
        ref = item.tunnel
        worker_held = True
        try:
            try:
                result = await self._client.delete_vpn_connection(
                    vpn_gateway_id=ref.vpn_gateway_id,
                    vpn_connection_id=ref.vpn_connection_id,
                    missing_ok=True,
                    retry_policy=self.config.retry_policy,
                )
            except (AuthError, SetupError, CredentialsError) as exc:  # every other delete would too
                self._fatal = self._fatal or exc
                self._journal.unclaim(ref)
                self._gateways.put_back(gw)
                self.stop()
                return
            except InvalidStateError as exc:
                self._first_answer.set()
                workers.release()
                worker_held = False
                await self._on_invalid_state(gw, item, exc)
                return
            except NotFoundError as exc:  # a client that ignores missing_ok
                result = DeleteResult(
                    ref,
                    DeleteOutcome.ALREADY_GONE,
                    exc.request_id,
                    _attempts(exc),
                    error_code=exc.code,
                )
            except TcvpcError as exc:
                self._fail(item, exc)
                return
            except Exception as exc:  # a bug must not lose the tunnel: record it as failed
                self._fail(item, exc)
                return
            self._first_answer.set()
            workers.release()
            worker_held = False
            await self._on_result(gw, item, result)
        finally:
            self._first_answer.set()
            if worker_held:
                workers.release()
            self._gateways.release(gw)

    async def _on_invalid_state(
        self, gw: Gateway, item: PendingTunnel, exc: InvalidStateError
    ) -> None:
        """A tunnel refused as mid-task: wait until it is not ``DELETING``, then decide.

        It is most often ``DELETING`` (an earlier attempt of ours whose answer was lost, or
        someone else's delete), and then the gateway's mutex is held too: the gateway's slot
        stays taken (the worker is free) until the watcher sees the tunnel gone or out of
        ``DELETING``. Gone settles it without another request (``deleted``, inferred, when an
        earlier attempt may have done it; else ``already_gone``); otherwise it goes back in the
        queue with a doubling delay, a bounded number of times.
        """
        attempts = item.attempts + _attempts(exc)
        unknown = item.unknown or _may_have_taken_effect(exc)
        if unknown and not item.unknown:
            self._journal.mark_unknown(item.tunnel)
        seen: WatchResult | None = None
        if self.config.watch and not self._stopping:
            with contextlib.suppress(TcvpcError):
                seen = await self._watcher.watch(item.tunnel)
        if seen is WatchResult.GONE:
            self._record_gone(item, unknown, attempts, exc.code, exc.request_id)
            return
        if item.requeues >= self.config.max_requeues:
            self._fail(item, exc)
            return
        delay = min(self.config.requeue_cap, self.config.requeue_delay * 2**item.requeues)
        if seen is not None:
            delay = 0.0 if item.requeues == 0 else delay  # it left DELETING: try again now
        self._journal.requeue(item.tunnel, time.time() + delay, attempts)
        self._run.requeued += 1
        self._gateways.put_back(gw)

    def _fail(self, item: PendingTunnel, exc: Exception) -> None:
        if _may_have_taken_effect(exc):
            self._journal.mark_unknown(item.tunnel)
        code = exc.code if isinstance(exc, ApiError) else type(exc).__name__
        message = exc.message if isinstance(exc, ApiError) else str(exc)
        request_id = exc.request_id if isinstance(exc, ApiError) else None
        self._record(
            item,
            DeleteOutcome.FAILED,
            attempts=item.attempts + _attempts(exc),
            code=code,
            message=message,
            request_id=request_id,
        )

    async def _on_result(self, gw: Gateway, item: PendingTunnel, result: DeleteResult) -> None:
        """Handle an answered delete; returns once the gateway's slot may be freed."""
        attempts = item.attempts + result.attempts
        if result.outcome is DeleteOutcome.ALREADY_GONE:
            self._record_gone(item, item.unknown, attempts, result.error_code, result.request_id)
            return
        if result.inferred:  # gone already: nothing holds the gateway
            self._record(
                item,
                DeleteOutcome.DELETED,
                attempts=attempts,
                request_id=result.request_id,
                inferred=True,
            )
            return
        since = self._clock()
        if not self.config.wait:
            self._record(
                item, DeleteOutcome.DELETED, attempts=attempts, request_id=result.request_id
            )
            if not self.config.watch or gw.remaining == 0 or self._stopping:
                return
            with contextlib.suppress(TcvpcError):
                await self._watcher.watch(item.tunnel, since)
            if self._watcher.fatal is not None:
                self._fatal = self._fatal or self._watcher.fatal
                self.stop()
            return
        self._journal.mark_accepted(item.tunnel, result.request_id, attempts)
        self._awaiting += 1
        try:
            try:
                seen = await self._watcher.watch(item.tunnel, since)
            except AuthError as exc:
                self._fatal = self._fatal or exc
                self.stop()
                return
            if seen is WatchResult.GONE:
                self._record(
                    item, DeleteOutcome.DELETED, attempts=attempts, request_id=result.request_id
                )
            elif seen is WatchResult.NOT_DELETING and item.requeues < self.config.max_requeues:
                self._journal.requeue(item.tunnel, 0.0, attempts)
                self._run.requeued += 1
                self._gateways.put_back(gw)
            else:
                self._record(
                    item,
                    DeleteOutcome.FAILED,
                    attempts=attempts,
                    code="DeleteNotConfirmed",
                    message=f"the tunnel did not disappear ({seen.value})",
                    request_id=result.request_id,
                )
        finally:
            self._awaiting -= 1

    def _record_gone(
        self,
        item: PendingTunnel,
        unknown: bool,
        attempts: int,
        code: str | None,
        request_id: str | None,
    ) -> None:
        """The tunnel is gone: ``deleted`` if an attempt of ours may have acted, else
        ``already_gone``. An accepted delete (``--wait``) did act; an unknown outcome is inferred.
        """
        self._record(
            item,
            DeleteOutcome.DELETED if unknown or item.accepted else DeleteOutcome.ALREADY_GONE,
            attempts=attempts,
            code=code,
            request_id=request_id,
            inferred=unknown and not item.accepted,
        )

    def _record(
        self,
        item: PendingTunnel,
        outcome: DeleteOutcome,
        *,
        attempts: int,
        code: str | None = None,
        message: str | None = None,
        request_id: str | None = None,
        inferred: bool = False,
    ) -> None:
        self._journal.record_outcome(
            item.tunnel,
            outcome,
            code=code,
            message=message,
            request_id=request_id,
            attempts=attempts,
            inferred=inferred,
        )
        self._run.counts[str(outcome)] += 1
        self._run.done_this_run += 1
        self._queue.put_nowait(
            TunnelOutcome(
                tunnel=item.tunnel,
                outcome=outcome,
                attempts=attempts,
                code=code,
                message=message,
                request_id=request_id,
                inferred=inferred,
                line=item.line,
            )
        )


def _attempts(exc: BaseException) -> int:
    """Attempts the client made before giving up (it may say; otherwise at least one)."""
    n = getattr(exc, "attempts", None)
    return n if isinstance(n, int) and n > 0 else 1


def _may_have_taken_effect(exc: BaseException) -> bool:
    """Whether the failed call's delete may have happened anyway: its last attempt or an earlier
    one ended with an unknown outcome (timeout, dropped connection, proxy error)."""
    return isinstance(exc, TcvpcError) and (exc.outcome_unknown or exc.after_unknown_outcome)
