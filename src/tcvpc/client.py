"""``VpcClient``: signed, rate-limited, retried calls to the Tencent Cloud VPC API.

The request path runs one way::

    call(action, params)                 _call: the deadline starts now
      ├─ first attempt, inline           (most calls need no retry machinery)
      ├─ retries: tenacity AsyncRetrying, built only for a call that failed (retry.py)
      │    each attempt (_attempt_once):
      │      1. limiter             per (account, region, action): a free permit at once
      │                             (try_acquire, no timer), else acquire() bounded by the deadline
      │      2. credentials.get()   a provider may refresh without blocking the loop
      │      3. sign                after the token, so the timestamp is fresh
      │      4. transport.send()    AiohttpTransport by default: keep-alive pool, no redirects,
      │                             capped body, verified TLS, proxies (transport.py)
      │      5. decode              HTTP 200 + JSON envelope, or a typed error (decode.py)
      └─ _finish: budget, unknown-outcome memory, on_call hook, the one failure log line

The body is serialised once per call and those exact bytes are signed and sent on every attempt.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import time
from collections import Counter, defaultdict
from collections.abc import AsyncGenerator, Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Self, overload

import aiohttp

from tcvpc import signing
from tcvpc._version import USER_AGENT
from tcvpc.apilimits import MAX_FILTER_VALUES, MAX_FILTERS, PAGE_LIMIT
from tcvpc.chain import default_provider
from tcvpc.credentials import Credential, CredentialProvider, StaticProvider
from tcvpc.decode import EXCERPT_CHARS, decode_response
from tcvpc.endpoint import Endpoint, parse_endpoint
from tcvpc.errors import (
    ApiError,
    ClientClosedError,
    DeadlineExceededError,
    EventLoopError,
    GatewayBusyError,
    NotFoundError,
    QueueFullError,
    ResponseError,
    RetryKind,
    SignatureExpiredError,
    TcvpcError,
    TokenExpiredError,
    is_throttle,
)
from tcvpc.eventloop import clock_of, runs_here
from tcvpc.lanes import GatewayLanes
from tcvpc.models import (
    DeleteOutcome,
    DeleteResult,
    DeleteVpnConnectionResponse,
    DescribeVpnConnectionsResponse,
    TunnelRef,
    VpnConnection,
    looks_like_tunnel,
)
from tcvpc.outcomes import UnknownOutcomes
from tcvpc.ratelimit import (
    DEFAULT_RATE,
    LimiterRegistry,
    Limiters,
    Permit,
    RateLimiter,
    shared_limiters,
)
from tcvpc.refreshing import RefreshableProvider
from tcvpc.retry import CallRetrying, RetryBudget, RetryPolicy, retry_kind
from tcvpc.telemetry import (
    CallEvent,
    CallOutcome,
    ClientMetrics,
    RetryEvent,
    check_hook,
    run_hook,
)
from tcvpc.transport import DEFAULT_MAX_RESPONSE_BYTES, AiohttpTransport, AsyncTransport, Request

__all__ = [
    "API_VERSION",
    "ClientStats",
    "RetryEvent",
    "VpcClient",
]

logger = logging.getLogger("tcvpc")

API_VERSION = "2017-03-12"
SERVICE = "vpc"
CONTENT_TYPE = "application/json"
ENV_REGION = "TENCENTCLOUD_REGION"
_QUIET_DELETE: tuple[type[TcvpcError], ...] = (NotFoundError,)
"""Errors a delete turns into results (logged at DEBUG): a tunnel already gone."""
_QUIET_LANE_DELETE: tuple[type[TcvpcError], ...] = (NotFoundError, GatewayBusyError)
"""In a lane a busy gateway ends a round, not the call: the lane retries it (lanes.py)."""
_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
"""The request body's encoding (one encoder: ``json.dumps`` with options builds one per call)."""
_json_string: Callable[[str], str] = json.encoder.encode_basestring
"""How ``_JSON`` writes a string (``ensure_ascii=False``): quoted and escaped."""


@dataclass(slots=True)
class ClientStats:
    """Counters for everything the client sent; read them for reports and metrics.

    Each figure is counted in one place and means one thing:

    * ``requests_sent`` / ``requests_by_action``: attempts put on the wire (retries included);
    * ``throttled`` / ``throttled_by_action``: answers of the throttled kind
      (:attr:`RetryKind.THROTTLED`: ``RequestLimitExceeded*``, ``LimitExceeded.ActionLimited``,
      HTTP 429), whether or not the call then retried;
    * ``retries_by_code`` / ``retries_by_action_code``: retries scheduled, by the code that
      caused them (a call without retries, like the cleanup watcher's polls, adds none);
    * ``errors_by_code``: every non-OK answer or transport failure, by code.

    ``requests_sent`` counts requests handed to the network (a call that waited for the limiter
    or its credentials and was cancelled there sent nothing and is not counted);
    ``requests_cancelled`` counts those of them whose caller gave up before the answer (the
    server may or may not have received them).
    """

    requests_sent: int = 0
    requests_by_action: Counter[str] = field(default_factory=Counter)
    errors_by_code: Counter[str] = field(default_factory=Counter)
    retries_by_code: Counter[str] = field(default_factory=Counter)
    retries_by_action_code: Counter[tuple[str, str]] = field(default_factory=Counter)
    throttled: int = 0
    throttled_by_action: Counter[str] = field(default_factory=Counter)
    requests_cancelled: int = 0


