"""Test-only TC3 signer and request helper (independent of ``tcvpc.signing``, on purpose)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import aiohttp

from tcvpc.emulator import DEMO_REGION, DEMO_SECRET_ID, DEMO_SECRET_KEY

CONTENT_TYPE = "application/json"


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def sign_headers(
    *,
    host: str,
    action: str,
    body: bytes,
    secret_id: str = DEMO_SECRET_ID,
    secret_key: str = DEMO_SECRET_KEY,
    region: str | None = DEMO_REGION,
    timestamp: int | None = None,
    version: str | None = "2017-03-12",
    content_type: str = CONTENT_TYPE,
    extra_signed: dict[str, str] | None = None,
    service: str = "vpc",
) -> dict[str, str]:
    ts = int(time.time()) if timestamp is None else timestamp
    date = time.strftime("%Y-%m-%d", time.gmtime(ts))
    headers = {"Content-Type": content_type, "Host": host, "X-TC-Action": action}
    headers["X-TC-Timestamp"] = str(ts)
    if version is not None:
        headers["X-TC-Version"] = version
    if region is not None:
        headers["X-TC-Region"] = region
    signed = {"content-type": content_type, "host": host}
    for name, value in (extra_signed or {}).items():
        signed[name.lower()] = value
        headers[name] = value
    names = sorted(signed)
    canonical_headers = "".join(f"{n}:{signed[n].strip().lower()}\n" for n in names)
    signed_headers = ";".join(names)
    canonical = "\n".join(
        ["POST", "/", "", canonical_headers, signed_headers, hashlib.sha256(body).hexdigest()]
    )
    scope = f"{date}/{service}/tc3_request"
    to_sign = "\n".join(
        ["TC3-HMAC-SHA256", str(ts), scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = _hmac(_hmac(_hmac(("TC3" + secret_key).encode(), date), service), "tc3_request")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["Authorization"] = (
        f"TC3-HMAC-SHA256 Credential={secret_id}/{scope}, "
        f"SignedHeaders={signed_headers}, Signature={signature}"
    )
    return headers


class Answer:
    def __init__(self, status: int, headers: Any, raw: bytes) -> None:
        self.status = status
        self.headers = headers
        self.raw = raw

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.raw)

    @property
    def response(self) -> dict[str, Any]:
        return self.json["Response"]

    @property
    def code(self) -> str | None:
        error = self.response.get("Error")
        return None if error is None else error["Code"]


async def call(
    session: aiohttp.ClientSession,
    url: str,
    action: str,
    params: dict[str, Any] | None = None,
    *,
    body: bytes | None = None,
    header_overrides: dict[str, str | None] | None = None,
    **sign_kwargs: Any,
) -> Answer:
    """Sign and POST one request; ``header_overrides`` edits headers after signing."""
    payload = body if body is not None else json.dumps(params or {}).encode()
    host = url.split("://", 1)[1]
    headers = sign_headers(host=host, action=action, body=payload, **sign_kwargs)
    for name, value in (header_overrides or {}).items():
        if value is None:
            headers.pop(name, None)
        else:
            headers[name] = value
    async with session.post(url + "/", data=payload, headers=headers) as resp:
        raw = await resp.read()
        return Answer(resp.status, resp.headers, raw)


def tc3_get_headers(
    *,
    host: str,
    action: str,
    query: str,
    secret_id: str = DEMO_SECRET_ID,
    secret_key: str = DEMO_SECRET_KEY,
    region: str = DEMO_REGION,
    signed_host: str | None = None,
) -> dict[str, str]:
    """TC3 over GET: the query string is the canonical query string, the payload is empty.

    ``signed_host`` signs another Host than the one sent (the Node SDK signs it without port).
    """
    ts = int(time.time())
    date = time.strftime("%Y-%m-%d", time.gmtime(ts))
    content_type = "application/x-www-form-urlencoded"
    canonical_headers = f"content-type:{content_type}\nhost:{signed_host or host}\n"
    canonical = "\n".join(
        [
            "GET",
            "/",
            query,
            canonical_headers,
            "content-type;host",
            hashlib.sha256(b"").hexdigest(),
        ]
    )
    scope = f"{date}/vpc/tc3_request"
    to_sign = "\n".join(
        ["TC3-HMAC-SHA256", str(ts), scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = _hmac(_hmac(_hmac(("TC3" + secret_key).encode(), date), "vpc"), "tc3_request")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return {
        "Content-Type": content_type,
        "Host": host,
        "X-TC-Action": action,
        "X-TC-Timestamp": str(ts),
        "X-TC-Version": "2017-03-12",
        "X-TC-Region": region,
        "Authorization": f"TC3-HMAC-SHA256 Credential={secret_id}/{scope}, "
        f"SignedHeaders=content-type;host, Signature={signature}",
    }


def legacy_params(
    *,
    method: str,
    host: str,
    action: str,
    params: dict[str, str],
    secret_id: str = DEMO_SECRET_ID,
    secret_key: str = DEMO_SECRET_KEY,
    signature_method: str | None = "HmacSHA256",
    timestamp: int | None = None,
    language: str | None = None,
) -> dict[str, str]:
    """The older signature: common parameters next to the action's, ``Signature`` over them all."""
    out = dict(params)
    out.update(
        Action=action,
        Version="2017-03-12",
        Region=DEMO_REGION,
        Timestamp=str(int(time.time()) if timestamp is None else timestamp),
        Nonce="48213",
        SecretId=secret_id,
    )
    if signature_method is not None:
        out["SignatureMethod"] = signature_method
    if language is not None:
        out["Language"] = language
    to_sign = f"{method}{host}/?" + "&".join(f"{k}={out[k]}" for k in sorted(out))
    digest = hashlib.sha1 if signature_method in (None, "HmacSHA1") else hashlib.sha256
    mac = hmac.new(secret_key.encode(), to_sign.encode(), digest).digest()
    out["Signature"] = base64.b64encode(mac).decode()
    return out


def require(available: bool, what: str) -> None:
    """Skip without ``what`` (saying why), but fail in CI, where a missing oracle is a defect."""
    import os

    import pytest

    if available:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what} is missing in CI: install the dev extra (pip install -e '.[dev]')")
    pytest.skip(f"{what} is not installed")
