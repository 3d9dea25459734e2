"""The exception tree, and the one table that says what an API error code means.

Every exception this library raises on purpose derives from :class:`TcvpcError`::

    TcvpcError
    ├── CredentialsError            no usable credential: not found, or expired and not renewed
    │   └── CredentialsNotFoundError    no credential anywhere the default chain looked
    ├── ClientClosedError           the client (or the session it was given) is closed
    ├── EventLoopError              the client is used from another event loop than its own
    ├── QuotaBackendError           the fleet quota's Redis: unreachable, refused, not Redis
    ├── TransportError              refused, reset, DNS, TLS, proxy, timeout: no HTTP answer
    │   └── RequestTimeoutError     no complete answer within the configured timeout
    ├── ResponseError               not an API answer: non-200 (3xx included), HTML, cut JSON
    │   └── ResponseTooLargeError   a body larger than max_response_bytes (not read further)
    └── ApiError                    a well-formed API error: code, message, request_id, action
        ├── ThrottledError          RequestLimitExceeded*, LimitExceeded.ActionLimited
        ├── ServerError             InternalError*, InternalServerError, ServiceUnavailable
        ├── ResourceBusyError       ResourceInUse, ResourceUnavailable, ResourceInsufficient
        ├── GatewayBusyError        UnsupportedOperation.MutexOperationTaskRunning
        ├── InvalidStateError       UnsupportedOperation.DeleteVpnConnInvalidState, .InvalidState
        ├── NotFoundError           ResourceNotFound*, UnsupportedOperation.RecordNotExists
        ├── AuthError               AuthFailure*, UnauthorizedOperation*, IpInBlacklist, ...
        │   ├── SignatureExpiredError   AuthFailure.SignatureExpire (clock skew)
        │   └── TokenExpiredError       AuthFailure.TokenFailure (temporary key revoked/expired)
        └── BadRequestError         everything else, sub-codes of the busy codes included
            └── SetupError          wrong region, action or version: every call will fail

    TcvpcError (continued): the call could not run, whatever the server would have said
    ├── DeadlineExceededError       the call's deadline passed (limiter queueing included)
    └── QueueFullError              max_waiting calls already wait for the limiter: shed

Each class carries a :class:`RetryKind`: the retry policy decides *how* to retry from the kind, and
nothing outside this module looks at a code string to decide anything. No exception chains an
aiohttp exception (those carry the signed headers); messages hold the server's code, message and
request id, and at most a short excerpt of a body that is not an API answer.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import ClassVar

__all__ = [
    "ApiError",
    "AuthError",
    "BadRequestError",
    "ClientClosedError",
    "CredentialsNotFoundError",
    "DeadlineExceededError",
    "EventLoopError",
    "GatewayBusyError",
    "InvalidStateError",
    "NotFoundError",
    "QueueFullError",
    "RequestTimeoutError",
    "ResourceBusyError",
    "ResponseError",
    "ResponseTooLargeError",
    "RetryKind",
    "ServerError",
    "SetupError",
    "SignatureExpiredError",
    "TcvpcError",
    "ThrottledError",
    "TransportError",
    "UntrustedCertificateError",
    "api_error",
    "error_class_for",
    "is_throttle",
]


class RetryKind(enum.Enum):
    """Why an error may be retried; each kind has its own schedule in :class:`RetryPolicy`."""

    THROTTLED = "throttled"
    """Someone spends the same quota: slow down, then retry."""
    TRANSIENT = "transient"
    """A server or network fault that a short wait usually cures."""
    RESOURCE_BUSY = "resource_busy"
    """The resource is in use; bounded retries."""
    GATEWAY_BUSY = "gateway_busy"
    """A task holds the gateway's mutex for seconds: a slower schedule."""
    INVALID_STATE = "invalid_state"
    """The tunnel is mid-task (creating, updating, deleting): slower still, bounded."""
    CLOCK_SKEW = "clock_skew"
    """Our clock is off: re-sign once with the offset the server's Date header gave."""
    TOKEN_EXPIRED = "token_expired"  # noqa: S105 (a kind name)
    """The temporary key's token was refused: refresh the credential once, re-sign once."""


