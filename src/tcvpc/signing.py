"""TC3-HMAC-SHA256, the API 3.0 request signature (pure functions, no I/O).

The signature covers the exact ``Content-Type`` string and the exact body bytes that go on the
wire, so callers serialise the body once and sign and send those same bytes. The derived signing
key depends only on (secret key, UTC date, service): it is cached, which turns three of the four
HMACs per request into a dictionary hit.
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


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def utc_date(timestamp: int) -> str:
    """The ``YYYY-MM-DD`` UTC date of a Unix timestamp, as the credential scope uses it."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")


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
    return hmac.new(key, to_sign.encode("utf-8"), "sha256").hexdigest()


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
    canonical, signed_headers = canonical_request(
        {"content-type": content_type, "host": host}, payload
    )
    to_sign = string_to_sign(canonical, timestamp=timestamp, service=service)
    sig = signature(secret_key, to_sign, timestamp=timestamp, service=service)
    scope = f"{utc_date(timestamp)}/{service}/tc3_request"
    return (
        f"{ALGORITHM} Credential={secret_id}/{scope}, "
        f"SignedHeaders={signed_headers}, Signature={sig}"
    )
