"""``VpcClient``: signed, rate-limited, retried calls to the Tencent Cloud VPC API.

The request path runs one way::

    call(action, params)
      └─ tenacity AsyncRetrying, built for this call (retry.py)
           each attempt:
             1. limiter.acquire()   per (account, region, action); retries take tokens too
             2. credentials.get()   a provider may refresh without blocking the loop
             3. sign                after the token, so the timestamp is fresh
             4. transport.send()    AiohttpTransport by default: keep-alive pool, no redirects,
                                    capped body, verified TLS, proxies (transport.py)
             5. decode              HTTP 200 + JSON envelope, or a typed error (decode.py)

The body is serialised once per call and those exact bytes are signed and sent on every attempt.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import aiohttp

from tcvpc import signing
from tcvpc.apilimits import MAX_FILTER_VALUES, MAX_FILTERS, PAGE_LIMIT
from tcvpc.chain import default_provider
from tcvpc.credentials import Credential, CredentialProvider, StaticProvider
from tcvpc.decode import EXCERPT_CHARS, decode_response
from tcvpc.endpoint import Endpoint, parse_endpoint
from tcvpc.errors import (
    ApiError,
    ClientClosedError,
    NotFoundError,
    ResponseError,
    RetryKind,
    SignatureExpiredError,
    TcvpcError,
    TokenExpiredError,
    is_throttle,
)
from tcvpc.models import (
    DeleteOutcome,
    DeleteResult,
    TunnelRef,
    VpnConnection,
    looks_like_connection_id,
    looks_like_gateway_id,
)
from tcvpc.ratelimit import DEFAULT_RATE, LimiterRegistry
from tcvpc.refreshing import RefreshableProvider
from tcvpc.retry import CallRetrying, RetryBudget, RetryPolicy, retry_kind
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


@dataclass(frozen=True, slots=True)
class RetryEvent:
    """What a retry hook receives, once per retry, before the client sleeps."""

    action: str
    code: str
    attempt: int
    """The attempt that failed (1 for the first)."""
    delay: float
    request_id: str | None


@dataclass(slots=True)
class ClientStats:
    """Counters for everything the client sent; read them for reports and metrics."""

    requests_sent: int = 0
    requests_by_action: Counter[str] = field(default_factory=Counter)
    errors_by_code: Counter[str] = field(default_factory=Counter)
    retries_by_code: Counter[str] = field(default_factory=Counter)
    throttled: int = 0


def _error_code(exc: TcvpcError) -> str:
    """A short label for any failure: the API code, ``HTTP 502``, or the transport error type."""
    if isinstance(exc, ApiError):
        return exc.code
    if isinstance(exc, ResponseError):
        return f"HTTP {exc.status}" if exc.status != 200 else "MalformedResponse"
    return type(exc).__name__


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
    requests per second (default 99.5: never more than 100 in any second, see ratelimit.py); pass
    ``limiters`` to share budgets between clients.
    ``timeout`` bounds one attempt; ``retry_policy`` bounds the whole call.

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
        limiters: LimiterRegistry | None = None,
        retry_budget: RetryBudget | None = None,
        timeout: float = 30.0,
        language: str | None = None,
        allow_insecure: bool = False,
        max_connections: int = 100,
        on_retry: Callable[[RetryEvent], None] | None = None,
        session: aiohttp.ClientSession | None = None,
        transport: AsyncTransport | None = None,
        proxy: str | None = None,
        trust_env: bool = True,
        ca_bundle: str | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
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
        self.endpoint: Endpoint = parse_endpoint(endpoint, allow_insecure=allow_insecure)
        self._owned_provider: CredentialProvider | None = None
        if credential is None:  # the default chain; STS calls follow this client's endpoint
            credential = self._owned_provider = default_provider(endpoint=self.endpoint)
        if isinstance(credential, Credential):
            self._account = credential.secret_id
            self._credentials: CredentialProvider = StaticProvider(credential)
        elif isinstance(credential, CredentialProvider):
            self._account = f"provider-{id(credential):x}"
            self._credentials = credential
        else:
            raise TypeError("credential must be a Credential, a CredentialProvider or None")
        self.region = resolved_region
        self.retry_policy = retry_policy or RetryPolicy()
        self.limiters = limiters if limiters is not None else LimiterRegistry(rate)
        self.retry_budget = retry_budget if retry_budget is not None else RetryBudget()
        self.stats = ClientStats()
        self._timeout = float(timeout)
        self._language = language
        self._on_retry = on_retry
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

    def __repr__(self) -> str:
        return f"VpcClient(region={self.region!r}, endpoint={self.endpoint.url!r})"

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
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
        Idempotent."""
        if self._closed:
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

    def _ensure_session(self) -> AsyncTransport:
        """The transport, or ``ClientClosedError`` once the client is closed."""
        if self._closed:
            raise ClientClosedError("this VpcClient is closed; create a new one")
        return self._transport

    async def check_credentials(self) -> None:
        """Find a credential now (the default chain's CVM/TKE lookups included), so that a job
        with none fails before its first request; raises ``CredentialsError``."""
        await self._credentials.get()

    # -- the generic call ------------------------------------------------------------------

    async def call(
        self,
        action: str,
        params: Mapping[str, Any] | None = None,
        *,
        retry_policy: RetryPolicy | None = None,
    ) -> dict[str, Any]:
        """Call any VPC action; returns the ``Response`` object (``RequestId`` included)."""
        response, _ = await self._call(action, params or {}, retry_policy)
        return response

    async def _call(
        self,
        action: str,
        params: Mapping[str, Any],
        retry_policy: RetryPolicy | None,
    ) -> tuple[dict[str, Any], int]:
        """Run ``action`` with retries; returns ``(Response, attempts)``.

        An exception that escapes carries ``attempts`` (how many were made) and
        ``after_unknown_outcome`` (whether an earlier attempt may have taken effect).
        """
        if not isinstance(action, str) or not action:
            raise ValueError("action must be a non-empty string")
        self._ensure_session()
        body = json.dumps(params, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        limiter = self.limiters.get(account=self._account, region=self.region, action=action)
        policy = retry_policy or self.retry_policy

        def log_retry(exc: TcvpcError, attempt: int, delay: float) -> None:
            code = _error_code(exc)
            request_id = exc.request_id if isinstance(exc, ApiError) else None
            self.stats.retries_by_code[code] += 1
            logger.info(
                "retrying %s after %s (attempt %d, waiting %.3fs, request id %s)",
                action,
                code,
                attempt,
                delay,
                request_id,
            )
            if self._on_retry is not None:
                self._on_retry(RetryEvent(action, code, attempt, delay, request_id))

        attempts = 0
        unknown_before = False

        async def attempt_once() -> dict[str, Any]:
            nonlocal attempts, unknown_before
            attempts += 1
            permit = await limiter.acquire()
            try:
                return await self._attempt(action, body)
            except TcvpcError as exc:
                exc.after_unknown_outcome = unknown_before
                unknown_before = unknown_before or exc.outcome_unknown
                if exc.retry_kind is RetryKind.THROTTLED:  # API codes and HTTP 429 alike
                    limiter.on_throttled()
                raise
            finally:
                permit.release()

        started = time.monotonic()
        try:
            response = await attempt_once()
        except TcvpcError as exc:
            if retry_kind(exc) is None:
                raise
            first_failure: TcvpcError | None = exc
        else:
            self.retry_budget.settle(0)
            return response, attempts
        machinery = CallRetrying(
            policy, self.retry_budget, log_retry, elapsed=time.monotonic() - started
        )
        try:
            async for attempt in machinery.retrying():
                with attempt:
                    if first_failure is not None:  # tenacity's attempt 1 is the one made above
                        failure, first_failure = first_failure, None
                        raise failure
                    response = await attempt_once()
        except TcvpcError as exc:
            exc.attempts = attempts
            raise
        machinery.succeeded()
        return response, attempts

    async def _attempt(self, action: str, body: bytes) -> dict[str, Any]:
        """One signed POST through the transport; returns ``Response`` or raises a typed error."""
        transport = self._ensure_session()
        credential = await self._credentials.get()
        timestamp = int(time.time() + self._clock_offset)
        # The signed headers go straight into the Request, whose repr redacts them: no local of
        # this frame holds the signature or the token for a traceback to show.
        request = Request(
            "POST",
            self.endpoint.url,
            self._signed_headers(action, body, credential, timestamp),
            body,
            timeout=self._timeout,
            label=action,
        )
        self.stats.requests_sent += 1
        self.stats.requests_by_action[action] += 1
        try:
            answer = await transport.send(request)
            return decode_response(action, answer.status, answer.headers, answer.body)
        except TcvpcError as exc:
            self._count_error(exc)
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
        headers = {
            "Host": self.endpoint.host_header,
            "Content-Type": CONTENT_TYPE,
            "X-TC-Action": action,
            "X-TC-Version": API_VERSION,
            "X-TC-Timestamp": str(timestamp),
            "X-TC-Region": self.region,
            "X-TC-RequestClient": "tcvpc",
            "Authorization": signing.authorization(
                secret_id=credential.secret_id,
                secret_key=credential.secret_key,
                service=SERVICE,
                host=self.endpoint.host_header,
                content_type=CONTENT_TYPE,
                payload=body,
                timestamp=timestamp,
            ),
        }
        if credential.token:
            headers["X-TC-Token"] = credential.token
        if self._language:
            headers["X-TC-Language"] = self._language
        return headers

    def _count_error(self, exc: TcvpcError) -> None:
        self.stats.errors_by_code[_error_code(exc)] += 1
        if is_throttle(exc):  # errors.py decides: throttle codes and HTTP 429 alike
            self.stats.throttled += 1

    # -- typed actions ---------------------------------------------------------------------

    def _warn_id_shape(self, vpn_gateway_id: str, vpn_connection_id: str) -> None:
        if self._warned_id_shape:
            return
        if looks_like_gateway_id(vpn_gateway_id) and looks_like_connection_id(vpn_connection_id):
            return
        self._warned_id_shape = True
        logger.warning(
            "IDs %r / %r do not look like vpngw-/vpnx- + 8 lowercase letters or digits; "
            "sending anyway (the server decides). Further odd IDs are not reported.",
            vpn_gateway_id,
            vpn_connection_id,
        )

    async def delete_vpn_connection(
        self,
        *,
        vpn_gateway_id: str,
        vpn_connection_id: str,
        missing_ok: bool = False,
        retry_policy: RetryPolicy | None = None,
    ) -> DeleteResult:
        """Delete one VPN tunnel; the tunnel turns ``DELETING`` and disappears later.

        ``missing_ok=True`` turns ``ResourceNotFound`` / ``RecordNotExists`` into a result with
        outcome ``already_gone`` instead of :class:`NotFoundError`. Whatever ``missing_ok`` says,
        a not-found that follows an attempt of unknown outcome (timeout, dropped connection,
        proxy error) means that attempt deleted the tunnel: the result is ``deleted`` with
        ``inferred=True``.
        """
        _check_id("vpn_gateway_id", vpn_gateway_id)
        _check_id("vpn_connection_id", vpn_connection_id)
        self._warn_id_shape(vpn_gateway_id, vpn_connection_id)
        tunnel = TunnelRef(vpn_gateway_id, vpn_connection_id)
        params = {"VpnGatewayId": vpn_gateway_id, "VpnConnectionId": vpn_connection_id}
        try:
            response, attempts = await self._call("DeleteVpnConnection", params, retry_policy)
        except NotFoundError as exc:
            if exc.after_unknown_outcome:
                logger.info(
                    "%s: not found after an attempt of unknown outcome: counted as deleted",
                    tunnel,
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
                inferred=exc.after_unknown_outcome,
                error_code=exc.code,
            )
        return DeleteResult(
            tunnel=tunnel,
            outcome=DeleteOutcome.DELETED,
            request_id=str(response.get("RequestId", "")),
            attempts=attempts,
        )

    async def describe_vpn_connections(
        self,
        *,
        vpn_connection_ids: Sequence[str] | None = None,
        filters: Mapping[str, str | Sequence[str]] | None = None,
        retry_policy: RetryPolicy | None = None,
    ) -> AsyncIterator[VpnConnection]:
        """Iterate over tunnels, paging with ``Limit=100``.

        Give ``vpn_connection_ids`` (any number: sent 100 at a time) or ``filters`` (name →
        value or values: ``vpn-gateway-id``, ``vpc-id``, ``vpn-connection-name``, ...; at most 10
        filters; one of them may have more than 5 values, it is then queried 5 at a time), not
        both. Paging is by offset: tunnels deleted while you iterate can shift later pages, so
        collect first when you delete what you list.
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
    ) -> AsyncIterator[VpnConnection]:
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