class TcvpcError(Exception):
    """Base of every exception tcvpc raises on purpose."""

    retry_kind: ClassVar[RetryKind | None] = None
    answered: ClassVar[bool] = False
    """Whether an HTTP answer came back for the attempt (an API error or a foreign response):
    then the attempt's duration is a round trip, which the rate limiter learns from."""
    outcome_unknown: bool = False
    """True when the request may have been executed although we saw no answer."""
    attempts: int = 1
    """How many attempts the call made before this error ended it (set by the client)."""
    after_unknown_outcome: bool = False
    """True when an earlier attempt of the same call had an unknown outcome (set by the client):
    the request may have taken effect although this error says otherwise."""
    retry_budget_exhausted: bool = False
    """True when a retry was due but the client's retry budget could not pay for it."""

    @property
    def may_have_taken_effect(self) -> bool:
        """Whether the failed call may have acted anyway: its last attempt or an earlier one
        ended with an unknown outcome (a timeout, a dropped connection, a proxy's error)."""
        return self.outcome_unknown or self.after_unknown_outcome


class CredentialsError(TcvpcError):
    """No usable credential: none found, or a temporary one expired and could not be renewed.

    Raised before anything is signed, so it is never mistaken for a signature failure.
    """


class CredentialsNotFoundError(CredentialsError):
    """No credential in any place the default chain looks; the message lists them all."""


class ClientClosedError(TcvpcError, RuntimeError):
    """The client was used after ``aclose()``, or the ``aiohttp.ClientSession`` it was given is
    closed. Nothing was sent."""


class EventLoopError(TcvpcError, RuntimeError):
    """The client's connections belong to another event loop (a client made at import time,
    per-test loops, threads). Create the client inside the loop that uses it. Nothing was sent."""


class QuotaBackendError(TcvpcError):
    """The Redis holding a fleet's shared quota cannot be used (the URL shown has no password)."""


class TransportError(TcvpcError):
    """The request did not get an HTTP answer: connection refused or reset, DNS, TLS, proxy,
    timeout.

    ``outcome_unknown`` is false only when the connection failed before anything was sent.
    The aiohttp exception is never chained: it carries the request's signed headers.
    """

    retry_kind = RetryKind.TRANSIENT

    def __init__(self, message: str, *, action: str, outcome_unknown: bool) -> None:
        super().__init__(message)
        self.action = action
        self.outcome_unknown = outcome_unknown


class UntrustedCertificateError(TransportError):
    """The server's TLS certificate is not trusted (a private CA, a wrong host): nothing sent.

    Its own class so that a command line can name its own option (``--ca-bundle``) instead of
    the library's argument; ``host``, ``port`` and ``reason`` say which certificate and why.
    """

    def __init__(self, message: str, *, action: str, host: str, port: int | None, reason: str):
        super().__init__(message, action=action, outcome_unknown=False)
        self.host = host
        self.port = port
        self.reason = reason


class RequestTimeoutError(TransportError):
    """No complete answer within the configured timeout; the server may have acted."""


class ResponseError(TcvpcError):
    """An answer that is not an API envelope: a proxy's error page, a cut body, foreign JSON.

    The API answers with HTTP 200 and JSON, errors included, so this comes from something in
    between; the request may or may not have reached the API (``outcome_unknown``).
    """

    answered = True

    def __init__(self, message: str, *, action: str, status: int, excerpt: str) -> None:
        super().__init__(f"{message} (action {action}, HTTP {status}): {excerpt!r}")
        self.action = action
        self.status = status
        self.excerpt = excerpt
        self.outcome_unknown = True

    @property
    def retry_kind(self) -> RetryKind | None:  # type: ignore[override]
        """5xx, 429 and a 200 with a broken body are transient; 3xx and other 4xx are not.

        A 3xx is never followed nor retried: the API does not redirect, so whatever answered
        is not the API (a captive portal, a misconfigured gateway, an attacker) and asking it
        again will not change that.
        """
        if self.status == 429:
            return RetryKind.THROTTLED
        if self.status >= 500 or self.status == 200:
            return RetryKind.TRANSIENT
        return None


class ResponseTooLargeError(ResponseError):
    """The answer's body exceeds ``max_response_bytes``; the rest was not read.

    Not retried: the API's answers are kilobytes, so this is not the API, and reading it again
    costs as much again.
    """

    @property
    def retry_kind(self) -> RetryKind | None:  # type: ignore[override]
        return None


class ApiError(TcvpcError):
    """An error the API itself returned (HTTP 200, ``Response.Error``)."""

    answered = True

    def __init__(
        self,
        code: str,
        message: str,
        *,
        request_id: str,
        action: str,
        server_date: datetime | None = None,
    ) -> None:
        super().__init__(f"{code}: {message} (action {action}, request id {request_id})")
        self.code = code
        self.message = message
        self.request_id = request_id
        self.action = action
        self.server_date = server_date
        """The server's clock from its ``Date`` header, used to correct clock skew."""


class ThrottledError(ApiError):
    retry_kind = RetryKind.THROTTLED


class ServerError(ApiError):
    retry_kind = RetryKind.TRANSIENT


