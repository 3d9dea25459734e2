"""Temporary keys in the emulator: STS's two actions and the ``X-TC-Token`` check.

:class:`TokenAuthority` issues temporary keys (for STS and the CVM metadata endpoint alike),
registers them with the VPC signature verifier, and checks every VPC request signed with one:
no ``X-TC-Token``, a token that is not the key's, a revoked token or a key past its expiry gets
``AuthFailure.TokenFailure``, as the real service answers. Expiry is the whole second it announces
in ``ExpiredTime``, so the client and the emulator agree on it exactly.

:class:`StsService` answers ``AssumeRole`` (TC3-signed with the emulator's long-lived key,
service ``sts``) and ``AssumeRoleWithWebIdentity`` (unsigned: ``Authorization: SKIP``, as the
official SDKs send it; any non-empty OIDC token is accepted), version 2018-08-13. The issued
lifetime is the requested ``DurationSeconds`` (default 7200) capped by ``token_seconds``.
"""

from __future__ import annotations

import hmac
import json
import math
import secrets
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from tcvpc.emulator.auth import SignatureVerifier
from tcvpc.emulator.errors import EmuApiError, EmuAuthError

__all__ = ["STS_ACTIONS", "STS_VERSION", "IssuedKey", "StsService", "TokenAuthority"]

STS_VERSION = "2018-08-13"
STS_ACTIONS = ("AssumeRole", "AssumeRoleWithWebIdentity")
_MAX_DURATION = 43200
_KEEP_EXPIRED = 3600.0
"""Expired keys are remembered this long (they answer TokenFailure, not SecretIdNotFound)."""
_JSON = "application/json"


@dataclass(slots=True)
class IssuedKey:
    """One temporary key the emulator issued (secrets hidden from repr)."""

    secret_id: str
    secret_key: str = field(repr=False)
    token: str = field(repr=False)
    expires_at: int
    revoked: bool = False

    def document(self) -> dict[str, Any]:
        """The fields STS and the metadata service answer with."""
        return {
            "TmpSecretId": self.secret_id,
            "TmpSecretKey": self.secret_key,
            "Token": self.token,
            "ExpiredTime": self.expires_at,
            "Expiration": datetime.fromtimestamp(self.expires_at, UTC).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            ),
        }


class TokenAuthority:
    """Issues temporary keys and checks the token of every request signed with one."""

    def __init__(self, verifier: SignatureVerifier, *, token_seconds: float) -> None:
        self._verifier = verifier
        self.token_seconds = float(token_seconds)
        self._keys: dict[str, IssuedKey] = {}
        self._last_prune = 0.0
        self.issued: Counter[str] = Counter()
        """Keys issued, by where they were asked for (an STS action, or ``metadata``)."""
        self.token_failures: Counter[str] = Counter()
        """``AuthFailure.TokenFailure`` answers, by reason (missing, wrong, revoked, expired)."""

    def issue(self, now: float, *, via: str, duration: float | None = None) -> IssuedKey:
        lifetime = self.token_seconds if duration is None else min(duration, self.token_seconds)
        key = IssuedKey(
            secret_id="AKIDtmp" + secrets.token_hex(14),
            secret_key=secrets.token_urlsafe(30),
            token=secrets.token_urlsafe(96),
            expires_at=math.floor(now + lifetime),
        )
        self._keys[key.secret_id] = key
        self._verifier.add_credential(key.secret_id, key.secret_key)
        self.issued[via] += 1
        if now - self._last_prune > 60.0:
            self._prune(now)
        return key

    def _prune(self, now: float) -> None:
        self._last_prune = now
        for secret_id in [s for s, k in self._keys.items() if k.expires_at < now - _KEEP_EXPIRED]:
            del self._keys[secret_id]
            self._verifier.remove_credential(secret_id)

    def check(self, secret_id: str, token: str | None, now: float) -> None:
        """Raise ``AuthFailure.TokenFailure`` unless a temporary key comes with its live token.

        Requests signed with a long-lived key pass whatever their ``X-TC-Token``.
        """
        key = self._keys.get(secret_id)
        if key is None:
            return
        if not token:
            reason = "missing"
        elif not hmac.compare_digest(token.encode(), key.token.encode()):
            reason = "wrong"
        elif key.revoked:
            reason = "revoked"
        elif now >= key.expires_at:
            reason = "expired"
        else:
            return
        self.token_failures[reason] += 1
        raise EmuAuthError(
            "AuthFailure.TokenFailure",
            f"The token is invalid or has expired ({reason}).",
        )

    def revoke(self, secret_id_or_token: str) -> bool:
        """Revoke one key, named by its secret id or its token; ``False`` if there is none."""
        for key in self._keys.values():
            if secret_id_or_token in (key.secret_id, key.token):
                key.revoked = True
                return True
        return False

    def revoke_all(self) -> int:
        """Revoke every live key; returns how many were live."""
        live = [k for k in self._keys.values() if not k.revoked]
        for key in live:
            key.revoked = True
        return len(live)

    def issued_keys(self) -> list[IssuedKey]:
        """Every key still remembered (tests scan logs and reports for their secrets)."""
        return list(self._keys.values())

    def snapshot(self) -> dict[str, object]:
        return {
            "issued": dict(self.issued),
            "token_failures": dict(self.token_failures),
            "keys_known": len(self._keys),
        }


