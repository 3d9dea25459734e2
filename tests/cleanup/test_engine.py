from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Sequence

import pytest
from cleanup_fakes import FakeVpc, make_refs

from tcvpc.cleanup.engine import (
    CleanupEngine,
    EngineConfig,
    first_call_retry_policy,
    job_retry_policy,
)
from tcvpc.cleanup.journal import Journal
from tcvpc.errors import AuthError, SetupError, api_error
from tcvpc.models import DeleteOutcome, DeleteResult, TunnelRef

MakeJournal = Callable[[Sequence[TunnelRef]], Journal]


async def test_one_delete_per_gateway_at_a_time_and_gateways_in_parallel(
    make_journal: MakeJournal,
) -> None:
    refs = make_refs(8, 6)
    fake = FakeVpc(refs, delete_seconds=0.05)
    start = time.monotonic()
    summary = await CleanupEngine(fake, make_journal(refs)).run()
    elapsed = time.monotonic() - start
    assert summary.ok
    assert summary.counts["deleted"] == 48
    assert len(fake.deletes) == 48  # no request wasted on a busy gateway
    assert fake.mutex_errors == 0
    assert fake.max_in_flight_per_gateway == 1
    assert fake.remaining == 0
    # serially this is 48 x 0.05 s = 2.4 s; side by side about 6 x 0.05 s
    assert elapsed < 1.5


async def test_a_gateway_waits_for_its_tunnel_to_be_gone(make_journal: MakeJournal) -> None:
    refs = make_refs(1, 4)
    fake = FakeVpc(refs, delete_seconds=0.1)
    await CleanupEngine(fake, make_journal(refs)).run()
    times = [t for t, _, _ in fake.deletes]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(gap >= 0.1 for gap in gaps)
    assert fake.mutex_errors == 0


async def test_per_gateway_concurrency(make_journal: MakeJournal) -> None:
    refs = make_refs(1, 8)
    fake = FakeVpc(refs, delete_seconds=0.0, latency=0.02)
    config = EngineConfig(per_gateway=4)
    summary = await CleanupEngine(fake, make_journal(refs), config).run()
    assert summary.ok
    assert fake.max_in_flight_per_gateway > 1


async def test_invalid_state_is_requeued_without_blocking_the_gateway(
    make_journal: MakeJournal,
) -> None:
    refs = make_refs(1, 4)
    stuck = refs[0].vpn_connection_id
    fake = FakeVpc(refs, delete_seconds=0.01, invalid_state={stuck: 2})
    config = EngineConfig(requeue_delay=0.05)
    engine = CleanupEngine(fake, make_journal(refs), config)
    order = [o.tunnel.vpn_connection_id async for o in engine.outcomes()]
    summary = engine.summary()
    assert summary.ok
    assert summary.requeued == 2
    assert order[-1] == stuck  # the others went ahead meanwhile
    assert [c for _, _, c in fake.deletes].count(stuck) == 3


async def test_requeues_are_bounded(make_journal: MakeJournal) -> None:
    refs = make_refs(1, 1)
    fake = FakeVpc(refs, invalid_state={refs[0].vpn_connection_id: 100})
    config = EngineConfig(max_requeues=2, requeue_delay=0.01)
    journal = make_journal(refs)
    summary = await CleanupEngine(fake, journal, config).run()
    assert summary.counts["failed"] == 1
    [row] = list(journal.rows())
    assert row.code == "UnsupportedOperation.DeleteVpnConnInvalidState"
    assert row.attempts == 3
    assert len(fake.deletes) == 3


async def test_authentication_failure_stops_the_job_at_once(make_journal: MakeJournal) -> None:
    refs = make_refs(20, 10)
    fake = FakeVpc(refs, auth_error=True)
    summary = await CleanupEngine(fake, make_journal(refs), EngineConfig(concurrency=64)).run()
    assert isinstance(summary.fatal, AuthError)
    assert len(fake.deletes) == 1
    assert summary.counts["pending"] == 200
    assert summary.counts["failed"] == 0
    assert not summary.ok


