"""Server-side signature checks, written independently of ``tcvpc.signing`` (never import it).

A second implementation catches what a shared one would hide: a bug in the client's signer would
sign and verify "correctly" here and fail against the cloud. It follows Tencent's published
algorithms (TC3-HMAC-SHA256 over POST or GET, and the older ``HmacSHA1``/``HmacSHA256``
parameter signature) and is tested against the documented example vector, the official SDKs
and tccli.

TC3 checks, first failure wins: the ``Authorization`` header parses, signs ``content-type`` and
``host`` and names headers that are present (``AuthFailure.InvalidAuthorization``); the secret id
is known (``AuthFailure.SecretIdNotFound``); the timestamp is within 300 s of the server clock
(``AuthFailure.SignatureExpire``); the scope's date and the signature match
(``AuthFailure.SignatureFailure``). The ``host`` is accepted as sent and without its port, as the
official Node.js SDK signs it. Derived keys are cached per (secret key, date).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from tcvpc.emulator.errors import EmuAuthError

__all__ = [
    "ALGORITHM",
    "LEGACY_METHODS",
    "MAX_SKEW_SECONDS",
    "EmuAuthError",
    "ParsedAuthorization",
    "SignatureVerifier",
    "canonical_request",
    "derive_signing_key",
    "host_forms",
    "legacy_string_to_sign",
    "parse_authorization",
    "payload_hash",
    "sign_string",
    "string_to_sign",
]

ALGORITHM = "TC3-HMAC-SHA256"
MAX_SKEW_SECONDS = 300
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
#: ``SignatureMethod`` values of the older signature; absent means ``HmacSHA1``.
LEGACY_METHODS = {"HmacSHA1": "sha1", "HmacSHA256": "sha256"}

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
        raise EmuAuthError(
            "AuthFailure.InvalidAuthorization",
            "Authorization header is not a valid TC3-HMAC-SHA256 authorization.",
        )
    signed = tuple(match["headers"].split(";"))
    if "content-type" not in signed or "host" not in signed:
        raise EmuAuthError(
            "AuthFailure.InvalidAuthorization",
            "SignedHeaders must include content-type and host.",
        )
    if list(signed) != sorted(signed) or len(set(signed)) != len(signed) or "" in signed:
        raise EmuAuthError(
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
    host: str | None = None,
) -> str:
    """The canonical request: header values lower-cased and trimmed, names in signed order.

    ``headers`` must map lower-case names to values (a case-insensitive mapping works);
    ``host``, when given, replaces the ``Host`` header's value.
    """
    values = {name: headers[name] for name in signed_headers}
    if host is not None and "host" in values:
        values["host"] = host
    canonical_headers = "".join(f"{n}:{values[n].strip().lower()}\n" for n in signed_headers)
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


def host_forms(host: str) -> tuple[str, ...]:
    """``host`` as sent, then without its port if it has one (``[::1]:80`` -> ``[::1]``)."""
    if host.startswith("["):
        bare = host[: host.find("]") + 1] if "]" in host else host
    else:
        bare = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return (host,) if bare in ("", host) else (host, bare)


def legacy_string_to_sign(method: str, host: str, path: str, params: Mapping[str, str]) -> str:
    """``METHOD host path ? k=v&...``: every parameter but ``Signature``, sorted, not encoded."""
    pairs = "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "Signature")
    return f"{method}{host}{path}?{pairs}"


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

    def add_credential(self, secret_id: str, secret_key: str) -> None:
        """Accept one more key pair (the temporary keys the emulator's STS issues)."""
        self._credentials[secret_id] = secret_key

    def remove_credential(self, secret_id: str) -> None:
        self._credentials.pop(secret_id, None)

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
        """Check one request; return its secret id or raise :class:`EmuAuthError`.

        ``headers`` must be case-insensitive (aiohttp's ``request.headers`` is). ``now`` is the
        server's wall clock (skew included); the verifier's clock when omitted.
        """
        parsed = parse_authorization(authorization)
        if parsed.service != self._service:
            raise EmuAuthError(
                "AuthFailure.InvalidAuthorization",
                f"credential scope names service {parsed.service!r}, expected {self._service!r}.",
            )
        for name in parsed.signed_headers:
            if name not in headers:
                raise EmuAuthError(
                    "AuthFailure.InvalidAuthorization",
                    f"signed header {name!r} is missing from the request.",
                )
        secret_key = self._credentials.get(parsed.secret_id)
        if secret_key is None:
            raise EmuAuthError("AuthFailure.SecretIdNotFound", "The SecretId is not found.")
        server_now = self._clock() if now is None else now
        if abs(server_now - timestamp) > self._max_skew:
            raise EmuAuthError(
                "AuthFailure.SignatureExpire",
                f"Signature expired: the request timestamp {timestamp} is more than "
                f"{self._max_skew:g} s from the server time {int(server_now)}.",
            )
        if parsed.date != _utc_date(timestamp):
            raise EmuAuthError(
                "AuthFailure.SignatureFailure",
                "The credential scope's date is not the UTC date of X-TC-Timestamp.",
            )
        if headers.get("X-TC-Content-SHA256") == UNSIGNED_PAYLOAD:
            hashed = payload_hash(UNSIGNED_PAYLOAD.encode())
        else:
            hashed = payload_hash(body)
        key = self._signing_key(secret_key, parsed.date)
        for host in host_forms(headers.get("host", "")):
            canonical = canonical_request(
                method=method,
                path=path,
                query=query,
                headers=headers,
                signed_headers=parsed.signed_headers,
                hashed_payload=hashed,
                host=host,
            )
            expected = sign_string(
                key, string_to_sign(timestamp, parsed.date, self._service, canonical)
            )
            if hmac.compare_digest(expected, parsed.signature):
                return parsed.secret_id
        raise EmuAuthError(
            "AuthFailure.SignatureFailure",
            "The provided credentials could not be validated. Please check your signature.",
        )

    def verify_legacy(
        self,
        *,
        params: Mapping[str, str],
        method: str,
        host: str,
        path: str,
        now: float | None = None,
    ) -> str:
        """Check an ``HmacSHA1``/``HmacSHA256`` parameter signature; return the secret id.

        ``params`` are every request parameter, decoded, ``Signature`` included. The string to
        sign uses the host as sent or without its port; the official Python SDK also writes
        ``_`` in names as ``.`` there, so both spellings are accepted.
        """
        method_name = params.get("SignatureMethod", "HmacSHA1")
        digest = LEGACY_METHODS.get(method_name)
        if digest is None:
            raise EmuAuthError(
                "AuthFailure.SignatureFailure",
                f"SignatureMethod must be one of {', '.join(LEGACY_METHODS)}.",
            )
        secret_key = self._credentials.get(params.get("SecretId", ""))
        if secret_key is None:
            raise EmuAuthError("AuthFailure.SecretIdNotFound", "The SecretId is not found.")
        try:
            timestamp = int(params.get("Timestamp", ""))
        except ValueError:
            raise EmuAuthError(
                "AuthFailure.SignatureFailure", "`Timestamp` must be an integer (Unix seconds)."
            ) from None
        server_now = self._clock() if now is None else now
        if abs(server_now - timestamp) > self._max_skew:
            raise EmuAuthError(
                "AuthFailure.SignatureExpire",
                f"Signature expired: the request timestamp {timestamp} is more than "
                f"{self._max_skew:g} s from the server time {int(server_now)}.",
            )
        given = params.get("Signature", "").encode("utf-8")
        spellings = [dict(params)]
        if any("_" in name for name in params):
            spellings.append({k.replace("_", "."): v for k, v in params.items()})
        for form in host_forms(host):
            for spelled in spellings:
                to_sign = legacy_string_to_sign(method, form, path, spelled)
                mac = hmac.new(secret_key.encode("utf-8"), to_sign.encode("utf-8"), digest)
                if hmac.compare_digest(base64.b64encode(mac.digest()), given):
                    return params["SecretId"]
        raise EmuAuthError(
            "AuthFailure.SignatureFailure",
            "The provided credentials could not be validated. Please check your signature.",
        )
