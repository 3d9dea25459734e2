"""The emulator's error codes: which can be injected into which action, and their Chinese text.

Injectable codes are the ones Tencent documents for the two actions (or for every VPC action),
so a client's handling of each can be tested although the emulator's own rules never produce
them. Chinese messages exist for the common codes because the official clients send
``X-TC-Language: zh-CN`` by default; their wording is ours, close to the documentation's, and
no client should match on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = [
    "ACTIONS",
    "INJECTABLE",
    "LANGUAGES",
    "injected_message",
    "localized",
]

ACTIONS = ("DeleteVpnConnection", "DescribeVpnConnections")
_DELETE = frozenset({"DeleteVpnConnection"})
_DESCRIBE = frozenset({"DescribeVpnConnections"})
_ALL = frozenset(ACTIONS)

#: ``X-TC-Language`` values the cloud documents; anything else is answered in ``en-US``.
LANGUAGES = ("en-US", "zh-CN")

#: code -> (actions it may be injected into, the English message of the injected answer).
INJECTABLE: Mapping[str, tuple[frozenset[str], str]] = MappingProxyType(
    {
        # DeleteVpnConnection's documented codes
        "UnsupportedOperation.RecordNotExists": (_DELETE, "The record does not exist."),
        "UnsupportedOperation.InvalidState": (_DELETE, "The resource state is invalid."),
        "UnsupportedOperation.DeleteVpnConnInvalidState": (
            _DELETE,
            "The VPN connection is creating, updating or deleting: it cannot be deleted now.",
        ),
        "UnsupportedOperation.MutexOperationTaskRunning": (
            _DELETE,
            "A mutually exclusive task is running on the VPN gateway.",
        ),
        # DescribeVpnConnections' documented codes
        "InternalError.ModuleError": (_DESCRIBE, "An internal module error has occurred."),
        "UnsupportedOperation": (_DESCRIBE, "The operation is not supported."),
        # both actions
        "ResourceNotFound": (_ALL, "The resource does not exist."),
        "LimitExceeded.ActionLimited": (_ALL, "The action's request rate limit is exceeded."),
        "RequestLimitExceeded": (_ALL, "Your current request times exceeds the limit."),
        "InternalError": (_ALL, "An internal error has occurred. Retry later."),
        "InternalServerError": (_ALL, "An internal server error has occurred."),
        "ServiceUnavailable": (_ALL, "Service is unavailable now. Retry later."),
    }
)

_ZH: Mapping[str, str] = MappingProxyType(
    {
        "AuthFailure.InvalidAuthorization": "请求头部的 Authorization 不符合腾讯云标准。",
        "AuthFailure.SecretIdNotFound": "密钥不存在。请检查密钥是否已被删除、禁用或填写错误。",
        "AuthFailure.SignatureExpire": (
            "签名过期。Timestamp 和服务器时间相差不得超过五分钟，请检查本地时间是否和标准时间同步。"
        ),
        "AuthFailure.SignatureFailure": "签名错误。请对照签名方法文档检查签名计算过程。",
        "InternalError": "内部错误。",
        "InternalError.ModuleError": "内部模块错误。",
        "InternalServerError": "内部服务错误。",
        "InvalidAction": "接口不存在。",
        "InvalidParameter": "参数错误（包括参数格式、类型等错误）。",
        "InvalidParameter.Coexist": "参数不支持同时指定。",
        "InvalidParameter.FilterInvalidKey": "指定过滤条件不存在。",
        "InvalidParameterValue.LimitExceeded": "参数值超出限制。",
        "InvalidParameterValue.Malformed": "入参格式不合法。",
        "InvalidParameterValue.Range": "参数值不在指定范围。",
        "LimitExceeded.ActionLimited": "接口请求次数超过频率限制。",
        "MissingParameter": "缺少参数错误，必传参数没填。",
        "NoSuchVersion": "接口版本不存在。",
        "RequestLimitExceeded": "请求的次数超过了频率限制。",
        "ResourceNotFound": "资源不存在。",
        "ServiceUnavailable": "当前服务暂时不可用。",
        "UnknownParameter": "未知参数错误，用户多传未定义的参数会导致错误。",
        "UnsupportedOperation": "操作不支持。",
        "UnsupportedOperation.DeleteVpnConnInvalidState": "VPN 通道状态不支持删除操作。",
        "UnsupportedOperation.InvalidState": "资源状态不合法。",
        "UnsupportedOperation.MutexOperationTaskRunning": "资源被其他任务锁定，请稍后重试。",
        "UnsupportedOperation.RecordNotExists": "记录不存在。",
        "UnsupportedProtocol": "HTTP(S) 请求协议错误，只支持 GET 和 POST 请求。",
        "UnsupportedRegion": "接口不支持所传地域。",
    }
)


def injected_message(code: str) -> str:
    """The English message of an injected ``code`` (which must be in :data:`INJECTABLE`)."""
    return INJECTABLE[code][1]


def localized(code: str, message: str, language: str | None) -> str:
    """``message`` in ``language``: the Chinese text of ``code`` for ``zh-CN`` when we have one."""
    if language == "zh-CN":
        return _ZH.get(code, message)
    return message
