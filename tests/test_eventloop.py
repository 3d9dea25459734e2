"""``runs_here`` and ``clock_of``: the cheap loop checks and clock readings of the request path."""

from __future__ import annotations

import asyncio
import threading
import time

from tcvpc.eventloop import clock_of, runs_here


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


async def test_clock_of_asyncio_s_loop_is_monotonic_itself() -> None:
    loop = asyncio.get_running_loop()
    clock = clock_of(loop)
    assert clock is time.monotonic  # what BaseEventLoop.time returns, without its frame
    before = loop.time()
    assert before <= clock() <= loop.time()


def test_clock_of_a_loop_with_its_own_time_keeps_it() -> None:
    class Shifted(asyncio.SelectorEventLoop):
        def time(self) -> float:
            return super().time() + 1000.0

    loop = Shifted()
    patched = asyncio.new_event_loop()
    patched.time = lambda: 5.0  # type: ignore[method-assign]
    try:
        assert clock_of(loop)() > time.monotonic() + 999.0
        assert clock_of(patched)() == 5.0
    finally:
        loop.close()
        patched.close()
