"""What a client tells the service around it: hook events, a metrics snapshot, log fields.

Hooks are plain synchronous callables, run in the call's task: a hook that raises is logged and
ignored (telemetry never fails a call), and an ``async def`` hook is refused when the client is
built, because the client would have to await it inside every call (or drop it).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

__all__ = [
    "CallEvent",
    "CallOutcome",
    "ClientMetrics",
    "RetryEvent",
    "check_hook",
    "run_hook",
]

logger = logging.getLogger("tcvpc")

CallOutcome = Literal["ok", "error", "cancelled"]

E = TypeVar("E")


@dataclass(frozen=True, slots=True)
class RetryEvent:
    """What a retry hook receives, once per retry, before the client sleeps."""

    action: str
    code: str
    attempt: int
    """The attempt that failed (1 for the first)."""
    delay: float
    request_id: str | None


@dataclass(frozen=True, slots=True)
class CallEvent:
    """What an ``on_call`` hook receives once per call, when the call ends (however it ends).

    ``outcome`` is ``"ok"``, ``"error"`` (``code`` names the error) or ``"cancelled"`` (the
    caller gave up). ``latency`` runs from the call's start to its end, ``queue_wait`` is the
    part of it spent waiting for the rate limiter (every attempt's wait added up).
    """

    action: str
    outcome: CallOutcome
    code: str | None
    attempts: int
    latency: float
    queue_wait: float
    request_id: str | None
    retry_budget_exhausted: bool = False


@dataclass(frozen=True, slots=True)
class ClientMetrics:
    """A snapshot of one client, for a metrics endpoint (every counter only grows).

    ``calls`` counts ended calls by ``(action, outcome)``; ``call_seconds`` and
    ``queue_wait_seconds`` add up their latencies and limiter waits by action. ``waiting`` is
    the queue depth now (calls waiting for a permit), ``in_flight`` the calls running now.
    ``rates`` is each used action's current adaptive rate (requests per second).
    """

    calls: Mapping[tuple[str, CallOutcome], int]
    call_seconds: Mapping[str, float]
    queue_wait_seconds: Mapping[str, float]
    waiting: int
    in_flight: int
    rates: Mapping[str, float]
    requests_sent: int
    requests_cancelled: int
    retries: int
    shed: int
    """Calls refused by ``max_waiting`` (QueueFullError)."""
    retry_budget_available: int


def check_hook(name: str, hook: Callable[[E], object] | None) -> Callable[[E], object] | None:
    """Refuse what cannot be a hook: not callable, or a coroutine function (it would never run)."""
    if hook is None:
        return None
    if not callable(hook):
        raise TypeError(f"{name} must be callable, not {type(hook).__name__}")
    call_method = getattr(type(hook), "__call__", None)  # noqa: B004 - objects with async __call__
    if inspect.iscoroutinefunction(hook) or inspect.iscoroutinefunction(call_method):
        raise TypeError(
            f"{name} must be a plain function: hooks run synchronously inside each call, so an "
            "async def hook would never be awaited. Record the event and hand it to a task "
            "(e.g. queue.put_nowait(event)) instead."
        )
    return hook


def run_hook(name: str, hook: Callable[[E], object] | None, event: E) -> None:
    """Call ``hook(event)``; log (never raise) what goes wrong, so telemetry cannot fail a call."""
    if hook is None:
        return
    try:
        result: Any = hook(event)
    except Exception:
        logger.exception("%s hook raised; ignored", name, extra={"tcvpc_hook": name})
        return
    if inspect.isawaitable(result):
        # A sync callable that returned a coroutine (a lambda around an async def): say so once
        # per event instead of leaving "coroutine was never awaited" to the garbage collector.
        close = getattr(result, "close", None)
        if callable(close):
            close()
        logger.error(
            "%s hook returned an awaitable, which is never awaited; pass a plain function",
            name,
            extra={"tcvpc_hook": name},
        )