class RaisingVpc(FakeVpc):
    """Every delete meets the same API error (built from its code, as the client builds it)."""

    def __init__(self, refs: Sequence[TunnelRef], code: str) -> None:
        super().__init__(refs)
        self.code = code

    def _delete(self, gw: str, conn: str, missing_ok: bool) -> DeleteResult:
        raise api_error(self.code, "no", request_id="r", action="DeleteVpnConnection")


@pytest.mark.parametrize("code", ["UnsupportedRegion", "InvalidAction", "NoSuchVersion"])
async def test_a_setup_error_stops_the_job_by_its_class(
    make_journal: MakeJournal, code: str
) -> None:
    refs = make_refs(5, 4)
    fake = RaisingVpc(refs, code)
    summary = await CleanupEngine(fake, make_journal(refs), EngineConfig(concurrency=8)).run()
    assert isinstance(summary.fatal, SetupError)
    assert len(fake.deletes) == 1
    assert summary.counts["pending"] == 20


async def test_a_bad_request_fails_only_its_tunnel(make_journal: MakeJournal) -> None:
    refs = make_refs(2, 2)
    fake = RaisingVpc(refs, "InvalidParameterValue.Malformed")
    summary = await CleanupEngine(fake, make_journal(refs)).run()
    assert summary.fatal is None
    assert summary.counts["failed"] == 4


async def test_the_default_policy_leaves_invalid_state_to_the_engine(
    make_journal: MakeJournal,
) -> None:
    refs = make_refs(1, 2)
    fake = FakeVpc(refs)
    await CleanupEngine(fake, make_journal(refs)).run()
    # The first delete, alone, gets a few quick tries; the rest the patient job policy.
    assert fake.policies == [first_call_retry_policy(), job_retry_policy()]
    assert job_retry_policy().invalid_state.max_attempts == 1
    assert first_call_retry_policy().invalid_state.max_attempts == 1
    assert (
        first_call_retry_policy().transient.max_attempts < job_retry_policy().transient.max_attempts
    )


async def test_failures_are_recorded_and_retried_by_a_rerun(make_journal: MakeJournal) -> None:
    refs = make_refs(2, 2)
    fake = FakeVpc(refs, delete_seconds=0.005, fail={refs[0].vpn_connection_id: 1})
    journal = make_journal(refs)
    summary = await CleanupEngine(fake, journal).run()
    assert summary.counts["failed"] == 1
    assert not summary.ok
    failed = next(r for r in journal.rows() if r.outcome == "failed")
    assert (failed.code, failed.request_id, failed.attempts) == ("InternalError", "req-1", 1)
    summary = await CleanupEngine(fake, journal).run()
    assert summary.ok
    assert summary.counts["deleted"] == 4


async def test_stop_lets_calls_on_the_wire_finish_and_keeps_the_journal_consistent(
    make_journal: MakeJournal,
) -> None:
    refs = make_refs(10, 10)
    gate = asyncio.Event()
    fake = FakeVpc(refs, delete_seconds=0.01, block=gate)
    journal = make_journal(refs)
    engine = CleanupEngine(fake, journal, EngineConfig(concurrency=4))
    outcomes = []

    async def consume() -> None:
        async for o in engine.outcomes():
            outcomes.append(o)

    task = asyncio.create_task(consume())
    while len(fake.deletes) < 4:  # the first call alone, then 4 on the wire
        gate.set()
        await asyncio.sleep(0.001)
        gate.clear()
    engine.stop()
    gate.set()
    await asyncio.wait_for(task, 10)
    summary = engine.summary()
    assert summary.interrupted
    counts = journal.counts()
    # every call that was sent has its outcome; nothing is left in flight
    assert counts["deleted"] == len(fake.deletes) == len(outcomes)
    assert counts["pending"] == 100 - len(fake.deletes)
    states = {r.outcome for r in journal.rows()}
    assert states <= {"deleted", "pending"}


async def test_wait_reports_only_once_the_tunnel_is_gone(make_journal: MakeJournal) -> None:
    refs = make_refs(3, 3)
    fake = FakeVpc(refs, delete_seconds=0.05)
    engine = CleanupEngine(fake, make_journal(refs), EngineConfig(wait=True))
    async for outcome in engine.outcomes():
        assert outcome.outcome is DeleteOutcome.DELETED
        fake._expire()
        assert outcome.tunnel.vpn_connection_id not in fake.tunnels
    assert engine.summary().ok


