"""Temporary credentials that renew themselves ahead of expiry, one refresh at a time.

A :class:`RefreshingProvider` holds the current temporary key and its expiry. ``get()`` is a
dictionary-speed read until the key enters its refresh window (by default the last 5 minutes or
the last quarter of the lifetime it was issued with, whichever is shorter); then the first caller
starts one shared refresh task and *every* caller keeps signing with the old key, still valid,
while it runs. Only a caller that holds no usable key at all waits, and all such callers wait on
that same task: a hundred concurrent calls make one fetch.

A failed refresh while the old key is still valid is retried by tenacity with jittered exponential
backoff until the old key's end of use; a key past its end with no successful refresh is a
:class:`~tcvpc.errors.CredentialsError`, raised before anything is signed.

When the server refuses a token (``AuthFailure.TokenFailure``: revoked, or expired early),
:meth:`RefreshingProvider.force_refresh` replaces the key once however many calls saw the refusal.
"""

from __future__ import annotations

import abc
import asyncio
import dataclasses
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_before_delay,
    wait_random_exponential,
)

from tcvpc.credentials import Credential, CredentialProvider
from tcvpc.errors import CredentialsError, CredentialsNotFoundError, TcvpcError

logger = logging.getLogger("tcvpc.credentials")

DEFAULT_REFRESH_AHEAD = 300.0
"""Refresh when fewer than this many seconds remain (or a quarter of the lifetime, if shorter)."""
DEFAULT_REFRESH_FRACTION = 0.25
DEFAULT_EXPIRY_MARGIN = 10.0
"""A key is not handed out in its last seconds (at most a tenth of its lifetime): the request it
signs must reach the server before the key expires."""
DEFAULT_REFRESH_TIMEOUT = 30.0
"""How long a caller with no usable key waits for a refresh (retries included)."""


@dataclass(frozen=True, slots=True)
class TemporaryCredential:
    """A credential and the Unix time at which it expires (secrets hidden like ``Credential``'s)."""

    credential: Credential
    expires_at: float

    def __post_init__(self) -> None:
        if not isinstance(self.credential, Credential):
            raise TypeError("TemporaryCredential: credential must be a Credential")
        if not math.isfinite(self.expires_at):
            raise ValueError("TemporaryCredential: expires_at must be a finite Unix time")

    def __repr__(self) -> str:
        return f"TemporaryCredential({self.credential!r}, expires_at={_iso(self.expires_at)})"


@runtime_checkable
class RefreshableProvider(CredentialProvider, Protocol):
    """A provider whose key can be replaced on demand (after the server refused its token)."""

    async def force_refresh(self, rejected: Credential) -> Credential:
        """Replace ``rejected`` unless that already happened; return the current credential."""
        ...


