"""The code → exception table and the retry kinds it implies."""

from __future__ import annotations

import pytest

from tcvpc import errors
from tcvpc.errors import RetryKind


@pytest.mark.parametrize(
    ("code", "cls", "kind"),
    [
        ("RequestLimitExceeded", errors.ThrottledError, RetryKind.THROTTLED),
        ("RequestLimitExceeded.IPLimitExceeded", errors.ThrottledError, RetryKind.THROTTLED),
        (
            "RequestLimitExceeded.GlobalRegionUinLimitExceeded",
            errors.ThrottledError,
            RetryKind.THROTTLED,
        ),
        ("LimitExceeded.ActionLimited", errors.ThrottledError, RetryKind.THROTTLED),
        ("LimitExceeded", errors.BadRequestError, None),
        ("InternalError", errors.ServerError, RetryKind.TRANSIENT),
        ("InternalError.ModuleError", errors.ServerError, RetryKind.TRANSIENT),
        ("ServiceUnavailable", errors.ServerError, RetryKind.TRANSIENT),
        ("ResourceInUse", errors.ResourceBusyError, RetryKind.RESOURCE_BUSY),
        ("ResourceUnavailable", errors.ResourceBusyError, RetryKind.RESOURCE_BUSY),
        ("ResourceInsufficient", errors.ResourceBusyError, RetryKind.RESOURCE_BUSY),
        (
            "UnsupportedOperation.MutexOperationTaskRunning",
            errors.GatewayBusyError,
            RetryKind.GATEWAY_BUSY,
        ),
        (
            "UnsupportedOperation.DeleteVpnConnInvalidState",
            errors.InvalidStateError,
            RetryKind.INVALID_STATE,
        ),
        ("UnsupportedOperation.InvalidState", errors.InvalidStateError, RetryKind.INVALID_STATE),
        ("ResourceNotFound", errors.NotFoundError, None),
        ("UnsupportedOperation.RecordNotExists", errors.NotFoundError, None),
        ("AuthFailure.SignatureExpire", errors.SignatureExpiredError, RetryKind.CLOCK_SKEW),
        ("AuthFailure.SignatureFailure", errors.AuthError, None),
        ("AuthFailure.TokenFailure", errors.TokenExpiredError, RetryKind.TOKEN_EXPIRED),
        ("UnauthorizedOperation", errors.AuthError, None),
        ("IpInBlacklist", errors.AuthError, None),
        ("IpNotInWhitelist", errors.AuthError, None),
        ("InvalidParameterValue.Malformed", errors.BadRequestError, None),
        ("InvalidParameter.Coexist", errors.BadRequestError, None),
        ("UnsupportedOperation", errors.BadRequestError, None),
        ("FailedOperation", errors.BadRequestError, None),
        ("InvalidAction", errors.SetupError, None),
        ("UnsupportedRegion", errors.SetupError, None),
    ],
)
def test_classification(code: str, cls: type[errors.ApiError], kind: RetryKind | None) -> None:
    exc = errors.api_error(code, "m", request_id="r", action="A")
    assert type(exc) is cls
    assert exc.retry_kind is kind
    assert isinstance(exc, errors.TcvpcError)
    assert code in str(exc)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (200, RetryKind.TRANSIENT),
        (502, RetryKind.TRANSIENT),
        (429, RetryKind.THROTTLED),
        (403, None),
    ],
)
def test_response_error_kinds(status: int, kind: RetryKind | None) -> None:
    exc = errors.ResponseError("x", action="A", status=status, excerpt="")
    assert exc.retry_kind is kind
    assert exc.outcome_unknown
