"""Which event loop runs this code, asked cheaply: the request path asks on every call.

On Python 3.11 ``asyncio.get_running_loop()`` makes a ``getpid`` system call each time (to
notice a fork); 3.12 dropped it. A system call on every check of every request is the single
largest cost that tcvpc's own path adds in B1 (``benchmarks/b1_overhead.py``), so the checks
that only confirm "still the loop we bound to" ask the loop itself. Likewise the loop's
clock: asyncio's ``loop.time()`` is a Python method around ``time.monotonic()``, read several
times per request, so the path reads ``time.monotonic`` directly where that is all it is.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

__all__ = ["clock_of", "runs_here"]

_get_ident = threading.get_ident
_NO_THREAD_ID = object()


def runs_here(loop: asyncio.AbstractEventLoop | None) -> bool:
    """True when ``loop`` is the event loop running the calling code.

    asyncio's own loops record the thread that runs them (``_thread_id``, set by
    ``run_forever`` and cleared when it returns; asyncio's thread-safety checks read it). A
    thread runs at most one loop at a time, and code in that thread runs inside it: so the
    loop runs this code exactly when its thread is this one. Loops without the attribute
    (uvloop) are asked the usual way.
    """
    thread_id = getattr(loop, "_thread_id", _NO_THREAD_ID)
    if thread_id is _NO_THREAD_ID:
        try:
            return asyncio.get_running_loop() is loop
        except RuntimeError:
            return False
    return thread_id == _get_ident()


_ASYNCIO_TIME = asyncio.BaseEventLoop.time


def clock_of(loop: asyncio.AbstractEventLoop) -> Callable[[], float]:
    """``loop.time`` as a function that reads the same clock: ``time.monotonic`` itself when
    ``loop.time`` is asyncio's own (which returns just that), one Python call less per reading.
    A loop with a clock of its own (uvloop, a test loop that overrides ``time``) keeps it."""
    if type(loop).time is _ASYNCIO_TIME and "time" not in getattr(loop, "__dict__", ()):
        return time.monotonic
    return loop.time