def _require_str(params: Mapping[str, Any], name: str) -> str:
    value = params.get(name)
    if value is None:
        raise EmuApiError(
            "MissingParameter", f"The request is missing a required parameter `{name}`."
        )
    if not isinstance(value, str) or not value.strip():
        raise EmuApiError("InvalidParameter", f"The parameter `{name}` must be a non-empty string.")
    return value


def _duration(params: Mapping[str, Any]) -> int:
    value = params.get("DurationSeconds", 7200)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= _MAX_DURATION:
        raise EmuApiError(
            "InvalidParameterValue",
            f"`DurationSeconds` must be an integer in [1, {_MAX_DURATION}].",
        )
    return value


_ASSUME_ROLE_PARAMS = frozenset(
    {
        "RoleArn",
        "RoleSessionName",
        "DurationSeconds",
        "Policy",
        "ExternalId",
        "Tags",
        "SourceIdentity",
    }
)
_WEB_IDENTITY_PARAMS = frozenset(
    {"ProviderId", "WebIdentityToken", "RoleArn", "RoleSessionName", "DurationSeconds"}
)


class StsService:
    """The two STS actions, served on the emulator's port (the client's ``for_service('sts')``
    keeps a loopback endpoint as it is)."""

    def __init__(
        self,
        authority: TokenAuthority,
        long_lived: Mapping[str, str],
        regions: frozenset[str],
    ) -> None:
        self._authority = authority
        self._verifier = SignatureVerifier(long_lived, service="sts")
        self._regions = regions
        self.requests: Counter[str] = Counter()
        """Answers by ``action:code`` (``OK`` for success)."""

    async def answer(self, request: web.Request, action: str, now: float) -> dict[str, Any]:
        """The ``Response`` payload for one STS request, or ``ApiError``."""
        try:
            payload = await self._answer(request, action, now)
        except EmuApiError as exc:
            self.requests[f"{action}:{exc.code}"] += 1
            raise
        self.requests[f"{action}:OK"] += 1
        return payload

    async def _answer(self, request: web.Request, action: str, now: float) -> dict[str, Any]:
        headers = request.headers
        if request.method != "POST" or request.path != "/":
            raise EmuApiError("UnsupportedProtocol", "STS is served at POST / only (JSON body).")
        if headers.get("Content-Type", "").split(";", 1)[0].strip().lower() != _JSON:
            raise EmuApiError("InvalidParameter", "Content-Type is not supported: send JSON.")
        version = headers.get("X-TC-Version")
        if version != STS_VERSION:
            raise EmuApiError("NoSuchVersion", f"The API version `{version}` does not exist.")
        region = headers.get("X-TC-Region")
        if not region:
            raise EmuApiError("MissingParameter", "The request is missing `X-TC-Region`.")
        if region not in self._regions:
            raise EmuApiError("UnsupportedRegion", f"The region `{region}` is not supported.")
        try:
            timestamp = int(headers.get("X-TC-Timestamp", ""))
        except ValueError:
            raise EmuApiError(
                "MissingParameter", "`X-TC-Timestamp` is missing or invalid."
            ) from None
        authorization = headers.get("Authorization")
        if not authorization:
            raise EmuAuthError("AuthFailure.InvalidAuthorization", "No `Authorization` header.")
        body = await request.read()
        if action == "AssumeRole":
            self._verifier.verify(
                authorization=authorization,
                timestamp=timestamp,
                method="POST",
                path="/",
                query=request.query_string,
                headers=headers,
                body=body,
                now=now,
            )
        try:
            params = json.loads(body) if body else {}
        except ValueError:
            raise EmuApiError("InvalidParameter", "The request body is not valid JSON.") from None
        if not isinstance(params, dict):
            raise EmuApiError("InvalidParameter", "The request body must be a JSON object.")
        known = _ASSUME_ROLE_PARAMS if action == "AssumeRole" else _WEB_IDENTITY_PARAMS
        for name in params:
            if name not in known:
                raise EmuApiError("UnknownParameter", f"The parameter `{name}` is not recognized.")
        _require_str(params, "RoleArn")
        _require_str(params, "RoleSessionName")
        if action == "AssumeRoleWithWebIdentity":
            _require_str(params, "ProviderId")
            _require_str(params, "WebIdentityToken")
        key = self._authority.issue(now, via=action, duration=_duration(params))
        document = key.document()
        return {
            "Credentials": {k: document[k] for k in ("Token", "TmpSecretId", "TmpSecretKey")},
            "ExpiredTime": document["ExpiredTime"],
            "Expiration": document["Expiration"],
        }
