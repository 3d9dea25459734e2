"""Which event loop runs this code, asked cheaply: the request path asks on every call.

On Python 3.11 ``asyncio.get_running_loop()`` makes a ``getpid`` system call each time (to
notice a fork); 3.12 dropped it. A system call on every check of every request is the single
largest cost that tcvpc's own path adds in B1 (``benchmarks/b1_overhead.py``), so the checks
that only confirm "still the loop we bound to" ask the loop itself.
"""

from __future__ import annotations

import asyncio
import threading

__all__ = ["runs_here"]

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
