"""The watcher's one-shot look (the engine's hedge) and what a hedged watch does not learn."""

from __future__ import annotations

import asyncio
import contextlib

from cleanup_fakes import FakeVpc, make_refs

from tcvpc.cleanup.watcher import DelayEstimator, DeletionWatcher, WatchResult


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
