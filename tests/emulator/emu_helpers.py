"""Test-only TC3 signer and request helper (independent of ``tcvpc.signing``, on purpose)."""

from __future__ import annotations

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
    host = url.removeprefix("http://")
    headers = sign_headers(host=host, action=action, body=payload, **sign_kwargs)
    for name, value in (header_overrides or {}).items():
        if value is None:
            headers.pop(name, None)
        else:
            headers[name] = value
    async with session.post(url + "/", data=payload, headers=headers) as resp:
        raw = await resp.read()
        return Answer(resp.status, resp.headers, raw)