@dataclass(slots=True)
class _Call:
    """One call's state, shared by its attempts (they run one after another, never together)."""

    action: str
    body: bytes
    limiter: RateLimiter
    policy: RetryPolicy
    started: float
    """The client's clock (its loop's) when the call began: its deadline counts from here."""
    deadline: float
    """Seconds the whole call may take."""
    remember: Hashable | None
    """Key for the unknown-outcome memory (a delete's tunnel), or ``None``."""
    try_acquire: Callable[[], Permit | None] | None
    """The limiter's non-waiting acquire, when it has one (the local limiters do)."""
    deadline_at: float
    """``started + deadline``."""
    attempts: int = 0
    sent: int = 0
    """Attempts that reached the network."""
    queue_wait: float = 0.0
    in_flight: bool = False
    """An attempt is on the network now: a cancellation leaves its outcome unknown."""
    outcome_unknown: bool = False
    """Some finished attempt may have acted although we saw no answer."""
    retrying: CallRetrying | None = None

    def may_have_acted(self, exc: BaseException | None) -> bool:
        """True when the call ends without knowing whether the server acted on it."""
        if self.in_flight or self.outcome_unknown:
            return True
        return isinstance(exc, TcvpcError) and exc.outcome_unknown


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _wrong_loop_message(verb: str) -> str:
    return (
        f"this VpcClient was {verb} from an event loop other than the one it first ran in; its "
        "connection pool and rate limiter belong to that loop. Create the client inside the "
        "loop that uses it (in the coroutine given to asyncio.run, in each thread's loop, in an "
        "async fixture) and close it there"
    )


def _outcome_of(exc: BaseException | None) -> CallOutcome:
    if exc is None:
        return "ok"
    return "error" if isinstance(exc, Exception) else "cancelled"


def _error_code(exc: TcvpcError) -> str:
    """A short label for any failure: the API code, ``HTTP 502``, or the transport error type."""
    if isinstance(exc, ApiError):
        return exc.code
    if isinstance(exc, ResponseError):
        return f"HTTP {exc.status}" if exc.status != 200 else "MalformedResponse"
    return type(exc).__name__


def _delete_body(vpn_gateway_id: str, vpn_connection_id: str) -> bytes:
    """``_JSON.encode`` of a delete's two parameters, byte for byte (the same escaping, key order
    and separators) without the encoder's per-call setup, which costs more than the rest."""
    return (
        f'{{"VpnGatewayId":{_json_string(vpn_gateway_id)},'
        f'"VpnConnectionId":{_json_string(vpn_connection_id)}}}'
    ).encode()


