"""STS (service ``sts``, version 2018-08-13): temporary keys from a role, by key or by OIDC token.

* :class:`StsAssumeRoleProvider`: ``AssumeRole``, TC3-signed with long-lived keys (the same
  signer as the VPC calls, service ``sts``).
* :class:`TkeOidcProvider`: ``AssumeRoleWithWebIdentity``, as a TKE pod does it: the request is
  not signed (``Authorization: SKIP``, as the official SDKs send it), the pod's OIDC token is the
  proof. The token file is re-read at every refresh, since the kubelet rotates it.

Both follow the client's endpoint choice through :meth:`Endpoint.for_service` (the default
``vpc.tencentcloudapi.com`` becomes ``sts.tencentcloudapi.com``, ``vpc.internal...`` becomes
``sts.internal...``, the loopback emulator stays itself). Bodies of STS answers are never quoted
in errors: a successful one carries a secret key.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tcvpc import signing
from tcvpc._version import USER_AGENT
from tcvpc.credentials import Credential, CredentialProvider, StaticProvider
from tcvpc.endpoint import Endpoint, parse_endpoint
from tcvpc.errors import CredentialsError, CredentialsNotFoundError, ResponseError, api_error
from tcvpc.refreshing import RefreshingProvider, TemporaryCredential
from tcvpc.transport import AiohttpTransport, AsyncTransport, Request

__all__ = [
    "ENV_TKE",
    "STS_SERVICE",
    "STS_VERSION",
    "StsAssumeRoleProvider",
    "TkeOidcProvider",
    "call_sts",
    "sts_endpoint",
]

STS_SERVICE = "sts"
STS_VERSION = "2018-08-13"
DEFAULT_STS_REGION = "ap-guangzhou"
DEFAULT_DURATION = 7200
MAX_DURATION = 43200
ENV_TKE = ("TKE_REGION", "TKE_PROVIDER_ID", "TKE_WEB_IDENTITY_TOKEN_FILE", "TKE_ROLE_ARN")
_CONTENT_TYPE = "application/json"
_MAX_ANSWER = 256 * 1024
_MAX_TOKEN_FILE = 64 * 1024
_SESSION_NAME = re.compile(r"^[\w+=,.@-]{2,128}$")


def sts_endpoint(endpoint: str | Endpoint | None) -> Endpoint:
    """The STS endpoint matching a VPC endpoint choice (a URL, a host or an ``Endpoint``)."""
    chosen = endpoint if isinstance(endpoint, Endpoint) else parse_endpoint(endpoint)
    return chosen.for_service(STS_SERVICE)


def _default_transport() -> AiohttpTransport:
    return AiohttpTransport(max_connections=2, max_response_bytes=_MAX_ANSWER)


def _check_session(name: str) -> str:
    if not isinstance(name, str) or not _SESSION_NAME.match(name):
        raise ValueError("session name must be 2-128 letters, digits or +=,.@_-")
    return name


def _check_duration(seconds: int) -> int:
    if isinstance(seconds, bool) or not isinstance(seconds, int) or not 0 < seconds <= MAX_DURATION:
        raise ValueError(f"duration_seconds must be an int in [1, {MAX_DURATION}]")
    return seconds


async def call_sts(
    transport: AsyncTransport,
    endpoint: Endpoint,
    *,
    region: str,
    action: str,
    params: Mapping[str, Any],
    credential: Credential | None,
    request_timeout: float = 10.0,
) -> TemporaryCredential:
    """One STS call that issues a temporary key; ``credential=None`` sends it unsigned."""
    body = json.dumps(params, separators=(",", ":")).encode("utf-8")
    timestamp = int(time.time())
    headers = {
        "Host": endpoint.host_header,
        "Content-Type": _CONTENT_TYPE,
        "X-TC-Action": action,
        "X-TC-Version": STS_VERSION,
        "X-TC-Timestamp": str(timestamp),
        "X-TC-Region": region,
        "User-Agent": USER_AGENT,
        "Authorization": "SKIP",
    }
    if credential is not None:
        headers["Authorization"] = signing.authorization(
            secret_id=credential.secret_id,
            secret_key=credential.secret_key,
            service=STS_SERVICE,
            host=endpoint.host_header,
            content_type=_CONTENT_TYPE,
            payload=body,
            timestamp=timestamp,
        )
        if credential.token:
            headers["X-TC-Token"] = credential.token
    answer = await transport.send(
        Request("POST", endpoint.url, headers, body, timeout=request_timeout, label=action)
    )
    if answer.status != 200:
        raise ResponseError(
            "unexpected HTTP status", action=action, status=answer.status, excerpt=""
        )
    try:
        document = json.loads(answer.body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ResponseError("body is not JSON", action=action, status=200, excerpt="") from None
    response = document.get("Response") if isinstance(document, dict) else None
    if not isinstance(response, dict):
        raise ResponseError("JSON without a Response object", action=action, status=200, excerpt="")
    error = response.get("Error")
    request_id = response.get("RequestId")
    if error is not None:
        if not isinstance(error, dict) or not isinstance(error.get("Code"), str):
            raise ResponseError("malformed Error object", action=action, status=200, excerpt="")
        raise api_error(
            error["Code"],
            str(error.get("Message", ""))[:500],
            request_id=request_id if isinstance(request_id, str) else "",
            action=action,
        )
    creds = response.get("Credentials")
    expired = response.get("ExpiredTime")
    if not isinstance(creds, dict):
        raise CredentialsError(f"{action}: the answer has no Credentials object")
    values = [creds.get(name) for name in ("TmpSecretId", "TmpSecretKey", "Token")]
    if not all(isinstance(v, str) and v.strip() for v in values):
        raise CredentialsError(f"{action}: the answer's Credentials are incomplete")
    if isinstance(expired, bool) or not isinstance(expired, int | float) or expired <= 0:
        raise CredentialsError(f"{action}: the answer has no ExpiredTime (Unix seconds)")
    secret_id, secret_key, token = (str(v).strip() for v in values)
    return TemporaryCredential(Credential(secret_id, secret_key, token), float(expired))


class StsAssumeRoleProvider(RefreshingProvider):
    """A role's temporary keys, obtained with ``AssumeRole`` from long-lived keys.

    ``credential``: the long-lived key (or a provider of it) that may assume ``role_arn``.
    ``endpoint``: the VPC endpoint the client uses (STS follows it) or ``None`` for the default.
    ``region`` defaults to ``TENCENTCLOUD_REGION``, else ``ap-guangzhou``.
    """

    source = "STS AssumeRole"

    def __init__(
        self,
        credential: Credential | CredentialProvider,
        role_arn: str,
        session_name: str,
        *,
        duration_seconds: int = DEFAULT_DURATION,
        region: str | None = None,
        endpoint: str | Endpoint | None = None,
        transport: AsyncTransport | None = None,
        timeout: float = 10.0,
        **refresh_options: Any,
    ) -> None:
        super().__init__(**refresh_options)
        if not isinstance(role_arn, str) or not role_arn.strip():
            raise ValueError("role_arn must be a non-empty string")
        self._base: CredentialProvider = (
            StaticProvider(credential) if isinstance(credential, Credential) else credential
        )
        self.role_arn = role_arn.strip()
        self.session_name = _check_session(session_name)
        self.duration_seconds = _check_duration(duration_seconds)
        self.region = region or os.environ.get("TENCENTCLOUD_REGION", "") or DEFAULT_STS_REGION
        self.endpoint = sts_endpoint(endpoint)
        self._timeout = timeout
        self._owns_transport = transport is None
        self._transport: AsyncTransport = transport or _default_transport()

    async def _close_resources(self) -> None:
        if self._owns_transport:
            await self._transport.aclose()

    async def _fetch(self) -> TemporaryCredential:
        return await call_sts(
            self._transport,
            self.endpoint,
            region=self.region,
            action="AssumeRole",
            params={
                "RoleArn": self.role_arn,
                "RoleSessionName": self.session_name,
                "DurationSeconds": self.duration_seconds,
            },
            credential=await self._base.get(),
            request_timeout=self._timeout,
        )


def _read_token(path: Path) -> str:
    with path.open("rb") as handle:
        raw = handle.read(_MAX_TOKEN_FILE + 1)
    if len(raw) > _MAX_TOKEN_FILE:
        raise CredentialsError(f"TKE OIDC: token file {path} exceeds {_MAX_TOKEN_FILE} bytes")
    token = raw.decode("utf-8", errors="strict").strip()
    if not token:
        raise CredentialsError(f"TKE OIDC: token file {path} is empty")
    return token


class TkeOidcProvider(RefreshingProvider):
    """A TKE pod's role keys: ``AssumeRoleWithWebIdentity`` with the pod's OIDC token.

    :meth:`from_environment` reads ``TKE_REGION``, ``TKE_PROVIDER_ID``,
    ``TKE_WEB_IDENTITY_TOKEN_FILE`` and ``TKE_ROLE_ARN`` (what TKE injects into the pod).
    """

    source = "TKE OIDC"

    def __init__(
        self,
        *,
        region: str,
        provider_id: str,
        role_arn: str,
        token_file: str | Path,
        session_name: str | None = None,
        duration_seconds: int = DEFAULT_DURATION,
        endpoint: str | Endpoint | None = None,
        transport: AsyncTransport | None = None,
        timeout: float = 10.0,
        **refresh_options: Any,
    ) -> None:
        super().__init__(**refresh_options)
        required = {"region": region, "provider_id": provider_id, "role_arn": role_arn}
        for name, value in required.items():
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{name} must be a non-empty string")
        self.region = region.strip()
        self.provider_id = provider_id.strip()
        self.role_arn = role_arn.strip()
        self.token_file = Path(token_file)
        self.session_name = _check_session(session_name or f"tcvpc-{int(time.time() * 1e6)}")
        self.duration_seconds = _check_duration(duration_seconds)
        self.endpoint = sts_endpoint(endpoint)
        self._timeout = timeout
        self._owns_transport = transport is None
        self._transport: AsyncTransport = transport or _default_transport()

    @classmethod
    def from_environment(
        cls, environ: Mapping[str, str] | None = None, **options: Any
    ) -> TkeOidcProvider | None:
        """The provider TKE's variables describe; ``None`` when none is set.

        Some set and some missing is a configuration error: it names the missing ones.
        """
        env = os.environ if environ is None else environ
        values = {name: env.get(name, "").strip() for name in ENV_TKE}
        if not any(values.values()):
            return None
        missing = [name for name, value in values.items() if not value]
        if missing:
            raise CredentialsNotFoundError(
                f"TKE OIDC: {', '.join(missing)} not set (the others are: a pod with an OIDC "
                "role gets all four)"
            )
        return cls(
            region=values["TKE_REGION"],
            provider_id=values["TKE_PROVIDER_ID"],
            token_file=values["TKE_WEB_IDENTITY_TOKEN_FILE"],
            role_arn=values["TKE_ROLE_ARN"],
            **options,
        )

    async def _close_resources(self) -> None:
        if self._owns_transport:
            await self._transport.aclose()

    async def _read_token(self) -> str:
        # A thread, not a plain read: the token usually sits on a local tmpfs and reads in
        # microseconds, but a stuck volume must not freeze every task. Once per refresh, so the
        # thread hop costs nothing next to the STS round trip.
        try:
            return await asyncio.to_thread(_read_token, self.token_file)
        except FileNotFoundError:
            raise CredentialsNotFoundError(
                f"TKE OIDC: token file {self.token_file} does not exist"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise CredentialsError(
                f"TKE OIDC: cannot read token file {self.token_file}: {type(exc).__name__}"
            ) from None

    async def _fetch(self) -> TemporaryCredential:
        token = await self._read_token()
        return await call_sts(
            self._transport,
            self.endpoint,
            region=self.region,
            action="AssumeRoleWithWebIdentity",
            params={
                "ProviderId": self.provider_id,
                "WebIdentityToken": token,
                "RoleArn": self.role_arn,
                "RoleSessionName": self.session_name,
                "DurationSeconds": self.duration_seconds,
            },
            credential=None,
            request_timeout=self._timeout,
        )
