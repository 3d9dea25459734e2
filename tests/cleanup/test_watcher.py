"""The watcher's one-shot look (the engine's hedge) and what a hedged watch does not learn."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from cleanup_fakes import FakeVpc, make_refs

from tcvpc.cleanup.watcher import DelayEstimator, DeletionWatcher, WatchResult, _Watch


async def test_look_tells_deleting_gone_and_not_deleting_in_one_batched_poll() -> None:
    refs = make_refs(3, 1)
    fake = FakeVpc(refs, delete_seconds=0.3)
    deleting, _present, gone = refs
    for ref in (deleting, gone):
        await fake.delete_vpn_connection(
            vpn_gateway_id=ref.vpn_gateway_id, vpn_connection_id=ref.vpn_connection_id
        )
    fake.tunnels.pop(gone.vpn_connection_id)
    estimator = DelayEstimator()
    watcher = DeletionWatcher(fake, estimator=estimator)
    task = asyncio.create_task(watcher.run())
    try:
        looks = [watcher.look(r) for r in refs]
        results = await asyncio.wait_for(asyncio.gather(*looks), 5)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert results == [WatchResult.DELETING, WatchResult.NOT_DELETING, WatchResult.GONE]
    assert fake.describes == 1  # the three looks rode in one call
    assert estimator.bounds == (0.0, None)  # a look teaches nothing about the duration


async def test_a_hedged_watch_waits_for_gone_without_teaching_the_estimator() -> None:
    refs = make_refs(1, 1)
    fake = FakeVpc(refs, delete_seconds=0.15)
    await fake.delete_vpn_connection(
        vpn_gateway_id=refs[0].vpn_gateway_id, vpn_connection_id=refs[0].vpn_connection_id
    )
    estimator = DelayEstimator(initial=0.05)
    watcher = DeletionWatcher(fake, estimator=estimator)
    task = asyncio.create_task(watcher.run())
    try:
        seen = await asyncio.wait_for(watcher.watch(refs[0], learn=False), 5)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert seen is WatchResult.GONE
    assert fake.describes >= 2  # it was looked at while still DELETING, then again
    assert estimator.bounds == (0.0, None)


class _StallingVpc(FakeVpc):
    """Describe calls numbered in ``stall`` never answer (a server that holds the answer)."""

    def __init__(self, *args: object, stall: set[int], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.stall = stall

    async def describe_vpn_connections(self, **kwargs: object):  # type: ignore[no-untyped-def,override]
        if self.describes + 1 in self.stall:
            self.describes += 1
            await asyncio.sleep(3600)
        async for tunnel in super().describe_vpn_connections(**kwargs):  # type: ignore[arg-type]
            yield tunnel


async def test_an_overdue_poll_is_sent_again_and_the_first_answer_wins() -> None:
    """A stalled poll costs a few usual poll times, not the whole stall timeout."""
    refs = make_refs(2, 1)
    fake = _StallingVpc(refs, stall={9})
    watcher = DeletionWatcher(fake, min_poll_hedge=0.02, min_poll_timeout=0.25)
    task = asyncio.create_task(watcher.run())
    try:
        for _ in range(8):  # usual polls: about 1 ms each
            await asyncio.wait_for(watcher.look(refs[0]), 5)
        loop = asyncio.get_running_loop()
        started = loop.time()
        seen = await asyncio.wait_for(watcher.look(refs[1]), 5)
        took = loop.time() - started
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert seen is WatchResult.NOT_DELETING
    assert fake.describes == 10  # the stalled ninth and its hedge
    assert watcher.hedged_polls == 1
    assert took < 0.2  # abandoning the stalled poll would take min_poll_timeout (0.25 s) at least


async def test_a_poll_whose_hedge_stalls_too_is_abandoned_and_redone() -> None:
    refs = make_refs(1, 1)
    fake = _StallingVpc(refs, stall={9, 10})
    watcher = DeletionWatcher(fake, min_poll_hedge=0.02, min_poll_timeout=0.1)
    task = asyncio.create_task(watcher.run())
    try:
        for _ in range(8):
            await asyncio.wait_for(watcher.look(refs[0]), 5)
        seen = await asyncio.wait_for(watcher.look(refs[0]), 5)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert seen is WatchResult.NOT_DELETING
    assert fake.describes == 11  # both stalled, then polled again at once
    assert watcher.hedged_polls == 1


def test_the_estimator_bisects_until_the_window_is_within_half_a_percent() -> None:
    estimator = DelayEstimator()
    estimator.saw_present(0.249)
    estimator.saw_gone(0.252)  # 3 ms wide: about 1.2% of the duration
    looks = [estimator.first_look() for _ in range(6)]
    assert looks.count(pytest.approx(0.2505)) == 2  # one in three looks at the middle
    assert looks.count(0.252) == 4
    estimator.saw_present(0.2515)  # now 0.5 ms wide: below 0.5% of 0.252 s
    assert {estimator.first_look() for _ in range(6)} == {0.252}


async def test_a_tunnel_still_there_before_the_learned_end_is_looked_at_again_at_the_end() -> None:
    estimator = DelayEstimator()
    estimator.saw_present(0.2)
    estimator.saw_gone(0.25)
    watcher = DeletionWatcher(FakeVpc([]), estimator=estimator)
    entry = _Watch(0.0, 0, make_refs(1, 1)[0], 100.0, asyncio.get_running_loop().create_future())
    # A look at 0.245 s found it there: the next is at the learned bound, 5 ms later, not a
    # recheck interval (10 ms) later; one after the bound rechecks after that interval.
    assert watcher._next_look(entry, 100.245) == pytest.approx(100.25)
    assert watcher._next_look(entry, 100.251) == pytest.approx(100.261)
