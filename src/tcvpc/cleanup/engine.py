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
* **Overdue answers are hedged.** A delete still unanswered after twice the usual answer time
  (learned: the 95th percentile of recent answers) is looked at with one Describe
  (:meth:`~tcvpc.cleanup.watcher.DeletionWatcher.look`, batched with the watcher's polls, on
  Describe's own quota). If the tunnel is ``DELETING``, our delete acted: it is watched until gone
  and the gateway's slot is freed then, while the answer (stalled, lost) is still awaited for
  ``answer_grace`` seconds more. No second delete is sent for it: the answer, when it comes,
  names the outcome; if it does not come in time the call is abandoned and the tunnel is
  ``deleted``, inferred (the job's tail does not wait out a stalled answer). A tunnel not yet
  ``DELETING`` (the request is still queued at the limiter) is looked at again after twice the
  wait, at most three times.
* **One lane per region.** Each region's tunnels go through that region's client (its own
  limiter: each region has its own 100/s), with their own gateway queue, ``concurrency`` workers
  and watcher, all lanes running at once.
* **Mid-task tunnels go back in the queue.** ``DeleteVpnConnInvalidState`` puts the tunnel back
  with a delay (doubling, bounded number of times) and frees its gateway slot and worker at once.
  The default retry policy (:func:`job_retry_policy`) leaves that code to the engine.
* **Authentication failures stop the job.** So do setup errors that every delete would meet
  (:class:`~tcvpc.errors.SetupError`: ``UnsupportedRegion``, ``InvalidAction``...). The first
  delete goes out alone; only after an answer does the engine open up to ``concurrency`` calls,
  so wrong credentials cost one request (plus whatever was already on the wire when an
  ``AuthError`` arrives later, e.g. a revoked key).
* **"Gone" is verified.** A delete that answers not-found is looked up by connection ID
  (:class:`~tcvpc.cleanup.verifier.NotFoundVerifier` batches the lookups) before the tunnel is
  reported ``already_gone``: the API says not-found for a tunnel named with the wrong gateway too
  (:meth:`CleanupEngine._on_not_found` has the rules).
* **An API that cannot be reached stops the job.** The first delete gets a few quick tries
  (:func:`first_call_retry_policy`); if it ends in a transport error or an answer that is not
  the API's, or a later delete's every attempt failed to connect, the job stops with that error
  as ``fatal`` and the tunnel back in the queue: nothing is marked failed that was never tried.
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
import functools
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field

from tcvpc.cleanup.codes import DELETE_NOT_CONFIRMED, NOT_FOUND_BUT_PRESENT, WRONG_GATEWAY
from tcvpc.cleanup.gateways import Gateway, GatewayQueue
from tcvpc.cleanup.journal import Journal, JournalError, PendingTunnel
from tcvpc.cleanup.protocol import CleanupClient, HasClientStats
from tcvpc.cleanup.verifier import NotFoundVerifier
from tcvpc.cleanup.watcher import DelayEstimator, DeletionWatcher, WatchResult
from tcvpc.errors import (
    ApiError,
    AuthError,
    CredentialsError,
    InvalidStateError,
    NotFoundError,
    ResponseError,
    SetupError,
    TcvpcError,
    TransportError,
)
from tcvpc.models import DeleteOutcome, DeleteResult, TunnelRef
from tcvpc.retry import Backoff, RetryPolicy
from tcvpc.verify import WhereaboutsKind

__all__ = [
    "CleanupEngine",
    "EngineConfig",
    "Progress",
    "Summary",
    "TunnelOutcome",
    "first_call_retry_policy",
    "job_retry_policy",
]


def job_retry_policy() -> RetryPolicy:
    """Patient, still jittered; ``DeleteVpnConnInvalidState`` is requeued by the engine.

    Throttled deletes start from a 50 ms window (capped at 5 s) instead of 1 s: every attempt of
    the job goes through the client's limiter, whose adaptive rate is what slows the job down
    when the server throttles it, so the retry wait does not have to keep the rate down; it only
    spreads the retries (full jitter). Each second a throttled delete sleeps is a second added to
    its gateway's serial chain, and a chain is the job's critical path (see benchmarks/ B3).
    Transient faults (5xx, dropped connections) start from 50 ms for the same reason.
    """
    return dataclasses.replace(
        RetryPolicy.patient(),
        throttled=Backoff(0.05, 5.0, 20),
        transient=Backoff(0.05, 20.0, 12),  # the low end of the usual 0.05-0.1 s: same reason
        invalid_state=Backoff(0.0, 0.0, 1),  # the engine's requeue is the better retry for it
    )


def first_call_retry_policy() -> RetryPolicy:
    """A few quick tries for the job's first delete, which goes out alone.

    If it cannot reach the API at all (refused, DNS, TLS, an answer that is not the API's), the
    job stops instead of spending the patient policy's minutes on every tunnel: a few tries
    within seconds tell a dead or wrong endpoint from a blip.
    """
    return dataclasses.replace(job_retry_policy(), transient=Backoff(0.25, 2.0, 4))


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """How the engine schedules; the defaults suit the real API at 100 deletes per second."""

    concurrency: int = 32
    """Delete calls in flight at most, per region (they mostly wait for the rate limiter)."""
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
    first_call_policy: RetryPolicy | None = field(default_factory=first_call_retry_policy)
    """The first delete's retry policy (default: :func:`first_call_retry_policy`); ``None``
    uses ``retry_policy``."""
    verify_window: float = 0.05
    """Seconds a not-found waits for others to share its lookup (:class:`NotFoundVerifier`)."""
    hedge: bool = True
    """Look at a tunnel whose delete's answer is overdue (needs ``watch``)."""
    first_hedge: float = 1.0
    """When to hedge before any answer time was measured, in seconds."""
    min_hedge: float = 0.1
    """Never hedge earlier than this after the call started, in seconds."""
    answer_grace: float = 0.5
    """How long a hedged delete's answer is still awaited once its tunnel was seen gone."""

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
    region: str | None = None


def _rate(done_this_run: int, elapsed: float) -> float:
    """The one definition of the job's rate: tunnels finished this run per second of this run."""
    return done_this_run / elapsed if elapsed > 0 else 0.0


@dataclass(frozen=True, slots=True)
class Progress:
    """A live snapshot for progress displays.

    Job figures (``total``, ``done``, ``counts``) cover the whole journal, earlier runs
    included; run figures (``done_this_run``, ``elapsed``, ``rate`` and the client's counters)
    cover this process only, so a resumed job's rate is not inflated by earlier runs' work.
    """

    total: int
    done: int
    counts: Mapping[str, int]
    requests_sent: int
    throttled: int
    """Throttled answers this run, every action (see :class:`tcvpc.client.ClientStats`)."""
    retries: int
    """Retries this run, every action and code."""
    requeued: int
    elapsed: float
    done_this_run: int = 0

    @property
    def rate(self) -> float:
        return _rate(self.done_this_run, self.elapsed)


@dataclass(frozen=True, slots=True)
class Summary:
    """The end of a run.

    Job figures: ``total``, ``counts`` (by outcome, ``pending`` for tunnels the job has not
    finished: only when it stopped early), ``duplicates``; they cover the whole journal, earlier
    runs too. Run figures: everything else (this process only). The client's counters
    (``requests_*``, ``throttled*``, ``retries_*``) count every action: deletes, the watcher's
    polls and the not-found lookups alike.
    """

    total: int
    counts: Mapping[str, int]
    duplicates: int
    done_this_run: int
    requests_sent: int
    throttled: int
    retries_by_code: Mapping[str, int]
    requeued: int
    describe_polls: int
    """The watcher's answered polls (a part of the Describe requests)."""
    elapsed: float
    interrupted: bool
    fatal: TcvpcError | None = None
    """An error that stopped the job: authentication, setup, or an API it cannot reach."""
    requests_by_action: Mapping[str, int] = field(default_factory=dict)
    throttled_by_action: Mapping[str, int] = field(default_factory=dict)
    retries_by_action_code: Mapping[tuple[str, str], int] = field(default_factory=dict)
    not_found_lookups: int = 0
    """Batched lookups that verified not-found answers (each one or more Describe requests)."""
    hedged: int = 0
    """Gateways freed on the watcher's evidence while their delete's answer was overdue."""

    @property
    def effective_rate(self) -> float:
        """Tunnels finished per second in this run (the same figure as :attr:`Progress.rate`)."""
        return _rate(self.done_this_run, self.elapsed)

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
    hedged: int = 0
    done_this_run: int = 0
    counts: Counter[str] = field(default_factory=Counter)


class _AnswerTimes:
    """Recent answer times of deletes (first attempt, answered): when an answer is overdue."""

    def __init__(self, config: EngineConfig, window: int = 128) -> None:
        self._config = config
        self._times: deque[float] = deque(maxlen=window)

    def add(self, seconds: float) -> None:
        self._times.append(seconds)

    def hedge_after(self) -> float:
        if len(self._times) < 8:
            return self._config.first_hedge
        ordered = sorted(self._times)
        p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
        return max(self._config.min_hedge, 2.0 * p95)


@dataclass(eq=False)
class _Slot:
    """One delete's hold on its gateway: released exactly once, by the hedge or at the end."""

    held: bool = True
    hedged: bool = False
    """Freed early: the watcher saw the tunnel gone while the answer was still due."""
    abandoned: bool = False
    """The hedge cancelled the call: its answer did not come within ``answer_grace``."""
    seen_deleting: bool = False
    """A look saw the tunnel ``DELETING``: a delete acted (gone at first sight proves nothing:
    the tunnel may never have existed, which only the answer can tell)."""


@dataclass(eq=False)
class _Lane:
    """One region's share of the job: its client, gateways, workers and watcher."""

    region: str | None
    client: CleanupClient
    gateways: GatewayQueue
    wake: asyncio.Event
    workers: asyncio.Semaphore
    watcher: DeletionWatcher
    verifier: NotFoundVerifier
    answers: _AnswerTimes
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    watcher_task: asyncio.Task[None] | None = None


class CleanupEngine:
    """Deletes the journal's pending tunnels; iterate :meth:`outcomes` or await :meth:`run`.

    ``region_clients`` maps each region named in the journal to the client that signs for it;
    rows without a region (and every row, without ``region_clients``) go through ``client``.
    A row whose region has no client is refused before anything is sent (``ValueError``).
    """

    def __init__(
        self,
        client: CleanupClient,
        journal: Journal,
        config: EngineConfig | None = None,
        *,
        region_clients: Mapping[str, CleanupClient] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._region_clients = dict(region_clients) if region_clients is not None else None
        self._journal = journal
        self.config = config or EngineConfig()
        self._clock = clock
        self._awaiting = 0  # --wait: accepted, not yet seen gone
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._lanes: dict[str | None, _Lane] = {}
        self._first_answer = asyncio.Event()
        self._first_sent = False
        self._stopping = False
        self._fatal: TcvpcError | None = None
        self._journal_error: JournalError | None = None
        self._queue: asyncio.Queue[TunnelOutcome | _Stop] = asyncio.Queue()
        self._run = _RunState()
        self._total = 0
        self._summary: Summary | None = None

    # -- public ------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop taking new work; calls on the wire finish (bounded). Safe from signal handlers."""
        self._stopping = True
        self._wake_all()
        self._first_answer.set()

    def _wake_all(self) -> None:
        self._wake.set()
        for lane in self._lanes.values():
            lane.wake.set()

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
            done_this_run=self._run.done_this_run,
        )

    def summary(self) -> Summary:
        """The summary of the finished run (a live one before it ends)."""
        if self._summary is not None:
            return self._summary
        return self._make_summary()

    # -- the run -----------------------------------------------------------------------------

    def _client_stats(self) -> tuple[int, int, Mapping[str, int]]:
        """Summed over the distinct clients (one per region)."""
        requests = throttled = 0
        retries: Counter[str] = Counter()
        for client in self._clients():
            if isinstance(client, HasClientStats):
                s = client.stats
                requests += s.requests_sent
                throttled += s.throttled
                retries.update(s.retries_by_code)
        return requests, throttled, dict(retries)

    def _clients(self) -> list[CleanupClient]:
        """The default client and each region's, once each."""
        every = (self._client, *(lane.client for lane in self._lanes.values()))
        return list({id(c): c for c in every}.values())

    def _by_action(self) -> tuple[dict[str, int], dict[str, int], dict[tuple[str, str], int]]:
        """The clients' per-action counters, summed, when they have them (fakes may not)."""
        requests: Counter[str] = Counter()
        throttled: Counter[str] = Counter()
        retries: Counter[tuple[str, str]] = Counter()
        for client in self._clients():
            s = client.stats if isinstance(client, HasClientStats) else None
            requests.update(dict(getattr(s, "requests_by_action", {})))
            throttled.update(dict(getattr(s, "throttled_by_action", {})))
            retries.update(dict(getattr(s, "retries_by_action_code", {})))
        return dict(requests), dict(throttled), dict(retries)

    def _make_summary(self) -> Summary:
        requests, throttled, retries = self._client_stats()
        by_action, throttled_by_action, retries_by_action = self._by_action()
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
            describe_polls=sum(lane.watcher.polls for lane in self._lanes.values()),
            elapsed=(self._clock() - self._run.started) if self._run.started else 0.0,
            interrupted=self._stopping and self._fatal is None,
            fatal=self._fatal,
            requests_by_action=by_action,
            throttled_by_action=throttled_by_action,
            retries_by_action_code=retries_by_action,
            not_found_lookups=sum(lane.verifier.lookups for lane in self._lanes.values()),
            hedged=self._run.hedged,
        )

    async def _main(self) -> None:
        self._run.started = self._clock()
        try:
            self._load()
            for lane in self._lanes.values():
                lane.watcher_task = asyncio.create_task(lane.watcher.run())
            await asyncio.gather(*(self._dispatch(lane) for lane in self._lanes.values()))
            await self._drain()
            if self._journal_error is not None:
                raise self._journal_error
        finally:
            try:
                watchers = [lane.watcher_task for lane in self._lanes.values() if lane.watcher_task]
                for task in watchers:
                    task.cancel()
                await asyncio.gather(*watchers, return_exceptions=True)
                for lane in self._lanes.values():
                    await lane.verifier.aclose()
                for task in list(self._tasks):
                    task.cancel()
                if self._tasks:
                    await asyncio.gather(*self._tasks, return_exceptions=True)
                for lane in self._lanes.values():
                    lane.gateways.close()
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
        for region, gateway_id, n in journal.pending_by_gateway():
            self._lane(region).gateways.add(gateway_id, n)
        self._total = journal.total_tunnels()

    def _lane(self, region: str | None) -> _Lane:
        lane = self._lanes.get(region)
        if lane is not None:
            return lane
        client = self._client
        if region is not None and self._region_clients is not None:
            found = self._region_clients.get(region)
            if found is None:
                raise ValueError(f"no client for region {region!r}")
            client = found
        wake = asyncio.Event()
        lane = _Lane(
            region=region,
            client=client,
            gateways=GatewayQueue(self.config.per_gateway, wake.set),
            wake=wake,
            workers=asyncio.Semaphore(self.config.concurrency),
            watcher=DeletionWatcher(
                client,
                timeout=self.config.wait_timeout,
                estimator=DelayEstimator(initial=self.config.first_look),
                clock=self._clock,
            ),
            verifier=NotFoundVerifier(client, window=self.config.verify_window),
            answers=_AnswerTimes(self.config),
        )
        self._lanes[region] = lane
        return lane

    async def _dispatch(self, lane: _Lane) -> None:
        """One region's loop: the busiest free gateway takes the next worker."""
        gateways = lane.gateways
        while not self._stopping:
            if gateways.remaining == 0 and not lane.tasks:
                return
            if self._first_sent and not self._first_answer.is_set():
                await self._first_answer.wait()  # another lane's first delete is testing setup
                continue
            gw = gateways.pop()
            if gw is None:
                lane.wake.clear()
                await lane.wake.wait()
                continue
            item = self._journal.next_pending(gw.gateway_id, region=lane.region)
            if item is None:  # counts drifted (should not happen): trust the journal
                gateways.drop(gw)
                continue
            if isinstance(item, float):
                gateways.park(gw, item - time.time())
                continue
            await lane.workers.acquire()
            if self._stopping:
                lane.workers.release()
                break
            self._journal.mark_inflight(item.tunnel)
            gateways.take(gw)
            first = not self._first_sent
            task = asyncio.create_task(self._delete(lane, gw, item, first=first))
            self._tasks.add(task)
            lane.tasks.add(task)
            task.add_done_callback(functools.partial(self._task_done, lane))
            if not self._first_sent:  # the job's first delete goes alone: it tests the setup
                self._first_sent = True
                await self._first_answer.wait()

    def _task_done(self, lane: _Lane, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        lane.tasks.discard(task)
        lane.wake.set()
        self._wake.set()

    async def _drain(self) -> None:
        """After dispatching stopped: wait for the calls on the wire (bounded when stopping)."""
        while self._tasks or (self._awaiting and not self._stopping):
            pending = list(self._tasks)
            if self._stopping:
                # Watches hold nothing durable (``--wait``'s accepted rows stay ``accepted``):
                # end them now and give only the calls on the wire time to finish.
                for lane in self._lanes.values():
                    if lane.watcher_task is not None:
                        lane.watcher_task.cancel()
                if pending:
                    _, still = await asyncio.wait(pending, timeout=self.config.drain_timeout)
                    for task in still:
                        task.cancel()
                    await asyncio.gather(*pending, return_exceptions=True)
                return
            self._wake.clear()
            await self._wake.wait()

    # -- one tunnel --------------------------------------------------------------------------

    async def _delete(self, lane: _Lane, gw: Gateway, item: PendingTunnel, *, first: bool) -> None:
        try:
            await self._delete_one(lane, gw, item, first=first)
        except JournalError as exc:
            self._journal_failed(exc)

    async def _delete_one(
        self, lane: _Lane, gw: Gateway, item: PendingTunnel, *, first: bool
    ) -> None:
        ref = item.tunnel
        workers = lane.workers
        worker_held = True
        policy = self.config.retry_policy
        if first and self.config.first_call_policy is not None:
            policy = self.config.first_call_policy
        slot = _Slot()
        hedge: asyncio.Task[None] | None = None
        try:
            started = self._clock()
            call = asyncio.ensure_future(
                lane.client.delete_vpn_connection(
                    vpn_gateway_id=ref.vpn_gateway_id,
                    vpn_connection_id=ref.vpn_connection_id,
                    missing_ok=True,
                    retry_policy=policy,
                )
            )
            if self.config.hedge and self.config.watch and self._first_answer.is_set():
                hedge = asyncio.create_task(self._hedge(lane, gw, item, started, slot, call))
            try:
                try:
                    result = await call
                finally:
                    if hedge is not None:  # the answer came (or the call failed): it decides
                        hedge.cancel()
            except asyncio.CancelledError:
                me = asyncio.current_task()
                if not slot.abandoned or (me is not None and me.cancelling()):
                    raise
                self._record(  # seen gone, no answer: our delete did it
                    item, DeleteOutcome.DELETED, attempts=item.attempts + 1, inferred=True
                )
                return
            except (AuthError, SetupError, CredentialsError) as exc:  # every other delete would too
                self._fatal = self._fatal or exc
                self._journal.unclaim(ref)
                lane.gateways.put_back(gw)
                self.stop()
                return
            except InvalidStateError as exc:
                self._first_answer.set()
                workers.release()
                worker_held = False
                await self._on_invalid_state(lane, gw, item, exc, slot, started)
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
                if _cannot_reach_api(exc, first=first):  # every other delete would meet it too
                    if _may_have_taken_effect(exc):
                        self._journal.mark_unknown(ref)
                    self._fatal = self._fatal or exc
                    self._journal.unclaim(ref)  # never answered: it stays pending
                    lane.gateways.put_back(gw)
                    self.stop()
                    return
                self._fail(item, exc)
                return
            except Exception as exc:  # a bug must not lose the tunnel: record it as failed
                self._fail(item, exc)
                return
            if result.attempts == 1 and not slot.hedged:
                lane.answers.add(self._clock() - started)
            self._first_answer.set()
            workers.release()
            worker_held = False
            await self._on_result(lane, gw, item, result, slot)
        finally:
            self._first_answer.set()
            if worker_held:
                workers.release()
            self._free(lane, gw, slot)

    def _free(self, lane: _Lane, gw: Gateway, slot: _Slot) -> None:
        if slot.held:
            slot.held = False
            lane.gateways.release(gw)

    async def _hedge(
        self,
        lane: _Lane,
        gw: Gateway,
        item: PendingTunnel,
        started: float,
        slot: _Slot,
        call: asyncio.Future[DeleteResult],
    ) -> None:
        """While the delete's answer is overdue: free the gateway once its tunnel is gone.

        Runs beside the call and is cancelled when the answer comes. ``DELETING`` proves our
        delete acted (the tunnel was pending in the journal, and a listed ``DELETING`` tunnel
        is refused by the API); the slot is freed when it is gone, as for an answered delete.
        """
        wait = lane.answers.hedge_after()
        for _ in range(3):
            await asyncio.sleep(max(0.0, started + wait - self._clock()))
            try:
                seen = await lane.watcher.look(item.tunnel)
                if seen is WatchResult.DELETING:
                    slot.seen_deleting = True
                    seen = await lane.watcher.watch(item.tunnel, started, learn=False)
            except TcvpcError:  # the answer will tell; the watcher reports fatal errors itself
                return
            if seen is WatchResult.GONE:
                slot.hedged = True
                self._run.hedged += 1
                self._free(lane, gw, slot)
                if not slot.seen_deleting:
                    return  # the answer decides (deleted, or a not-found to verify)
                await asyncio.sleep(self.config.answer_grace)
                if not call.done():
                    slot.abandoned = True
                    call.cancel()
                return
            if seen is not WatchResult.NOT_DELETING:
                return
            wait *= 2  # not DELETING yet: the request may still wait at the limiter

    async def _on_invalid_state(
        self,
        lane: _Lane,
        gw: Gateway,
        item: PendingTunnel,
        exc: InvalidStateError,
        slot: _Slot,
        started: float,
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
        if slot.hedged:
            seen = WatchResult.GONE  # the hedge saw it gone: our own delete's retry was refused
        elif self.config.watch and not self._stopping:
            # Watched from the call's start: when an earlier attempt of this call acted (its
            # answer lost), the task started then, not at this refusal. It teaches nothing.
            with contextlib.suppress(TcvpcError):
                seen = await lane.watcher.watch(item.tunnel, started, learn=False)
        if seen is WatchResult.GONE:
            self._record_gone(item, unknown, attempts, exc.request_id)
            return
        if item.requeues >= self.config.max_requeues:
            self._fail(item, exc)
            return
        delay = min(self.config.requeue_cap, self.config.requeue_delay * 2**item.requeues)
        if seen is not None:
            delay = 0.0 if item.requeues == 0 else delay  # it left DELETING: try again now
        self._journal.requeue(item.tunnel, time.time() + delay, attempts)
        self._run.requeued += 1
        lane.gateways.put_back(gw)

    def _fail(
        self,
        item: PendingTunnel,
        exc: Exception,
        *,
        attempts: int | None = None,
        context: str | None = None,
    ) -> None:
        if _may_have_taken_effect(exc) and context is None:  # a lookup deletes nothing
            self._journal.mark_unknown(item.tunnel)
        code = exc.code if isinstance(exc, ApiError) else type(exc).__name__
        message = exc.message if isinstance(exc, ApiError) else str(exc)
        if context is not None:
            message = f"{context} failed: {message}"
        request_id = exc.request_id if isinstance(exc, ApiError) else None
        self._record(
            item,
            DeleteOutcome.FAILED,
            attempts=item.attempts + _attempts(exc) if attempts is None else attempts,
            code=code,
            message=message,
            request_id=request_id,
        )

    async def _on_result(
        self, lane: _Lane, gw: Gateway, item: PendingTunnel, result: DeleteResult, slot: _Slot
    ) -> None:
        """Handle an answered delete; returns once the gateway's slot may be freed."""
        attempts = item.attempts + result.attempts
        if result.outcome is DeleteOutcome.ALREADY_GONE or result.inferred:
            # A not-found, which the client may already have read as "deleted" (inferred) after
            # an attempt of unknown outcome: both claim "gone", so both are verified.
            unknown = item.unknown or result.inferred
            await self._on_not_found(lane, gw, item, attempts, result.request_id, unknown=unknown)
            return
        since = self._clock()
        if not self.config.wait or slot.hedged:  # hedged: already seen gone
            self._record(
                item, DeleteOutcome.DELETED, attempts=attempts, request_id=result.request_id
            )
            if not self.config.watch or gw.remaining == 0 or self._stopping or slot.hedged:
                return
            with contextlib.suppress(TcvpcError):
                await lane.watcher.watch(item.tunnel, since)
            if lane.watcher.fatal is not None:
                self._fatal = self._fatal or lane.watcher.fatal
                self.stop()
            return
        self._journal.mark_accepted(item.tunnel, result.request_id, attempts)
        self._awaiting += 1
        try:
            try:
                seen = await lane.watcher.watch(item.tunnel, since)
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
                lane.gateways.put_back(gw)
            else:
                self._record(
                    item,
                    DeleteOutcome.FAILED,
                    attempts=attempts,
                    code=DELETE_NOT_CONFIRMED,
                    message=f"the tunnel did not disappear ({seen.value})",
                    request_id=result.request_id,
                )
        finally:
            self._awaiting -= 1

    async def _on_not_found(
        self,
        lane: _Lane,
        gw: Gateway,
        item: PendingTunnel,
        attempts: int,
        request_id: str | None,
        *,
        unknown: bool,
    ) -> None:
        """The delete answered not-found: look the tunnel up by ID before believing it.

        The API answers not-found for a real tunnel named with the wrong gateway too, so:

        * no tunnel with this ID anywhere: gone (:meth:`_record_gone`: ``already_gone``, or
          ``deleted`` inferred when an earlier attempt of ours may have acted);
        * a tunnel with this ID under another gateway: ``failed`` with :data:`WRONG_GATEWAY`,
          naming the gateway it is on. Nothing was deleted, and no earlier attempt on the named
          gateway can have deleted it, whatever the unknown-outcome bit says;
        * under the named gateway, ``DELETING``: someone's delete (perhaps an earlier attempt of
          ours) is under way. Its gateway stays taken until the watcher sees it gone, which is
          then recorded as gone (same rule); if it leaves ``DELETING`` alive, it is requeued;
        * under the named gateway and not deleting: the not-found was wrong (a stale answer): it
          is requeued and the delete sent again, up to ``max_requeues`` times, then ``failed``
          with :data:`NOT_FOUND_BUT_PRESENT`.

        A lookup that fails proves nothing: the tunnel is ``failed`` with the lookup's error (a
        rerun retries it), or the job stops on an authentication error.
        """
        try:
            where = await lane.verifier.locate(item.tunnel)
        except asyncio.CancelledError:  # the job is ending: the answer was known, not unknown
            with contextlib.suppress(JournalError):
                self._journal.unclaim(item.tunnel)
            raise
        except (AuthError, SetupError) as exc:
            self._fatal = self._fatal or exc
            self._journal.unclaim(item.tunnel)
            lane.gateways.put_back(gw)
            self.stop()
            return
        except TcvpcError as exc:
            self._fail(item, exc, attempts=attempts, context="the lookup verifying a not-found")
            return
        kind = where.kind
        if kind is WhereaboutsKind.GONE:
            self._record_gone(item, unknown, attempts, request_id)
            return
        if kind is WhereaboutsKind.ON_ANOTHER_GATEWAY:
            assert where.found is not None
            ref = item.tunnel
            self._record(
                item,
                DeleteOutcome.FAILED,
                attempts=attempts,
                code=WRONG_GATEWAY,
                message=(
                    f"tunnel {ref.vpn_connection_id} is on gateway {where.found.vpn_gateway_id}, "
                    f"not {ref.vpn_gateway_id}: nothing was deleted (fix the input line)"
                ),
                request_id=request_id,
            )
            return
        if kind is WhereaboutsKind.DELETING and self.config.watch and not self._stopping:
            seen: WatchResult | None = None
            with contextlib.suppress(TcvpcError):
                seen = await lane.watcher.watch(item.tunnel)
            if seen is WatchResult.GONE:
                self._record_gone(item, unknown, attempts, request_id)
                return
        if item.requeues >= self.config.max_requeues:
            self._record(
                item,
                DeleteOutcome.FAILED,
                attempts=attempts,
                code=NOT_FOUND_BUT_PRESENT,
                message=(
                    f"the delete answered not-found {item.requeues + 1} times, but the tunnel "
                    f"is still on gateway {item.tunnel.vpn_gateway_id} ({kind.value})"
                ),
                request_id=request_id,
            )
            return
        delay = min(self.config.requeue_cap, self.config.requeue_delay * 2**item.requeues)
        self._journal.requeue(item.tunnel, time.time() + delay, attempts)
        self._run.requeued += 1
        lane.gateways.put_back(gw)

    def _record_gone(
        self,
        item: PendingTunnel,
        unknown: bool,
        attempts: int,
        request_id: str | None,
    ) -> None:
        """The tunnel is gone: ``deleted`` if an attempt of ours may have acted, else
        ``already_gone``. An accepted delete (``--wait``) did act; an unknown outcome is inferred.
        Neither carries an error code: the not-found that led here is not a failure.
        """
        self._record(
            item,
            DeleteOutcome.DELETED if unknown or item.accepted else DeleteOutcome.ALREADY_GONE,
            attempts=attempts,
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
                region=item.region,
            )
        )


def _attempts(exc: BaseException) -> int:
    """Attempts the client made before giving up (it may say; otherwise at least one)."""
    n = getattr(exc, "attempts", None)
    return n if isinstance(n, int) and n > 0 else 1


def _cannot_reach_api(exc: TcvpcError, *, first: bool) -> bool:
    """Whether a delete's error means the API cannot be reached at all (stop the job).

    The first delete (after its few quick tries): any error that is not an API answer, i.e. the
    connection failed (refused, DNS, TLS) or something else answered (http/https mixed up, a
    web server or proxy at the endpoint). Later deletes, after their patient retries: only a
    connection that could not be opened, as the first delete proved the endpoint right.
    """
    if first:
        return isinstance(exc, (TransportError, ResponseError))
    return isinstance(exc, TransportError) and not exc.outcome_unknown


def _may_have_taken_effect(exc: BaseException) -> bool:
    """Whether the failed call's delete may have happened anyway (see ``TcvpcError``)."""
    return isinstance(exc, TcvpcError) and exc.may_have_taken_effect
