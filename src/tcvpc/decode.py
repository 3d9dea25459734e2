"""Turning an HTTP answer into the API's ``Response`` object or a typed error (pure, no I/O).

The API answers every call, errors included, with HTTP 200 and a JSON envelope
``{"Response": {...}}``; anything else came from something in between.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

from tcvpc.errors import ResponseError, api_error

__all__ = ["EXCERPT_CHARS", "decode_response", "excerpt"]

EXCERPT_CHARS = 200
"""How much of a body that is not an API answer an error keeps (enough to recognise a page)."""


def excerpt(body: bytes) -> str:
    return body[:EXCERPT_CHARS].decode("utf-8", errors="replace")


def _server_date(headers: Mapping[str, str]) -> datetime | None:
    value = headers.get("date")
    if not value:
        return None
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None


_NOT_JSON = object()
_scan: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
"""The scanner of ``json.loads``'s decoder (no hooks, the default options)."""


def decode_response(
    action: str, status: int, headers: Mapping[str, str], body: bytes
) -> dict[str, Any]:
    """The ``Response`` object of a successful call; raises ``ApiError`` or ``ResponseError``.

    ``headers`` have lower-case names (the server's ``date`` corrects clock skew). Any bytes give
    one of these three outcomes; nothing else escapes.
    """
    if 300 <= status < 400:
        # Never followed: a redirect re-sends the signed request to whoever it names.
        location = headers.get("location", "")[:EXCERPT_CHARS]
        raise ResponseError(
            f"redirect to {location!r} not followed (the API never redirects)",
            action=action,
            status=status,
            excerpt=excerpt(body),
        )
    if status != 200:
        raise ResponseError(
            "unexpected HTTP status", action=action, status=status, excerpt=excerpt(body)
        )
    try:
        if body[:1] == b"{" and body[1:2] != b"\x00":
            # What json.loads does for a body it finds to be UTF-8 (an object's "{", no BOM,
            # not UTF-16), without its Python layers: every API answer starts so. Its scanner
            # reads one value from the "{"; only JSON whitespace may follow it.
            text = body.decode("utf-8", "surrogatepass")
            document, end = _scan(text, 0)
            if end != len(text) and text[end:].strip(" \t\n\r"):
                document = _NOT_JSON  # json.loads: "Extra data"
        else:
            document = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError, StopIteration):
        document = _NOT_JSON
    if document is _NOT_JSON:
        # Raised outside the except block: no JSONDecodeError (which holds the whole body)
        # rides along as __context__.
        raise ResponseError(
            "body is not JSON (truncated?)", action=action, status=status, excerpt=excerpt(body)
        )
    response = document.get("Response") if isinstance(document, dict) else None
    if not isinstance(response, dict):
        raise ResponseError(
            "JSON without a Response object", action=action, status=status, excerpt=excerpt(body)
        )
    if "Error" not in response:
        return response
    error = response["Error"]
    if not isinstance(error, dict) or not isinstance(error.get("Code"), str):
        raise ResponseError(
            "malformed Error object", action=action, status=status, excerpt=excerpt(body)
        )
    request_id = response.get("RequestId")
    raise api_error(
        error["Code"],
        str(error.get("Message", "")),
        request_id=request_id if isinstance(request_id, str) else "",
        action=action,
        server_date=_server_date(headers),
    )