class ResourceBusyError(ApiError):
    retry_kind = RetryKind.RESOURCE_BUSY


class GatewayBusyError(ApiError):
    retry_kind = RetryKind.GATEWAY_BUSY


class InvalidStateError(ApiError):
    retry_kind = RetryKind.INVALID_STATE


class NotFoundError(ApiError):
    """The resource does not exist; for a delete that means it is already gone."""


class AuthError(ApiError):
    """Credentials or permissions are wrong; retrying cannot help."""


class SignatureExpiredError(AuthError):
    retry_kind = RetryKind.CLOCK_SKEW


class TokenExpiredError(AuthError):
    """The temporary key's token was revoked or has expired: one forced refresh, one retry."""

    retry_kind = RetryKind.TOKEN_EXPIRED


class BadRequestError(ApiError):
    """The request is wrong (parameters, action, version, region, quota): never retried."""


class SetupError(BadRequestError):
    """The setup is wrong (region, action, version, product, protocol): every call would fail.

    A bulk job stops at the first one instead of failing each item with it.
    """


_EXACT: dict[str, type[ApiError]] = {
    "LimitExceeded.ActionLimited": ThrottledError,
    "InternalServerError": ServerError,
    "ServiceUnavailable": ServerError,
    # Only the bare busy codes are retried: their sub-codes name lasting conditions
    # (ResourceInUse.Address, ResourceInUse.NatUsedByCFW, ResourceInsufficient.CidrBlock,
    # ResourceUnavailable.ServiceWhiteListNotAdded, ...) that no wait will change.
    "ResourceInUse": ResourceBusyError,
    "ResourceUnavailable": ResourceBusyError,
    "ResourceInsufficient": ResourceBusyError,
    "UnsupportedOperation.MutexOperationTaskRunning": GatewayBusyError,
    "UnsupportedOperation.DeleteVpnConnInvalidState": InvalidStateError,
    "UnsupportedOperation.InvalidState": InvalidStateError,
    "UnsupportedOperation.RecordNotExists": NotFoundError,
    "AuthFailure.SignatureExpire": SignatureExpiredError,
    "AuthFailure.TokenFailure": TokenExpiredError,
    "IpInBlacklist": AuthError,
    "IpNotInWhitelist": AuthError,
    "UnsupportedRegion": SetupError,
    "InvalidAction": SetupError,
    "NoSuchVersion": SetupError,
    "NoSuchProduct": SetupError,
    "ActionOffline": SetupError,
    "UnsupportedProtocol": SetupError,
}

# Families whose every sub-code means the same (``InternalError.ModuleError``,
# ``RequestLimitExceeded.UinLimitExceeded``, ``AuthFailure.TokenFailure``): the family decides.
_FAMILY: dict[str, type[ApiError]] = {
    "RequestLimitExceeded": ThrottledError,
    "InternalError": ServerError,
    "AuthFailure": AuthError,
    "UnauthorizedOperation": AuthError,
    "ResourceNotFound": NotFoundError,
}


def error_class_for(code: str) -> type[ApiError]:
    """The exception class for an API error code; unknown codes are bad requests (not retried)."""
    exact = _EXACT.get(code)
    if exact is not None:
        return exact
    return _FAMILY.get(code.split(".", 1)[0], BadRequestError)


def api_error(
    code: str,
    message: str,
    *,
    request_id: str,
    action: str,
    server_date: datetime | None = None,
) -> ApiError:
    """Build the right :class:`ApiError` subclass for ``code``."""
    cls = error_class_for(code)
    return cls(code, message, request_id=request_id, action=action, server_date=server_date)


def is_throttle(exc: BaseException) -> bool:
    """True for every answer that means "slow down": throttle codes and HTTP 429 alike."""
    return isinstance(exc, TcvpcError) and exc.retry_kind is RetryKind.THROTTLED


class DeadlineExceededError(TcvpcError, TimeoutError):
    """The call's deadline passed: while it waited for the limiter, or while an attempt ran.

    ``sent`` says whether any attempt reached the network; when the deadline cut an attempt
    short, ``outcome_unknown`` is true (the server may have acted). Never retried.
    """

    def __init__(self, message: str, *, action: str, deadline: float, sent: bool) -> None:
        super().__init__(message)
        self.action = action
        self.deadline = deadline
        self.sent = sent


class QueueFullError(TcvpcError):
    """``max_waiting`` calls already wait for the limiter: this one was shed and sent nothing."""

    def __init__(self, message: str, *, action: str, max_waiting: int) -> None:
        super().__init__(message)
        self.action = action
        self.max_waiting = max_waiting