def _check_id(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, not {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{name} must not be empty")
    return value


class VpcClient:
    """An asyncio client for the VPC API, safe to share between tasks.

    ``credential``: a :class:`Credential`, any :class:`CredentialProvider`, or ``None`` for the
    default chain (environment, profile file, CVM role, TKE OIDC: see chain.py). A provider
    with ``force_refresh`` (refreshing.py) renews its key once when the server refuses its token.
    ``region`` defaults to ``TENCENTCLOUD_REGION``. ``rate`` is each action's client-side limit in
    requests per second (default 99.5: never more than 100 in any second, see ratelimit.py); clients
    with the same credentials and rate in one process share one budget unless ``limiters`` says
    otherwise.
    ``timeout`` bounds one attempt; ``retry_policy`` (its ``deadline``) bounds the whole call,
    waiting for the limiter included (``timeout`` still bounds each attempt). ``max_waiting``
    bounds how many calls may wait for the limiter at once (``None``: unbounded); a call beyond
    it fails at once with :class:`QueueFullError`. ``on_retry`` and ``on_call`` are plain
    functions called with a :class:`RetryEvent` before each retry and a :class:`CallEvent` when
    each call ends. ``unknown_outcomes`` remembers deletes sent without an answer (outcomes.py).
    ``gateway_lanes``: deletes to one VPN gateway take turns in the client (lanes.py); ``False``
    sends them at once, or pass a :class:`GatewayLanes` to share lanes between clients.

    A client belongs to the event loop it first runs in: create it inside that loop.

    The network: ``transport`` (any :class:`AsyncTransport`) replaces the default
    :class:`AiohttpTransport`, which is built from ``max_connections``, ``max_response_bytes``,
    ``proxy``, ``trust_env`` and ``ca_bundle``, or wraps a caller's ``session`` (never closed
    here). The client closes only a transport it made.
    """

    def __init__(
        self,
        credential: Credential | CredentialProvider | None = None,
        *,
        region: str | None = None,
        endpoint: str | None = None,
        retry_policy: RetryPolicy | None = None,
        rate: float = DEFAULT_RATE,
        limiters: Limiters | None = None,
        retry_budget: RetryBudget | None = None,
        timeout: float = 30.0,
        language: str | None = None,
        allow_insecure: bool = False,
        max_connections: int = 100,
        on_retry: Callable[[RetryEvent], object] | None = None,
        on_call: Callable[[CallEvent], object] | None = None,
        max_waiting: int | None = None,
        unknown_outcomes: UnknownOutcomes | None = None,
        session: aiohttp.ClientSession | None = None,
        transport: AsyncTransport | None = None,
        proxy: str | None = None,
        trust_env: bool = True,
        ca_bundle: str | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        gateway_lanes: bool | GatewayLanes = True,
    ) -> None:
        resolved_region = (region or os.environ.get(ENV_REGION, "")).strip()
        if not resolved_region:
            raise ValueError(f"region is required: pass region= or set {ENV_REGION}")
        if language not in (None, "zh-CN", "en-US"):
            raise ValueError(f"language must be 'zh-CN' or 'en-US', not {language!r}")
        if not timeout > 0:
            raise ValueError("timeout must be a positive number of seconds")
        if transport is not None and (
            session is not None or proxy is not None or ca_bundle is not None
        ):
            raise ValueError("give transport= or the network options (session, proxy, ca_bundle)")
        if max_waiting is not None and (isinstance(max_waiting, bool) or max_waiting < 1):
            raise ValueError("max_waiting must be None (unbounded) or >= 1")
        self._on_retry = check_hook("on_retry", on_retry)
        self._on_call = check_hook("on_call", on_call)
        self.endpoint: Endpoint = parse_endpoint(endpoint, allow_insecure=allow_insecure)
        self._owned_provider: CredentialProvider | None = None
        if credential is None:  # the default chain; STS calls follow this client's endpoint
            credential = self._owned_provider = default_provider(endpoint=self.endpoint)
        if isinstance(credential, Credential):
            self._account = credential.secret_id
            self._credentials: CredentialProvider = StaticProvider(credential)
        elif isinstance(credential, StaticProvider):
            # Keys from the environment or the profile file: one account, so one shared budget.
            self._account = credential.credential.secret_id
            self._credentials = credential
        elif isinstance(credential, CredentialProvider):
            self._account = f"provider-{id(credential):x}"
            self._credentials = credential
        else:
            raise TypeError("credential must be a Credential, a CredentialProvider or None")
        self.region = resolved_region
        self.retry_policy = retry_policy or RetryPolicy()
        # By default clients of one account share its budget process-wide (per rate).
        self.limiters = limiters if limiters is not None else shared_limiters(rate)
        self.retry_budget = retry_budget if retry_budget is not None else RetryBudget()
        self.stats = ClientStats()
        self.gateway_lanes: GatewayLanes | None = None
        if isinstance(gateway_lanes, GatewayLanes):
            self.gateway_lanes = gateway_lanes
        elif gateway_lanes is True:
            self.gateway_lanes = GatewayLanes()
        elif gateway_lanes is not False:
            raise TypeError("gateway_lanes must be True, False or a GatewayLanes")
        self._timeout = float(timeout)
        self._language = language
        self.max_waiting = max_waiting
        if unknown_outcomes is None:  # not ``or``: an empty memory is falsy
            unknown_outcomes = UnknownOutcomes()
        self.unknown_outcomes = unknown_outcomes
        self._loop: asyncio.AbstractEventLoop | None = None
        self._clock: Callable[[], float] = time.monotonic
        """``_loop``'s clock (eventloop.clock_of), set with it: ``loop.time()`` in one call."""
        self._waiting = 0
        self._in_flight = 0
        self._shed = 0
        self._limiters_used: dict[str, RateLimiter] = {}
        self._calls: Counter[tuple[str, CallOutcome]] = Counter()
        self._call_seconds: defaultdict[str, float] = defaultdict(float)
        self._queue_seconds: defaultdict[str, float] = defaultdict(float)
        self._owns_transport = transport is None
        self._transport: AsyncTransport = (
            transport
            if transport is not None
            else AiohttpTransport(
                max_connections=max_connections,
                max_response_bytes=max_response_bytes,
                proxy=proxy,
                trust_env=trust_env,
                ca_bundle=ca_bundle,
                session=session,
            )
        )
        self._closed = False
        self._clock_offset = 0.0
        self._warned_id_shape = False
        # Per action: the constant headers and the limiter, for the region, endpoint and
        # limiters they were made for (public attributes: _call drops them if one changes).
        self._header_base: dict[str, dict[str, str]] = {}
        self._limiter_of: dict[str, tuple[RateLimiter, Callable[[], Permit | None] | None]] = {}
        self._cached_for: tuple[str, Endpoint, Limiters] = (
            self.region,
            self.endpoint,
            self.limiters,
        )
        self._before_delete_retry = functools.partial(self._before_retry, "DeleteVpnConnection")

    def __repr__(self) -> str:
        return f"VpcClient(region={self.region!r}, endpoint={self.endpoint.url!r})"

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._check_loop()
        self._ensure_session()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the transport (when the client made it; a caller's session stays open).
        Idempotent.

        From a loop other than the client's: when that loop is closed, its sockets went with it
        and the client just lets go of them; when it still runs, :class:`EventLoopError`.
        """
        if self._closed:
            return
        if self._loop is not None and self._loop is not _running_loop():
            if not self._loop.is_closed():
                raise EventLoopError(_wrong_loop_message("closed"))
            self._closed = True
            return
        self._closed = True
        if self._owns_transport:
            await self._transport.aclose()
        owned, self._owned_provider = self._owned_provider, None
        closer = getattr(owned, "aclose", None)
        if closer is not None:  # the default chain's CVM/STS provider holds a connection pool
            await closer()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def transport(self) -> AsyncTransport:
        """Where requests go; credential providers may share it."""
        return self._transport

    def _check_loop(self) -> asyncio.AbstractEventLoop:
        """Bind the client to the running loop on first use; refuse any other loop after that.

        The connection pool, the limiter's queue and its timers belong to one loop: used from
        another, asyncio fails with "Event loop is closed", "bound to a different event loop",
        or a future that is never woken (a hang). Say what to do instead.
        """
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
            self._clock = clock_of(loop)
        elif self._loop is not loop:
            raise EventLoopError(_wrong_loop_message("used"))
        return loop

    def _ensure_session(self) -> AsyncTransport:
        """The transport, or ``ClientClosedError`` once the client is closed."""
        if self._closed:
            raise ClientClosedError("this VpcClient is closed; create a new one")
        return self._transport

    async def check_credentials(self) -> Credential:
        """Find a credential now (the default chain's CVM/TKE lookups included), so that a job
        with none fails before its first request; raises ``CredentialsError``."""
        return await self._credentials.get()

    # -- the generic call ------------------------------------------------------------------

    # The typed answers are dicts at run time, so the overlap with the generic ``str`` overload
    # (whose answer is ``dict[str, Any]``) is safe: mypy cannot know that, hence the ignores.
    @overload
    async def call(  # type: ignore[overload-overlap]
        self,
        action: Literal["DeleteVpnConnection"],
        params: Mapping[str, Any] | None = None,
        *,
        retry_policy: RetryPolicy | None = None,
        deadline: float | None = None,
    ) -> DeleteVpnConnectionResponse: ...

    @overload
    async def call(  # type: ignore[overload-overlap]
        self,
        action: Literal["DescribeVpnConnections"],
        params: Mapping[str, Any] | None = None,
        *,
        retry_policy: RetryPolicy | None = None,
        deadline: float | None = None,
    ) -> DescribeVpnConnectionsResponse: ...

    @overload
    async def call(
        self,
        action: str,
        params: Mapping[str, Any] | None = None,
        *,
        retry_policy: RetryPolicy | None = None,
        deadline: float | None = None,
    ) -> dict[str, Any]: ...

    async def call(
        self,
        action: str,
        params: Mapping[str, Any] | None = None,
        *,
        retry_policy: RetryPolicy | None = None,
        deadline: float | None = None,
    ) -> Any:
        """Call any VPC action; returns the ``Response`` object (``RequestId`` included).

        ``deadline``: seconds the whole call may take, waiting for the limiter included
        (default: the retry policy's ``deadline``).
        """
        if not isinstance(action, str) or not action:  # the typed actions pass their own
            raise ValueError("action must be a non-empty string")
        response, _ = await self._call(action, params or {}, retry_policy, deadline=deadline)
        return response

    async def _call(
        self,
        action: str,
        params: Mapping[str, Any] | bytes,
        retry_policy: RetryPolicy | None,
        *,
        deadline: float | None = None,
        remember: Hashable | None = None,
        quiet: tuple[type[TcvpcError], ...] = (),
    ) -> tuple[dict[str, Any], int]:
        """Run ``action`` with retries; returns ``(Response, attempts)``.

        An exception that escapes carries ``attempts`` (how many were made) and
        ``after_unknown_outcome`` (whether an earlier attempt may have taken effect).
        ``params``: the action's parameters, or their JSON body already encoded.
        ``remember``: a key the unknown-outcome memory keeps when the call ends without
        learning whether it acted. ``quiet``: errors the caller turns into results (logged at
        DEBUG, not WARNING).
        """
        # Check the call, serialise its body once, find its limiter; the deadline starts
        # (here, not in a helper: a frame less on every call). ``action`` is checked by call().
        policy = retry_policy or self.retry_policy
        if deadline is None:
            deadline = policy.deadline
        elif not deadline > 0:
            raise ValueError("deadline must be a positive number of seconds")
        if self._loop is None or not runs_here(self._loop):
            self._check_loop()  # binds a first loop (and its clock), refuses another
        if self._closed:
            self._ensure_session()  # raises ClientClosedError
        body = params if isinstance(params, bytes) else _JSON.encode(params).encode("utf-8")
        cached_for = self._cached_for
        if (
            cached_for[0] is not self.region
            or cached_for[1] is not self.endpoint
            or cached_for[2] is not self.limiters
        ):
            self._header_base.clear()
            self._limiter_of.clear()
            self._cached_for = (self.region, self.endpoint, self.limiters)
        found = self._limiter_of.get(action)
        if found is None:
            limiter = self.limiters.get(account=self._account, region=self.region, action=action)
            self._limiters_used[action] = limiter
            found = (limiter, getattr(limiter, "try_acquire", None))
            # A LimiterRegistry hands out one limiter per action for good in the client's loop;
            # another Limiters may change its answer, so it is asked every time.
            if isinstance(self.limiters, LimiterRegistry) and len(self._limiter_of) < 64:
                self._limiter_of[action] = found
        limiter, try_acquire = found
        now = self._clock()
        call = _Call(
            action,
            body,
            limiter,
            policy,
            now,
            deadline,
            remember,
            try_acquire,
            now + deadline,
        )
        self._in_flight += 1
        try:
            # The first attempt inline (most calls need nothing more); tenacity for the rest.
            try:
                response = await self._attempt_once(call)
            except TcvpcError as exc:
                if retry_kind(exc) is None:
                    raise
                response = await self._retry(call, exc)
        except BaseException as exc:
            self._finish(call, exc, quiet)
            raise
        self._finish(call, None, quiet, response)
        return response, call.attempts

    async def _retry(self, call: _Call, first_failure: TcvpcError) -> dict[str, Any]:
        """Let tenacity decide every retry: the inline attempt's failure is its attempt 1."""
        remaining = call.deadline_at - self._clock()
        machinery = CallRetrying(
            call.policy,
            self.retry_budget,
            functools.partial(self._before_retry, call.action),
            remaining=remaining,
        )
        call.retrying = machinery
        replay: TcvpcError | None = first_failure
        # Neither this frame nor _call's keeps the error once it is replayed: both are in its
        # traceback, and holding it would make a cycle only the garbage collector frees.
        del first_failure
        async for attempt in machinery.retrying():
            with attempt:
                if replay is not None:
                    failure, replay = replay, None
                    try:
                        raise failure
                    finally:
                        del failure
                response = await self._attempt_once(call)
        return response

    async def _attempt_once(self, call: _Call) -> dict[str, Any]:
        """One attempt: a permit within the deadline, the request, what its answer teaches."""
        # The inline first attempt starts as the call does (_call awaits nothing before it);
        # _retry's attempts read the clock.
        now = call.started if call.retrying is None else self._clock()
        try:
            if call.deadline_at <= now:
                raise self._deadline_error(call, "before the next attempt could start")
            max_waiting = self.max_waiting
            # Shed new calls only: a retry is part of a call already admitted.
            if max_waiting is not None and call.attempts == 0 and self._waiting >= max_waiting:
                self._shed += 1
                raise QueueFullError(
                    f"{call.action}: {self._waiting} calls already wait for the rate limiter "
                    f"(max_waiting={max_waiting}); nothing was sent",
                    action=call.action,
                    max_waiting=max_waiting,
                )
            # A permit the limiter has free now needs no deadline timer.
            try_acquire = call.try_acquire
            permit = None if try_acquire is None else try_acquire()
            if permit is None:
                permit = await self._permit(call)
                now = self._clock()
        except TcvpcError as exc:  # shed or out of time: nothing sent by this attempt
            exc.after_unknown_outcome = call.outcome_unknown
            raise
        call.attempts += 1
        try:
            if call.deadline_at - now >= self._timeout:
                response = await self._attempt(call)  # its own timeout ends it first
            else:
                response = await self._send_within_deadline(call)
        except TcvpcError as exc:
            permit.release(answered=exc.answered)  # a lost answer's duration is no round trip
            call.in_flight = False  # the error says what we know (outcome_unknown)
            exc.after_unknown_outcome = call.outcome_unknown
            call.outcome_unknown = call.outcome_unknown or exc.outcome_unknown
            if exc.retry_kind is RetryKind.THROTTLED:  # API codes and HTTP 429 alike
                call.limiter.on_throttled()
            elif isinstance(exc, ApiError):  # processed by the server: it counted it
                call.limiter.on_admitted()
            raise
        except BaseException:
            permit.release(answered=False)
            if call.in_flight:  # cancelled mid-request: in_flight stays set for _finish
                self.stats.requests_cancelled += 1
            raise
        finally:
            permit.release()
        call.in_flight = False
        call.limiter.on_admitted()
        return response

    async def _permit(self, call: _Call) -> Permit:
        """Wait for the limiter, but not past the deadline (when it had no permit free at once)."""
        self._waiting += 1
        queued = self._clock()
        timeout = asyncio.timeout(call.deadline_at - queued)
        try:
            async with timeout:
                return await call.limiter.acquire()
        except TimeoutError:
            if not timeout.expired():
                raise
            raise self._deadline_error(call, "while waiting for the rate limiter") from None
        finally:
            self._waiting -= 1
            call.queue_wait += self._clock() - queued

    async def _send_within_deadline(self, call: _Call) -> dict[str, Any]:
        """One request, cut short when the call's deadline comes before the request timeout."""
        remaining = call.deadline_at - self._clock()
        if remaining <= 0:  # the permit came just as the deadline passed
            raise self._deadline_error(call, "before the request could be sent")
        timeout = asyncio.timeout(remaining)
        try:
            async with timeout:
                return await self._attempt(call)
        except TimeoutError:
            if not timeout.expired():
                raise
            error = self._deadline_error(call, "while the request was running")
            if call.in_flight:
                self.stats.requests_cancelled += 1
                error.outcome_unknown = True  # the server may have acted
        raise error

    def _deadline_error(self, call: _Call, when: str) -> DeadlineExceededError:
        return DeadlineExceededError(
            f"{call.action}: the call's deadline of {call.deadline:g}s passed {when} "
            f"(attempts made: {call.attempts}, {call.queue_wait:.3f}s waiting for the limiter)",
            action=call.action,
            deadline=call.deadline,
            sent=call.sent > 0,
        )

    def _before_retry(self, action: str, exc: TcvpcError, attempt: int, delay: float) -> None:
        """Count, log (DEBUG) and announce one retry; tenacity calls it before sleeping."""
        code = _error_code(exc)
        request_id = exc.request_id if isinstance(exc, ApiError) else None
        self.stats.retries_by_code[code] += 1
        self.stats.retries_by_action_code[action, code] += 1
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "retrying %s after %s (attempt %d, waiting %.3fs, request id %s)",
                action,
                code,
                attempt,
                delay,
                request_id,
                extra={
                    "tcvpc_action": action,
                    "tcvpc_code": code,
                    "tcvpc_attempt": attempt,
                    "tcvpc_delay": delay,
                    "tcvpc_request_id": request_id,
                },
            )
        if self._on_retry is not None:
            event = RetryEvent(action, code, attempt, delay, request_id)
            run_hook("on_retry", self._on_retry, event)

    def _finish(
        self,
        call: _Call,
        exc: BaseException | None,
        quiet: tuple[type[TcvpcError], ...],
        response: Mapping[str, Any] | None = None,
    ) -> None:
        """Settle the retry budget, remember an unknown outcome, report the call once."""
        self._in_flight -= 1
        latency = self._clock() - call.started
        if exc is None and call.retrying is None:  # the common case, first try: kept short
            self.retry_budget.settle(0)
            action = call.action
            self._calls[action, "ok"] += 1
            self._call_seconds[action] += latency
            if call.queue_wait:  # a permit free at once waited 0 s: nothing to add
                self._queue_seconds[action] += call.queue_wait
            if self._on_call is not None:
                answered = (str(response.get("RequestId", "")) or None) if response else None
                self._report_call(call, "ok", None, latency, answered, False)
            return
        outcome = _outcome_of(exc)
        budget_exhausted = call.retrying is not None and call.retrying.budget_exhausted
        if exc is None and call.retrying is not None:  # a first-try success returned above
            call.retrying.succeeded()
        elif outcome == "cancelled" and call.retrying is not None:
            call.retrying.refund()  # abandoned, not failed: the budget is for failures
        if exc is not None and call.remember is not None and call.may_have_acted(exc):
            self.unknown_outcomes.remember(call.remember)
        code: str | None = None
        request_id: str | None = None
        if response is not None:
            request_id = str(response.get("RequestId", "")) or None
        elif isinstance(exc, TcvpcError):
            exc.attempts = call.attempts
            code = _error_code(exc)
            request_id = exc.request_id if isinstance(exc, ApiError) else None
            if budget_exhausted:
                exc.retry_budget_exhausted = True
                exc.args = (f"{exc} [not retried: the client's retry budget is exhausted]",)
        elif exc is not None:
            code = type(exc).__name__
        self._calls[call.action, outcome] += 1
        self._call_seconds[call.action] += latency
        self._queue_seconds[call.action] += call.queue_wait
        level = (
            logging.DEBUG if outcome == "cancelled" or isinstance(exc, quiet) else logging.WARNING
        )
        if outcome != "ok" and logger.isEnabledFor(level):
            logger.log(
                level,
                "%s %s: %s after %d attempt(s) in %.3fs (request id %s)",
                call.action,
                "cancelled" if outcome == "cancelled" else "failed",
                code,
                call.attempts,
                latency,
                request_id,
                extra={
                    "tcvpc_action": call.action,
                    "tcvpc_outcome": outcome,
                    "tcvpc_code": code,
                    "tcvpc_attempts": call.attempts,
                    "tcvpc_request_id": request_id,
                    "tcvpc_latency": latency,
                    "tcvpc_retry_budget_exhausted": budget_exhausted,
                },
            )
        if self._on_call is not None:
            self._report_call(call, outcome, code, latency, request_id, budget_exhausted)

    def _report_call(
        self,
        call: _Call,
        outcome: CallOutcome,
        code: str | None,
        latency: float,
        request_id: str | None,
        budget_exhausted: bool,
    ) -> None:
        event = CallEvent(
            action=call.action,
            outcome=outcome,
            code=code,
            attempts=call.attempts,
            latency=latency,
            queue_wait=call.queue_wait,
            request_id=request_id,
            retry_budget_exhausted=budget_exhausted,
        )
        run_hook("on_call", self._on_call, event)

    def metrics(self) -> ClientMetrics:
        """A snapshot for a metrics endpoint: cheap, safe to call from any task of the loop."""
        return ClientMetrics(
            calls=dict(self._calls),
            call_seconds=dict(self._call_seconds),
            # Every action with calls, those whose permits never waited too (0.0).
            queue_wait_seconds={a: self._queue_seconds.get(a, 0.0) for a in self._call_seconds},
            waiting=self._waiting,
            in_flight=self._in_flight,
            rates={action: limiter.rate for action, limiter in self._limiters_used.items()},
            requests_sent=self.stats.requests_sent,
            requests_cancelled=self.stats.requests_cancelled,
            retries=sum(self.stats.retries_by_code.values()),
            shed=self._shed,
            retry_budget_available=self.retry_budget.available,
        )

    async def _attempt(self, call: _Call) -> dict[str, Any]:
        """One signed POST through the transport; returns ``Response`` or raises a typed error."""
        action, body = call.action, call.body
        if self._closed:
            self._ensure_session()  # raises ClientClosedError
        transport = self._transport
        credentials = self._credentials
        # A fixed key needs no await (and no coroutine) per attempt.
        credential = (
            credentials.credential
            if type(credentials) is StaticProvider
            else await credentials.get()
        )
        timestamp = int(time.time() + self._clock_offset)
        # The signed headers go straight into the Request, whose repr redacts them: no local of
        # this frame holds the signature or the token for a traceback to show.
        request = Request(  # positional (method, url, headers, body, timeout, label): cheaper
            "POST",
            self.endpoint.url,
            self._signed_headers(action, body, credential, timestamp),
            body,
            self._timeout,
            action,
        )
        call.in_flight = True  # from here a cancellation leaves the outcome unknown
        call.sent += 1
        self.stats.requests_sent += 1
        self.stats.requests_by_action[action] += 1
        try:
            answer = await transport.send(request)
            return decode_response(action, answer.status, answer.headers, answer.body)
        except TcvpcError as exc:
            self._count_error(action, exc)
            if isinstance(exc, SignatureExpiredError) and exc.server_date is not None:
                self._clock_offset = exc.server_date.timestamp() - time.time()
                logger.warning(
                    "clock skew: the server's clock is %.0fs ahead of ours; re-signing",
                    self._clock_offset,
                )
            if isinstance(exc, TokenExpiredError) and isinstance(
                self._credentials, RefreshableProvider
            ):
                # The token was refused (revoked, expired): the one retry signs with a new key.
                await self._credentials.force_refresh(credential)
            raise

    def _signed_headers(
        self, action: str, body: bytes, credential: Credential, timestamp: int
    ) -> dict[str, str]:
        base = self._header_base.get(action)
        if base is None:  # what every request of this action sends, built once
            base = {
                "Host": self.endpoint.host_header,
                "Content-Type": CONTENT_TYPE,
                "X-TC-Action": action,
                "X-TC-Version": API_VERSION,
                "X-TC-Region": self.region,
                "User-Agent": USER_AGENT,
            }
            if self._language:
                base["X-TC-Language"] = self._language
            if len(self._header_base) < 64:  # any action name may be called: keep a few
                self._header_base[action] = base
        headers = base.copy()
        headers["X-TC-Timestamp"] = str(timestamp)
        headers["Authorization"] = signing.authorization(
            secret_id=credential.secret_id,
            secret_key=credential.secret_key,
            service=SERVICE,
            host=self.endpoint.host_header,
            content_type=CONTENT_TYPE,
            payload=body,
            timestamp=timestamp,
        )
        if credential.token:
            headers["X-TC-Token"] = credential.token
        return headers

    def _count_error(self, action: str, exc: TcvpcError) -> None:
        self.stats.errors_by_code[_error_code(exc)] += 1
        if is_throttle(exc):  # errors.py decides: throttle codes and HTTP 429 alike
            self.stats.throttled += 1
            self.stats.throttled_by_action[action] += 1

    # -- typed actions ---------------------------------------------------------------------

    def _warn_id_shape(self, vpn_gateway_id: str, vpn_connection_id: str) -> None:
        if self._warned_id_shape or looks_like_tunnel(vpn_gateway_id, vpn_connection_id):
            return
        self._warned_id_shape = True
        logger.warning(
            "IDs %r / %r do not look like vpngw-/vpnx- + 8 lowercase letters or digits; "
            "sending anyway (the server decides). Further odd IDs are not reported.",
            vpn_gateway_id,
            vpn_connection_id,
        )

    def _delete_round(
        self, body: bytes, tunnel: TunnelRef
    ) -> Callable[..., Awaitable[tuple[dict[str, Any], int]]]:
        """One round of a delete for its gateway's lane: ``(policy, *, deadline)``."""
        return functools.partial(
            self._call,
            "DeleteVpnConnection",
            body,
            remember=tunnel,
            quiet=_QUIET_LANE_DELETE,
        )

    async def delete_vpn_connection(
        self,
        *,
        vpn_gateway_id: str,
        vpn_connection_id: str,
        missing_ok: bool = False,
        retry_policy: RetryPolicy | None = None,
        deadline: float | None = None,
    ) -> DeleteResult:
        """Delete one VPN tunnel; the tunnel turns ``DELETING`` and disappears later.

        ``missing_ok=True`` turns ``ResourceNotFound`` / ``RecordNotExists`` into a result with
        outcome ``already_gone`` instead of :class:`NotFoundError`. Whatever ``missing_ok`` says,
        a not-found that follows an attempt of unknown outcome (timeout, dropped connection,
        proxy error) means that attempt deleted the tunnel: the result is ``deleted`` with
        ``inferred=True``. That holds across calls too: the client remembers (bounded, see
        ``unknown_outcomes``) deletes it sent without learning their outcome, because their
        caller cancelled them, their deadline passed or their connection broke.
        ``deadline``: seconds the whole call may take, limiter queueing included. With gateway
        lanes (the default) the call first waits for its turn on its gateway (that counts too),
        and a busy gateway is retried there (lanes.py).
        """
        # _check_id's test inline for the usual IDs (plain non-blank strings): two calls less.
        if type(vpn_gateway_id) is not str or not vpn_gateway_id.strip():
            _check_id("vpn_gateway_id", vpn_gateway_id)
        if type(vpn_connection_id) is not str or not vpn_connection_id.strip():
            _check_id("vpn_connection_id", vpn_connection_id)
        if not self._warned_id_shape and not looks_like_tunnel(vpn_gateway_id, vpn_connection_id):
            self._warn_id_shape(vpn_gateway_id, vpn_connection_id)
        tunnel = TunnelRef(vpn_gateway_id, vpn_connection_id)
        body = _delete_body(vpn_gateway_id, vpn_connection_id)
        lanes = self.gateway_lanes
        try:
            if lanes is None:
                response, attempts = await self._call(
                    "DeleteVpnConnection",
                    body,
                    retry_policy,
                    deadline=deadline,
                    remember=tunnel,
                    quiet=_QUIET_DELETE,
                )
            else:  # a turn in the gateway's lane, which retries a busy gateway itself
                key = (self._account, self.region, vpn_gateway_id)
                policy = retry_policy or self.retry_policy
                limit = policy.deadline if deadline is None else deadline
                turn = lanes.fresh_turn(key, limit)
                if turn is None:  # the gateway has a lane: wait for the turn there
                    response, attempts = await lanes.run(
                        key,
                        self._delete_round(body, tunnel),
                        policy,
                        self._before_delete_retry,
                        deadline=deadline,
                    )
                else:  # a free gateway: the first round runs here (lanes.py: fresh_turn)
                    failed: TcvpcError | None = None
                    try:
                        response, attempts = await self._call(
                            "DeleteVpnConnection",
                            body,
                            lanes.round_policy(policy),
                            deadline=max(1e-3, limit),  # as run's first round has it
                            remember=tunnel,
                            quiet=_QUIET_LANE_DELETE,
                        )
                    except TcvpcError as exc:
                        failed = exc  # handed over outside this block: no __context__ chain
                    except BaseException:
                        lanes.end_turn(key, turn)
                        raise
                    if failed is None:
                        lanes.end_turn(key, turn)
                    else:
                        try:
                            response, attempts = await lanes.after_failed_turn(
                                key,
                                turn,
                                failed,
                                self._delete_round(body, tunnel),
                                policy,
                                self._before_delete_retry,
                                limit,
                            )
                        finally:
                            # This frame is in the traceback of what it raises: holding the
                            # error would make a cycle only the garbage collector frees.
                            del failed
        except NotFoundError as exc:
            # Both run: the memory forgets the tunnel whatever this call itself saw.
            remembered = self.unknown_outcomes.pop(tunnel)
            inferred = exc.after_unknown_outcome or remembered
            if inferred:
                logger.info(
                    "%s: not found after a delete of unknown outcome: counted as deleted",
                    tunnel,
                    extra={"tcvpc_action": "DeleteVpnConnection", "tcvpc_tunnel": str(tunnel)},
                )
                outcome = DeleteOutcome.DELETED
            elif missing_ok:
                outcome = DeleteOutcome.ALREADY_GONE
            else:
                raise
            return DeleteResult(
                tunnel=tunnel,
                outcome=outcome,
                request_id=exc.request_id,
                attempts=exc.attempts,
                inferred=inferred,
                error_code=exc.code,
            )
        self.unknown_outcomes.pop(tunnel)  # acknowledged: nothing left to infer
        # (tunnel, outcome, request_id, attempts): positional is cheaper, and every delete
        # that succeeds builds one.
        return DeleteResult(
            tunnel, DeleteOutcome.DELETED, str(response.get("RequestId", "")), attempts
        )

    async def describe_vpn_connections(
        self,
        *,
        vpn_connection_ids: Sequence[str] | None = None,
        filters: Mapping[str, str | Sequence[str]] | None = None,
        retry_policy: RetryPolicy | None = None,
    ) -> AsyncGenerator[VpnConnection, None]:
        """Iterate over tunnels, paging with ``Limit=100``.

        Give ``vpn_connection_ids`` (any number: sent 100 at a time) or ``filters`` (name →
        value or values: ``vpn-gateway-id``, ``vpc-id``, ``vpn-connection-name``, ...; at most 10
        filters; one of them may have more than 5 values, it is then queried 5 at a time), not
        both. Paging is by offset: tunnels deleted while you iterate can shift later pages, so
        collect first when you delete what you list. Stopping early? Close the generator
        (``async with contextlib.aclosing(client.describe_vpn_connections(...)) as tunnels``).
        """
        if vpn_connection_ids is not None and filters is not None:
            raise ValueError("give vpn_connection_ids or filters, not both")
        if vpn_connection_ids is not None:
            if isinstance(vpn_connection_ids, str):
                raise ValueError("vpn_connection_ids must be a sequence of IDs, not one string")
            ids = [_check_id("vpn_connection_ids[]", i) for i in vpn_connection_ids]
            for start in range(0, len(ids), PAGE_LIMIT):
                query = {"VpnConnectionIds": ids[start : start + PAGE_LIMIT]}
                async for item in self._pages(query, retry_policy):
                    yield item
            return
        for query in _filter_queries(filters or {}):
            async for item in self._pages(query, retry_policy):
                yield item

    async def _pages(
        self, query: dict[str, Any], retry_policy: RetryPolicy | None
    ) -> AsyncGenerator[VpnConnection, None]:
        offset = 0
        while True:
            response = await self.call(
                "DescribeVpnConnections",
                {**query, "Offset": offset, "Limit": PAGE_LIMIT},
                retry_policy=retry_policy,
            )
            items = response.get("VpnConnectionSet")
            if not isinstance(items, list):
                raise ResponseError(
                    "DescribeVpnConnections answer without VpnConnectionSet",
                    action="DescribeVpnConnections",
                    status=200,
                    excerpt=json.dumps(response)[:EXCERPT_CHARS],
                )
            for item in items:
                if isinstance(item, dict):
                    yield VpnConnection.from_api(item)
            offset += len(items)
            total = response.get("TotalCount")
            if len(items) < PAGE_LIMIT or (isinstance(total, int) and offset >= total):
                return


def _filter_queries(filters: Mapping[str, str | Sequence[str]]) -> list[dict[str, Any]]:
    """Split filters into API-sized queries: ≤10 filters, ≤5 values per filter per query."""
    if len(filters) > MAX_FILTERS:
        raise ValueError(f"at most {MAX_FILTERS} filters, got {len(filters)}")
    normalised: dict[str, list[str]] = {}
    for name, values in filters.items():
        if not isinstance(name, str) or not name:
            raise ValueError("filter names must be non-empty strings")
        listed = [values] if isinstance(values, str) else list(values)
        if not listed:
            raise ValueError(f"filter {name!r} has no values")
        normalised[name] = [_check_id(f"filter {name!r} value", v) for v in listed]
    wide = [name for name, values in normalised.items() if len(values) > MAX_FILTER_VALUES]
    if len(wide) > 1:
        raise ValueError(
            f"only one filter may have more than {MAX_FILTER_VALUES} values; these do: {wide}"
        )
    if not wide:
        return [{"Filters": [{"Name": n, "Values": v} for n, v in normalised.items()]}]
    wide_name = wide[0]
    queries = []
    for start in range(0, len(normalised[wide_name]), MAX_FILTER_VALUES):
        chunk = {**normalised, wide_name: normalised[wide_name][start : start + MAX_FILTER_VALUES]}
        queries.append({"Filters": [{"Name": n, "Values": v} for n, v in chunk.items()]})
    return queries