async def test_busiest_gateway_goes_first(make_journal: MakeJournal) -> None:
    refs = make_refs(1, 1) + make_refs(3, 5)[5:]  # gateway 0: 1 tunnel; 1 and 2: 5 each
    fake = FakeVpc(refs, delete_seconds=0.01)
    await CleanupEngine(fake, make_journal(refs), EngineConfig(concurrency=1)).run()
    assert fake.deletes[0][1] != refs[0].vpn_gateway_id


class _StallingVpc(FakeVpc):
    """Deletes act at once, but the answers for ``stall`` tunnels come ``stall_seconds`` late."""

    def __init__(self, refs: Sequence[TunnelRef], stall: set[str], stall_seconds: float) -> None:
        super().__init__(refs, delete_seconds=0.05)
        self.stall = stall
        self.stall_seconds = stall_seconds
        self.answered: dict[str, float] = {}

    async def delete_vpn_connection(self, **kw: object) -> DeleteResult:
        conn = str(kw["vpn_connection_id"])
        result = await super().delete_vpn_connection(**kw)  # type: ignore[arg-type]
        if conn in self.stall:
            self.stall.discard(conn)  # only the first answer stalls
            await asyncio.sleep(self.stall_seconds)
        self.answered[conn] = time.monotonic()
        return result


async def test_a_stalled_answer_frees_its_gateway_once_the_tunnel_is_gone(
    make_journal: MakeJournal,
) -> None:
    refs = make_refs(1, 12)
    stalled = refs[9].vpn_connection_id  # after the answer times were learned
    fake = _StallingVpc(refs, {stalled}, stall_seconds=1.5)
    config = EngineConfig(min_hedge=0.02, answer_grace=5.0)
    engine = CleanupEngine(fake, make_journal(refs), config)
    outcomes = {o.tunnel.vpn_connection_id: o async for o in engine.outcomes()}
    summary = engine.summary()
    assert summary.ok
    assert summary.hedged >= 1  # the stalled one (a late normal answer may be hedged too)
    assert len(fake.deletes) == 12  # no second delete for the stalled one
    assert fake.mutex_errors == 0
    sent = {conn: t for t, _, conn in fake.deletes}
    # The gateway's next delete went out long before the stalled answer came back...
    assert sent[refs[10].vpn_connection_id] < fake.answered[stalled] - 0.7
    # ...and the stalled tunnel is still reported from its answer, when it came.
    assert outcomes[stalled].outcome is DeleteOutcome.DELETED
    assert outcomes[stalled].request_id is not None
    assert not outcomes[stalled].inferred


async def test_an_answer_that_never_comes_is_abandoned_as_deleted_inferred(
    make_journal: MakeJournal,
) -> None:
    refs = make_refs(1, 12)
    stalled = refs[-1].vpn_connection_id  # the last one: the job's end waits for nothing else
    fake = _StallingVpc(refs, {stalled}, stall_seconds=30.0)
    engine = CleanupEngine(fake, make_journal(refs), EngineConfig(min_hedge=0.02, answer_grace=0.1))
    outcomes = {o.tunnel.vpn_connection_id: o async for o in engine.outcomes()}
    summary = engine.summary()
    assert summary.ok
    assert summary.elapsed < 10  # not the 30 s stall
    assert len(fake.deletes) == 12
    assert stalled not in fake.answered
    assert outcomes[stalled].outcome is DeleteOutcome.DELETED
    assert outcomes[stalled].inferred
    assert outcomes[stalled].request_id is None
    assert fake.remaining == 0


async def test_no_hedge_without_the_watcher_keeps_the_gateway_until_the_answer(
    make_journal: MakeJournal,
) -> None:
    refs = make_refs(1, 12)
    stalled = refs[9].vpn_connection_id
    fake = _StallingVpc(refs, {stalled}, stall_seconds=0.6)
    engine = CleanupEngine(fake, make_journal(refs), EngineConfig(hedge=False, min_hedge=0.02))
    summary = await engine.run()
    assert summary.ok
    assert summary.hedged == 0
    sent = {conn: t for t, _, conn in fake.deletes}
    assert sent[refs[10].vpn_connection_id] >= fake.answered[stalled]
