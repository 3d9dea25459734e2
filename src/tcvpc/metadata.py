"""The CVM instance role: temporary keys from the instance metadata service.

``GET {metadata}cam/security-credentials/`` names the role attached to the instance;
``GET {metadata}cam/security-credentials/{role}`` answers ``TmpSecretId``, ``TmpSecretKey``,
``Token``, ``ExpiredTime`` (Unix seconds), ``Expiration`` and ``Code``. The metadata service is
plain HTTP on a link-local address by Tencent's design (it never leaves the host), so plain http
is accepted for it and for loopback (tests, the emulator), and nothing else.

The default transport ignores ``HTTP(S)_PROXY``: the answer carries a secret key, and a corporate
proxy must not see it (nor could it reach the instance's metadata service anyway).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import re
from collections.abc import Mapping
from typing import Any

from yarl import URL

from tcvpc.credentials import Credential
from tcvpc.endpoint import is_loopback
from tcvpc.errors import CredentialsError, CredentialsNotFoundError, ResponseError
from tcvpc.refreshing import RefreshingProvider, TemporaryCredential
from tcvpc.transport import AiohttpTransport, AsyncTransport, Request

__all__ = [
    "DEFAULT_METADATA_URL",
    "ENV_METADATA_URL",
    "CvmRoleProvider",
    "resolve_metadata_url",
]

logger = logging.getLogger("tcvpc.credentials")

DEFAULT_METADATA_URL = "http://metadata.tencentyun.com/latest/meta-data/"
ENV_METADATA_URL = "TCVPC_METADATA_URL"
METADATA_HOST = "metadata.tencentyun.com"
_ROLES_PATH = "cam/security-credentials/"
_MAX_ANSWER = 64 * 1024
"""A role name or one credential document: a few hundred bytes. Anything larger is not one."""
_ROLE_NAME = re.compile(r"^[\w+=,.@-]{1,128}$")
"""CAM role names: letters, digits and ``+=,.@_-``; checked before it goes into a URL path."""


def _is_link_local(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_link_local
    except ValueError:
        return False


def resolve_metadata_url(value: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The metadata base URL: ``value``, else ``TCVPC_METADATA_URL``, else Tencent's.

    Raises ``ValueError`` for a URL that is not http(s), carries credentials, a query or a
    fragment, or uses plain http to a host that is neither the metadata service nor loopback.
    """
    env = os.environ if environ is None else environ
    raw = (value or env.get(ENV_METADATA_URL, "") or DEFAULT_METADATA_URL).strip()
    try:
        url = URL(raw)
    except (TypeError, ValueError):
        raise ValueError(f"metadata URL {raw!r} is not a valid URL") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"metadata URL {raw!r} must be an http(s) URL with a host")
    if url.user or url.password or url.query_string or url.fragment:
        raise ValueError(f"metadata URL {raw!r} must not carry credentials, a query or a fragment")
    host = url.host.lower()
    if url.scheme == "http" and not (
        host == METADATA_HOST or is_loopback(host) or _is_link_local(host)
    ):
        raise ValueError(
            f"metadata URL {raw!r}: plain http only to {METADATA_HOST}, a link-local or a "
            "loopback address (the answer carries a secret key)"
        )
    text = str(url)
    return text if text.endswith("/") else text + "/"


def parse_credential_document(body: bytes, source: str) -> TemporaryCredential:
    """Read a CVM role answer. Errors name the problem, never a value (values are secrets)."""
    try:
        document: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise CredentialsError(f"{source}: the answer is not JSON") from None
    if not isinstance(document, dict):
        raise CredentialsError(f"{source}: the answer is not a JSON object")
    code = document.get("Code")
    if code != "Success":
        shown = code[:40] if isinstance(code, str) else type(code).__name__
        raise CredentialsError(f"{source}: the answer's Code is {shown!r}, not 'Success'")
    fields = {}
    for name in ("TmpSecretId", "TmpSecretKey", "Token"):
        value = document.get(name)
        if not isinstance(value, str) or not value.strip():
            raise CredentialsError(f"{source}: the answer has no {name} string")
        fields[name] = value.strip()
    expired = document.get("ExpiredTime")
    if isinstance(expired, bool) or not isinstance(expired, int | float) or expired <= 0:
        raise CredentialsError(f"{source}: the answer has no ExpiredTime (Unix seconds)")
    credential = Credential(fields["TmpSecretId"], fields["TmpSecretKey"], fields["Token"])
    return TemporaryCredential(credential, float(expired))


class CvmRoleProvider(RefreshingProvider):
    """Temporary keys of the role attached to this CVM instance, refreshed ahead of expiry.

    ``metadata_url`` (else ``TCVPC_METADATA_URL``, else Tencent's) is the metadata base URL;
    ``role`` skips asking the metadata service for the role's name. ``transport`` defaults to an
    :class:`AiohttpTransport` that ignores proxies; the provider closes only one it made.
    Refresh options: see :class:`~tcvpc.refreshing.RefreshingProvider`.
    """

    source = "CVM instance role"

    def __init__(
        self,
        *,
        metadata_url: str | None = None,
        role: str | None = None,
        transport: AsyncTransport | None = None,
        timeout: float = 5.0,
        **refresh_options: Any,
    ) -> None:
        super().__init__(**refresh_options)
        if not timeout > 0:
            raise ValueError("timeout must be > 0 seconds")
        if role is not None and not _ROLE_NAME.match(role):
            raise ValueError("role must be a CAM role name (letters, digits and +=,.@_-)")
        self.metadata_url = resolve_metadata_url(metadata_url)
        self._role = role
        self._timeout = timeout
        self._owns_transport = transport is None
        self._transport: AsyncTransport = transport or AiohttpTransport(
            max_connections=2, max_response_bytes=_MAX_ANSWER, trust_env=False
        )
        self.metadata_fetches = 0
        """Requests for the credential document (one per successful or failed attempt)."""

    async def _close_resources(self) -> None:
        if self._owns_transport:
            await self._transport.aclose()

    async def _get(self, path: str, seconds: float) -> bytes:
        url = self.metadata_url + path
        try:
            answer = await self._transport.send(
                Request("GET", url, {}, timeout=seconds, label="metadata")
            )
        except ResponseError as exc:  # the transport's size cap
            raise CredentialsError(f"{self.source}: {url}: {exc.args[0]}") from None
        if answer.status == 404:
            raise CredentialsNotFoundError(f"{self.source}: {url} answers 404")
        if answer.status != 200:
            raise ResponseError(
                f"{self.source}: unexpected status from {url}",
                action="metadata",
                status=answer.status,
                excerpt="",  # a metadata body may hold a secret key: never quoted
            )
        return answer.body

    async def role_name(self, *, probe_seconds: float | None = None) -> str:
        """The role attached to the instance (asked once, then remembered).

        ``probe_seconds`` bounds the question (the default chain's short probe).
        """
        if self._role is None:
            body = await self._get(_ROLES_PATH, probe_seconds or self._timeout)
            lines = body.decode("utf-8", errors="replace").split()
            if not lines:
                raise CredentialsNotFoundError(f"{self.source}: no role attached to the instance")
            if not _ROLE_NAME.match(lines[0]):
                raise CredentialsError(f"{self.source}: the metadata names an invalid role name")
            self._role = lines[0]
        return self._role

    async def _fetch(self) -> TemporaryCredential:
        role = await self.role_name()
        self.metadata_fetches += 1
        body = await self._get(_ROLES_PATH + role, self._timeout)
        return parse_credential_document(body, f"{self.source} {role!r}")