def _iso(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat(timespec="seconds")


@dataclass(frozen=True, slots=True)
class _Held:
    """The current key and the times that decide when it is refreshed and when it is unusable."""

    credential: Credential = field(repr=False)
    expires_at: float
    refresh_at: float
    usable_until: float


def _retryable(exc: BaseException) -> bool:
    """Network trouble, throttling, server faults and malformed answers: worth another try.

    A definite refusal (an ``ApiError`` without a retry kind: bad role, no permission) is not.
    """
    if isinstance(exc, CredentialsNotFoundError):
        return False  # nothing there to fetch (no role attached, no token file)
    if isinstance(exc, CredentialsError):
        return True
    return isinstance(exc, TcvpcError) and exc.retry_kind is not None


class RefreshingProvider(abc.ABC):
    """Base of the providers that fetch temporary keys (CVM role, STS, TKE OIDC).

    Subclasses implement :meth:`_fetch` (one attempt, no retries) and name themselves in
    ``source``. ``clock`` is the wall clock (``time.time``): expiry times are Unix times.
    """

    source = "temporary credentials"

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        refresh_ahead: float = DEFAULT_REFRESH_AHEAD,
        refresh_fraction: float = DEFAULT_REFRESH_FRACTION,
        expiry_margin: float = DEFAULT_EXPIRY_MARGIN,
        refresh_timeout: float = DEFAULT_REFRESH_TIMEOUT,
        retry_wait: tuple[float, float] = (0.5, 30.0),
    ) -> None:
        if not refresh_ahead >= 0 or not 0 <= refresh_fraction < 1:
            raise ValueError("refresh_ahead must be >= 0 and refresh_fraction in [0, 1)")
        if not expiry_margin >= 0 or not refresh_timeout > 0:
            raise ValueError("expiry_margin must be >= 0 and refresh_timeout > 0")
        if not 0 <= retry_wait[0] <= retry_wait[1]:
            raise ValueError("retry_wait must be (first, cap) with 0 <= first <= cap")
        self._clock = clock
        self._refresh_ahead = refresh_ahead
        self._refresh_fraction = refresh_fraction
        self._expiry_margin = expiry_margin
        self._refresh_timeout = refresh_timeout
        self._retry_wait = retry_wait
        self._held: _Held | None = None
        self._task: asyncio.Task[_Held] | None = None
        self._quiet_until = -math.inf
        """After a background refresh gave up: no new one before this (wall clock)."""
        self._closed = False
        self.refreshes = 0
        """Successful fetches so far (the first one included)."""
        self.failed_attempts = 0
        """Fetch attempts that failed (each retry counts)."""
        self.stalls = 0
        """Calls that had to wait for a refresh (no usable key): the first ones, and after a
        refused token or a refresh that did not finish in time."""

    def __repr__(self) -> str:
        held = self._held
        state = "empty" if held is None else f"expires {_iso(held.expires_at)}"
        return f"{type(self).__name__}({state})"

    @abc.abstractmethod
    async def _fetch(self) -> TemporaryCredential:
        """Fetch a new key: one attempt; raise a ``TcvpcError`` (secret-free) on failure."""

    async def _close_resources(self) -> None:
        """Release what the subclass owns (its transport); called once by :meth:`aclose`."""
        return None

    # -- the read path ------------------------------------------------------------------------

    async def get(self) -> Credential:
        held = self._held
        if held is not None:
            now = self._clock()
            if now < held.refresh_at:
                return held.credential
            if now < held.usable_until:
                if now >= self._quiet_until:
                    self._start_refresh(deadline=held.usable_until)  # in the background
                return held.credential
        return (await self._wait_for_refresh()).credential

    async def force_refresh(self, rejected: Credential) -> Credential:
        """The server refused ``rejected``'s token: fetch a new key (once for all callers)."""
        held = self._held
        if held is not None and held.credential != rejected:
            return held.credential  # someone already replaced it
        if held is not None:
            # Nobody may sign with the refused key any more: callers now wait for the refresh.
            self._held = dataclasses.replace(held, refresh_at=-math.inf, usable_until=-math.inf)
        return (await self._wait_for_refresh()).credential

    async def aclose(self) -> None:
        """Stop a refresh in flight and release the transport. Idempotent."""
        if self._closed:
            return
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self._close_resources()

    # -- the single refresh -------------------------------------------------------------------

    async def _wait_for_refresh(self) -> _Held:
        task = self._start_refresh(deadline=self._clock() + self._refresh_timeout)
        self.stalls += 1
        # shield: a caller that is cancelled must not cancel the refresh the others wait on.
        return await asyncio.shield(task)

    def _start_refresh(self, *, deadline: float) -> asyncio.Task[_Held]:
        if self._closed:
            raise CredentialsError(f"{self.source}: the provider is closed")
        if self._task is None:
            self._task = asyncio.create_task(self._refresh(deadline))
            self._task.add_done_callback(self._refresh_done)
        return self._task

    def _refresh_done(self, task: asyncio.Task[_Held]) -> None:
        if self._task is task:
            self._task = None
        if not task.cancelled() and task.exception() is not None:
            # Retrieved here so a background refresh's failure is logged, not "never retrieved".
            logger.warning("%s", task.exception())
            held, now = self._held, self._clock()
            if held is not None and now < held.usable_until:
                # It gave up because its next wait would outlast the key: pause before another,
                # or every call in the key's last seconds would start a fetch of its own.
                pause = min(self._retry_wait[1], (held.usable_until - now) / 2)
                self._quiet_until = now + max(self._retry_wait[0], pause)

    async def _refresh(self, deadline: float) -> _Held:
        """Fetch until success or until ``deadline`` (wall clock) would be passed."""
        budget = max(0.0, deadline - self._clock())

        def note_failure(state: RetryCallState) -> None:
            if state.outcome is not None and state.outcome.failed:
                exc = state.outcome.exception()
                logger.info(
                    "%s: refresh attempt %d failed: %s", self.source, state.attempt_number, exc
                )

        retrying = AsyncRetrying(
            retry=retry_if_exception(_retryable),
            stop=stop_before_delay(budget),
            wait=wait_random_exponential(multiplier=self._retry_wait[0], max=self._retry_wait[1]),
            after=note_failure,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    try:
                        issued = await self._fetch()
                    except Exception:
                        self.failed_attempts += 1
                        raise
        except TcvpcError as exc:
            raise self._failure(exc) from None
        held = self._hold(issued)
        self._held = held
        self._quiet_until = -math.inf
        self.refreshes += 1
        logger.info("%s: new temporary key, expires %s", self.source, _iso(held.expires_at))
        return held

    def _failure(self, exc: TcvpcError) -> CredentialsError:
        held = self._held
        now = self._clock()
        if held is not None and now < held.usable_until:
            return CredentialsError(
                f"{self.source}: refresh failed, the current key stays in use until "
                f"{_iso(held.usable_until)}: {exc}"
            )
        if held is not None and held.usable_until == -math.inf:
            return CredentialsError(
                f"{self.source}: the server refused the temporary key's token and no new key "
                f"could be fetched: {exc}"
            )
        if held is not None:
            return CredentialsError(
                f"{self.source}: the temporary key expired at {_iso(held.expires_at)} "
                f"and could not be renewed: {exc}"
            )
        return CredentialsError(f"{self.source}: could not get a temporary key: {exc}")

    def _hold(self, issued: TemporaryCredential) -> _Held:
        now = self._clock()
        lifetime = issued.expires_at - now
        if lifetime <= 0:
            raise CredentialsError(
                f"{self.source}: the new temporary key had already expired at "
                f"{_iso(issued.expires_at)} (is this machine's clock right?)"
            )
        usable_until = issued.expires_at - min(self._expiry_margin, 0.1 * lifetime)
        refresh_at = issued.expires_at - min(self._refresh_ahead, self._refresh_fraction * lifetime)
        refresh_at = min(refresh_at, usable_until)
        if refresh_at <= now:
            # A key issued already inside its refresh window (a source that hands out the same
            # key until it rotates it): try again halfway to its end, not on every call.
            refresh_at = now + (usable_until - now) / 2
        return _Held(issued.credential, issued.expires_at, refresh_at, usable_until)
