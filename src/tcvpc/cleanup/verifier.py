"""Batching the job's not-found checks: many not-founds, one lookup.

A delete that answers not-found does not prove the tunnel is gone: the API says the same for a
real tunnel named with the wrong gateway. The engine therefore looks each one up by connection ID
(:func:`tcvpc.verify.locate_tunnels`) before it reports ``already_gone``. One lookup per tunnel
would spend a Describe call on each; instead, lookups asked for within ``window`` seconds (or
``max_batch`` of them, whichever comes first) share one :func:`locate_tunnels` call, which the
client sends as few Describe requests as the API's limits allow, on Describe's own budget.
"""

from __future__ import annotations

import asyncio
import contextlib

from tcvpc.cleanup.protocol import CleanupClient
from tcvpc.models import TunnelRef
from tcvpc.retry import RetryPolicy
from tcvpc.verify import Whereabouts, locate_tunnels

__all__ = ["NotFoundVerifier"]


class NotFoundVerifier:
    """Collects tunnels to look up and answers each caller with its own :class:`Whereabouts`."""

    def __init__(
        self,
        client: CleanupClient,
        *,
        window: float = 0.05,
        max_batch: int = 50,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        if window < 0 or max_batch < 1:
            raise ValueError("window must be >= 0 and max_batch >= 1")
        self._client = client
        self.window = window
        self.max_batch = max_batch
        self.retry_policy = retry_policy
        self._waiting: list[tuple[TunnelRef, asyncio.Future[Whereabouts]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._lookups: set[asyncio.Task[None]] = set()
        self._closed = False
        self.lookups = 0
        """Lookups sent (each is one or more Describe requests)."""

    async def locate(self, tunnel: TunnelRef) -> Whereabouts:
        """Where ``tunnel`` really is; raises what the lookup raised (it proves nothing then)."""
        if self._closed:
            raise asyncio.CancelledError
        future: asyncio.Future[Whereabouts] = asyncio.get_running_loop().create_future()
        self._waiting.append((tunnel, future))
        if len(self._waiting) >= self.max_batch:
            self._flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.window, self._flush)
        return await future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._waiting = self._waiting, []
        batch = [(ref, fut) for ref, fut in batch if not fut.done()]
        if batch:
            task = asyncio.create_task(self._lookup(batch))
            self._lookups.add(task)
            task.add_done_callback(self._lookups.discard)

    async def _lookup(self, batch: list[tuple[TunnelRef, asyncio.Future[Whereabouts]]]) -> None:
        self.lookups += 1
        try:
            found = await locate_tunnels(
                self._client, [ref for ref, _ in batch], retry_policy=self.retry_policy
            )
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        by_ref = {w.tunnel: w for w in found}
        for ref, future in batch:
            if not future.done():
                future.set_result(by_ref[ref])

    async def aclose(self) -> None:
        """Cancel lookups on the wire and every waiting caller (the job is ending)."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for _, future in self._waiting:
            future.cancel()
        self._waiting.clear()
        for task in list(self._lookups):
            task.cancel()
        for task in list(self._lookups):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
