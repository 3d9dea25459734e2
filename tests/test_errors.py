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
        ("InternalError.CreateCkafkaRouteError", errors.ServerError, RetryKind.TRANSIENT),
        ("InternalServerError", errors.ServerError, RetryKind.TRANSIENT),
        ("ServiceUnavailable", errors.ServerError, RetryKind.TRANSIENT),
        ("ResourceInUse", errors.ResourceBusyError, RetryKind.RESOURCE_BUSY),
        ("ResourceUnavailable", errors.ResourceBusyError, RetryKind.RESOURCE_BUSY),
        ("ResourceInsufficient", errors.ResourceBusyError, RetryKind.RESOURCE_BUSY),
        ("ResourceInUse.Address", errors.BadRequestError, None),
        ("ResourceInUse.NatUsedByCFW", errors.BadRequestError, None),
        ("ResourceUnavailable.ServiceWhiteListNotAdded", errors.BadRequestError, None),
        ("ResourceInsufficient.CidrBlock", errors.BadRequestError, None),
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
        (301, None),
        (307, None),
    ],
)
def test_response_error_kinds(status: int, kind: RetryKind | None) -> None:
    exc = errors.ResponseError("x", action="A", status=status, excerpt="")
    assert exc.retry_kind is kind
    assert exc.outcome_unknown


def test_oversized_answer_is_a_response_error_not_retried() -> None:
    exc = errors.ResponseTooLargeError("big", action="A", status=200, excerpt="")
    assert isinstance(exc, errors.ResponseError)
    assert exc.retry_kind is None


def test_throttle_is_decided_by_kind() -> None:
    assert errors.is_throttle(
        errors.api_error("RequestLimitExceeded", "", request_id="", action="")
    )
    assert errors.is_throttle(errors.ResponseError("x", action="A", status=429, excerpt=""))
    assert not errors.is_throttle(errors.ResponseError("x", action="A", status=503, excerpt=""))
    assert not errors.is_throttle(ValueError("RequestLimitExceeded"))


def _sdk_vpc_codes() -> list[str]:
    """Every code the official SDK documents for VPC (a test oracle, dev extra)."""
    from tencentcloud.vpc.v20170312 import errorcodes as codes

    return [v for k, v in vars(codes).items() if k.isupper() and isinstance(v, str)]


def test_only_documented_transient_codes_are_retried() -> None:
    """Against the SDK's list: what is retried is listed on purpose, sub-codes of busy are not."""
    retried = {
        code: kind
        for code in _sdk_vpc_codes()
        if (kind := errors.api_error(code, "", request_id="", action="").retry_kind) is not None
    }
    assert len(_sdk_vpc_codes()) > 300
    assert retried == {
        "InternalError": RetryKind.TRANSIENT,
        "InternalError.CreateCkafkaRouteError": RetryKind.TRANSIENT,
        "InternalError.ModuleError": RetryKind.TRANSIENT,
        "InternalServerError": RetryKind.TRANSIENT,
        "LimitExceeded.ActionLimited": RetryKind.THROTTLED,
        "RequestLimitExceeded": RetryKind.THROTTLED,
        "ResourceInUse": RetryKind.RESOURCE_BUSY,
        "ResourceInsufficient": RetryKind.RESOURCE_BUSY,
        "ResourceUnavailable": RetryKind.RESOURCE_BUSY,
        "UnsupportedOperation.DeleteVpnConnInvalidState": RetryKind.INVALID_STATE,
        "UnsupportedOperation.InvalidState": RetryKind.INVALID_STATE,
        "UnsupportedOperation.MutexOperationTaskRunning": RetryKind.GATEWAY_BUSY,
    }
