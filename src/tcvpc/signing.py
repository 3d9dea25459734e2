"""TC3-HMAC-SHA256, the API 3.0 request signature (pure functions, no I/O).

The signature covers the exact ``Content-Type`` string and the exact body bytes that go on the
wire, so callers serialise the body once and sign and send those same bytes. Everything that does
not depend on the body or the second is computed once and cached: the derived signing key and the
credential scope (per secret key, UTC day and service), the date string (per day) and the signed
part of the canonical request (per content type and host). A request then costs two SHA-256 and
one HMAC.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache

__all__ = [
    "ALGORITHM",
    "authorization",
    "canonical_request",
    "signature",
    "string_to_sign",
    "utc_date",
]

ALGORITHM = "TC3-HMAC-SHA256"
_SIGNED_HEADERS = "content-type;host"
"""What :func:`authorization` signs (``canonical_request`` sorts the lower-cased names)."""


_sha256 = hashlib.sha256

try:
    # What hmac.digest calls for a named digest, without its Python frame (every request
    # signs once). CPython's OpenSSL binding; another Python keeps the public function.
    from _hashlib import hmac_digest as _hmac_sha256
except ImportError:  # pragma: no cover - CPython without OpenSSL
    _hmac_sha256 = hmac.digest  # type: ignore[assignment]


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


_DAY = 86_400
"""Seconds per UTC day: Unix time has no leap seconds, so ``timestamp // _DAY`` is the UTC day."""


@lru_cache(maxsize=8)
def _date_of_day(day: int) -> str:
    return datetime.fromtimestamp(day * _DAY, UTC).strftime("%Y-%m-%d")


def utc_date(timestamp: int) -> str:
    """The ``YYYY-MM-DD`` UTC date of a Unix timestamp, as the credential scope uses it."""
    return _date_of_day(timestamp // _DAY)


def canonical_request(headers: Mapping[str, str], payload: bytes) -> tuple[str, str]:
    """Return ``(canonical request, signed headers)`` for a ``POST /`` with these headers signed.

    Header names are lower-cased and sorted; values lower-cased and trimmed, as the spec says.
    """
    items = sorted((name.lower(), value.strip().lower()) for name, value in headers.items())
    canonical_headers = "".join(f"{name}:{value}\n" for name, value in items)
    signed_headers = ";".join(name for name, _ in items)
    request = "\n".join(("POST", "/", "", canonical_headers, signed_headers, _sha256_hex(payload)))
    return request, signed_headers


def string_to_sign(canonical: str, *, timestamp: int, service: str) -> str:
    scope = f"{utc_date(timestamp)}/{service}/tc3_request"
    return "\n".join((ALGORITHM, str(timestamp), scope, _sha256_hex(canonical.encode("utf-8"))))


@lru_cache(maxsize=64)
def _signing_key(secret_key: str, date: str, service: str) -> bytes:
    """HMAC chain ``TC3+key → date → service → tc3_request``; valid for one UTC day."""
    secret_date = hmac.new(("TC3" + secret_key).encode("utf-8"), date.encode(), "sha256").digest()
    secret_service = hmac.new(secret_date, service.encode(), "sha256").digest()
    return hmac.new(secret_service, b"tc3_request", "sha256").digest()


def signature(secret_key: str, to_sign: str, *, timestamp: int, service: str) -> str:
    key = _signing_key(secret_key, utc_date(timestamp), service)
    return hmac.digest(key, to_sign.encode("utf-8"), "sha256").hex()


@lru_cache(maxsize=64)
def _canonical_prefix(content_type: str, host: str) -> str:
    """The canonical request of ``authorization`` up to its last line (the payload's hash)."""
    canonical, _ = canonical_request({"content-type": content_type, "host": host}, b"")
    return canonical[: canonical.rindex("\n") + 1]


@lru_cache(maxsize=64)
def _day_scope(secret_key: str, day: int, service: str) -> tuple[str, bytes]:
    """``(credential scope, signing key)`` for one secret key, UTC day and service."""
    date = _date_of_day(day)
    return f"{date}/{service}/tc3_request", _signing_key(secret_key, date, service)


def authorization(
    *,
    secret_id: str,
    secret_key: str,
    service: str,
    host: str,
    content_type: str,
    payload: bytes,
    timestamp: int,
) -> str:
    """The ``Authorization`` header value for a ``POST /`` signing ``content-type`` and ``host``.

    Those two headers are the ones the spec makes mandatory; signing only them keeps the canonical
    request independent of headers that proxies may rewrite.
    """
    # canonical_request, string_to_sign and signature, with their constant parts cached.
    canonical = _canonical_prefix(content_type, host) + _sha256(payload).hexdigest()
    scope, key = _day_scope(secret_key, timestamp // _DAY, service)
    digest = _sha256(canonical.encode("utf-8")).hexdigest()
    to_sign = f"{ALGORITHM}\n{timestamp}\n{scope}\n{digest}"
    sig = _hmac_sha256(key, to_sign.encode("utf-8"), "sha256").hex()
    return (
        f"{ALGORITHM} Credential={secret_id}/{scope}, "
        f"SignedHeaders={_SIGNED_HEADERS}, Signature={sig}"
    )
