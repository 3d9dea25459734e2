"""Server-side TC3-HMAC-SHA256 verification, written independently of ``tcvpc.signing``.

Why a second implementation: if the emulator reused the client's signer, a bug shared by both
(say, not lower-casing a header value) would sign and verify "correctly" here and fail against
the real service. This module follows the published algorithm (see ``docs/api.md``) and is
tested against Tencent's documented example vector and against the official SDK.

What the server checks, in this order (first failure wins):

1. the ``Authorization`` header parses: algorithm ``TC3-HMAC-SHA256``, a credential scope
   ``<id>/<YYYY-MM-DD>/<service>/tc3_request``, ``SignedHeaders`` naming at least
   ``content-type`` and ``host``, each of them present in the request, and a hex signature
   -> ``AuthFailure.InvalidAuthorization``;
2. the secret id is known -> ``AuthFailure.SecretIdNotFound``;
3. the timestamp is within 300 s of the server's clock -> ``AuthFailure.SignatureExpire``;
4. the scope's date is the UTC date of the timestamp, and the signature matches the canonical
   request built from the declared signed headers (lower-cased, trimmed values, exactly as sent),
   the raw body bytes and the path -> ``AuthFailure.SignatureFailure``.

Derived signing keys are cached per (secret key, date, service): key derivation is three HMACs,
and the hot path should pay for one.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from tcvpc.emulator.errors import AuthError

__all__ = [
    "ALGORITHM",
    "MAX_SKEW_SECONDS",
    "AuthError",
    "ParsedAuthorization",
    "SignatureVerifier",
    "canonical_request",
    "derive_signing_key",
    "parse_authorization",
    "payload_hash",
    "sign_string",
    "string_to_sign",
]

ALGORITHM = "TC3-HMAC-SHA256"
MAX_SKEW_SECONDS = 300
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"

_AUTH_RE = re.compile(
    r"^TC3-HMAC-SHA256\s+"
    r"Credential=(?P<id>[^/,\s]+)/(?P<date>\d{4}-\d{2}-\d{2})/(?P<service>[a-z0-9-]+)/tc3_request\s*,\s*"
    r"SignedHeaders=(?P<headers>[a-z0-9;_-]+)\s*,\s*"
    r"Signature=(?P<sig>[0-9a-f]{64})\s*$"
)


@dataclass(frozen=True, slots=True)
class ParsedAuthorization:
    """The parts of an ``Authorization: TC3-HMAC-SHA256 ...`` header."""

    secret_id: str
    date: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str

    @property
    def signed_headers_text(self) -> str:
        return ";".join(self.signed_headers)


def parse_authorization(value: str) -> ParsedAuthorization:
    """Parse an ``Authorization`` header or raise ``AuthFailure.InvalidAuthorization``."""
    match = _AUTH_RE.match(value.strip())
    if match is None:
        raise AuthError(
            "AuthFailure.InvalidAuthorization",
            "Authorization header is not a valid TC3-HMAC-SHA256 authorization.",
        )
    signed = tuple(match["headers"].split(";"))
    if "content-type" not in signed or "host" not in signed:
        raise AuthError(
            "AuthFailure.InvalidAuthorization",
            "SignedHeaders must include content-type and host.",
        )
    if list(signed) != sorted(signed) or len(set(signed)) != len(signed) or "" in signed:
        raise AuthError(
            "AuthFailure.InvalidAuthorization",
            "SignedHeaders must be sorted, unique, lower-case header names.",
        )
    return ParsedAuthorization(
        secret_id=match["id"],
        date=match["date"],
        service=match["service"],
        signed_headers=signed,
        signature=match["sig"],
    )


def payload_hash(body: bytes) -> str:
    """Hex SHA-256 of the exact body bytes on the wire."""
    return hashlib.sha256(body).hexdigest()


def canonical_request(
    *,
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    signed_headers: tuple[str, ...],
    hashed_payload: str,
) -> str:
    """The canonical request: header values lower-cased and trimmed, names in signed order.

    ``headers`` must map lower-case names to values (a case-insensitive mapping works).
    """
    canonical_headers = "".join(
        f"{name}:{headers[name].strip().lower()}\n" for name in signed_headers
    )
    return "\n".join(
        (method, path, query, canonical_headers, ";".join(signed_headers), hashed_payload)
    )


def string_to_sign(timestamp: int | str, date: str, service: str, canonical: str) -> str:
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{timestamp}\n{date}/{service}/tc3_request\n{digest}"


def derive_signing_key(secret_key: str, date: str, service: str) -> bytes:
    """``SecretSigning`` = HMAC chain over date, service and ``tc3_request``."""
    k_date = hmac.new(("TC3" + secret_key).encode("utf-8"), date.encode("utf-8"), "sha256")
    k_service = hmac.new(k_date.digest(), service.encode("utf-8"), "sha256")
    return hmac.new(k_service.digest(), b"tc3_request", "sha256").digest()


def sign_string(signing_key: bytes, to_sign: str) -> str:
    return hmac.new(signing_key, to_sign.encode("utf-8"), "sha256").hexdigest()


def _utc_date(timestamp: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(timestamp))


class SignatureVerifier:
    """Verifies requests against a fixed set of ``secret id -> secret key`` credentials."""

    _KEY_CACHE_LIMIT = 64

    def __init__(
        self,
        credentials: Mapping[str, str],
        *,
        service: str = "vpc",
        max_skew_seconds: float = MAX_SKEW_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._credentials = dict(credentials)
        self._service = service
        self._max_skew = max_skew_seconds
        self._clock = clock
        self._keys: dict[tuple[str, str], bytes] = {}

    def _signing_key(self, secret_key: str, date: str) -> bytes:
        cache_key = (secret_key, date)
        key = self._keys.get(cache_key)
        if key is None:
            if len(self._keys) >= self._KEY_CACHE_LIMIT:
                self._keys.clear()
            key = derive_signing_key(secret_key, date, self._service)
            self._keys[cache_key] = key
        return key

    def verify(
        self,
        *,
        authorization: str,
        timestamp: int,
        method: str,
        path: str,
        query: str,
        headers: Mapping[str, str],
        body: bytes,
        now: float | None = None,
    ) -> str:
        """Check one request; return its secret id or raise :class:`AuthError`.

        ``headers`` must be case-insensitive (aiohttp's ``request.headers`` is). ``now`` is the
        server's wall clock (skew included); the verifier's clock when omitted.
        """
        parsed = parse_authorization(authorization)
        if parsed.service != self._service:
            raise AuthError(
                "AuthFailure.InvalidAuthorization",
                f"credential scope names service {parsed.service!r}, expected {self._service!r}.",
            )
        for name in parsed.signed_headers:
            if name not in headers:
                raise AuthError(
                    "AuthFailure.InvalidAuthorization",
                    f"signed header {name!r} is missing from the request.",
                )
        secret_key = self._credentials.get(parsed.secret_id)
        if secret_key is None:
            raise AuthError("AuthFailure.SecretIdNotFound", "The SecretId is not found.")
        server_now = self._clock() if now is None else now
        if abs(server_now - timestamp) > self._max_skew:
            raise AuthError(
                "AuthFailure.SignatureExpire",
                f"Signature expired: the request timestamp {timestamp} is more than "
                f"{self._max_skew:g} s from the server time {int(server_now)}.",
            )
        if parsed.date != _utc_date(timestamp):
            raise AuthError(
                "AuthFailure.SignatureFailure",
                "The credential scope's date is not the UTC date of X-TC-Timestamp.",
            )
        if headers.get("X-TC-Content-SHA256") == UNSIGNED_PAYLOAD:
            hashed = payload_hash(UNSIGNED_PAYLOAD.encode())
        else:
            hashed = payload_hash(body)
        canonical = canonical_request(
            method=method,
            path=path,
            query=query,
            headers=headers,
            signed_headers=parsed.signed_headers,
            hashed_payload=hashed,
        )
        expected = sign_string(
            self._signing_key(secret_key, parsed.date),
            string_to_sign(timestamp, parsed.date, self._service, canonical),
        )
        if not hmac.compare_digest(expected, parsed.signature):
            raise AuthError(
                "AuthFailure.SignatureFailure",
                "The provided credentials could not be validated. Please check your signature.",
            )
        return parsed.secret_id
