"""``runs_here``: the cheap "is this the running loop?" that the request path asks on every call."""

from __future__ import annotations

import asyncio
import threading

from tcvpc.eventloop import runs_here


async def test_the_running_loop_runs_here_and_no_other_does() -> None:
    running = asyncio.get_running_loop()
    idle = asyncio.new_event_loop()
    try:
        assert runs_here(running)
        assert not runs_here(idle)
        assert not runs_here(None)
    finally:
        idle.close()


def test_no_loop_runs_outside_a_loop_and_a_finished_one_no_longer_does() -> None:
    loop = asyncio.new_event_loop()
    try:
        assert loop.run_until_complete(_runs_here_inside()) is True
        assert not runs_here(loop)  # run_until_complete returned: it runs nothing now
    finally:
        loop.close()


async def _runs_here_inside() -> bool:
    return runs_here(asyncio.get_running_loop())


async def test_a_loop_running_in_another_thread_does_not_run_here() -> None:
    """Two loops running at once, one per thread: each thread sees only its own."""
    other = asyncio.new_event_loop()
    thread = threading.Thread(target=other.run_forever)
    thread.start()
    try:
        seen_there = asyncio.run_coroutine_threadsafe(_runs_here_inside(), other)
        assert await asyncio.wrap_future(seen_there)
        assert not runs_here(other)  # it is running, but not in this thread
        ours = asyncio.get_running_loop()
        assert not asyncio.run_coroutine_threadsafe(_asks(ours), other).result(5)  # from there
    finally:
        other.call_soon_threadsafe(other.stop)
        thread.join(5)
        other.close()


async def _asks(loop: asyncio.AbstractEventLoop) -> bool:
    return runs_here(loop)


class _LoopWithoutThreadId:
    """A loop implementation that does not record its thread (uvloop does not, for instance)."""


async def test_a_loop_without_a_thread_id_is_asked_the_usual_way() -> None:
    assert not runs_here(_LoopWithoutThreadId())  # type: ignore[arg-type]
    assert not await asyncio.to_thread(runs_here, _LoopWithoutThreadId())  # type: ignore[arg-type]
