"""The network seam: one signed request in, status + headers + bytes out.

The client signs and decodes; a transport only moves bytes. Tests swap in
:class:`MockTransport` (a plain function of the request) instead of patching aiohttp, and
credential providers reuse the same seam for metadata and STS calls.
"""

from __future__ import annotations

import asyncio
import inspect
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol, runtime_checkable

import aiohttp

from tcvpc.errors import RequestTimeoutError, ResponseError, TransportError

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "AiohttpTransport",
    "AsyncTransport",
    "MockTransport",
    "Request",
    "Response",
]

DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024
"""The API's answers are kilobytes; anything this large is not an API answer."""

_SECRET_HEADERS = frozenset({"authorization", "x-tc-token"})


def _redacted(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: ("<redacted>" if k.lower() in _SECRET_HEADERS else v) for k, v in headers.items()}


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request. ``label`` names it in errors (the API action, or "metadata")."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes = b""
    timeout: float = 30.0
    label: str = ""

    def __repr__(self) -> str:
        # Exception trackers record frame locals by repr: the signature and token stay out.
        return (
            f"Request({self.method} {self.url}, headers={_redacted(self.headers)!r}, "
            f"body={len(self.body)} bytes)"
        )


@dataclass(frozen=True, slots=True)
class Response:
    """An HTTP answer, fully read. Header names are lower-case."""

    status: int
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    body: bytes = b""


@runtime_checkable
class AsyncTransport(Protocol):
    """Sends one request and returns its whole answer, or raises a ``TransportError``.

    A transport never follows redirects and never decodes: a 3xx comes back as a ``Response``.
    """

    async def send(self, request: Request) -> Response: ...

    async def aclose(self) -> None: ...


Handler = Callable[[Request], Response | Awaitable[Response]]


class MockTransport:
    """A transport that answers with ``handler(request)`` (sync or async): tests, fakes."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self.requests: list[Request] = []

    async def send(self, request: Request) -> Response:
        self.requests.append(request)
        answer = self._handler(request)
        if inspect.isawaitable(answer):
            return await answer
        return answer

    async def aclose(self) -> None:
        return None


class AiohttpTransport:
    """The default transport: one aiohttp session with a keep-alive pool.

    ``trust_env`` honours ``HTTP(S)_PROXY`` / ``NO_PROXY``; ``proxy`` overrides them.
    ``ca_bundle`` adds trusted CAs (TLS verification stays on). Bodies larger than
    ``max_response_bytes`` raise ``ResponseError`` without being read further.
    """

    def __init__(
        self,
        *,
        max_connections: int = 100,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        proxy: str | None = None,
        trust_env: bool = True,
        ca_bundle: str | None = None,
    ) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be >= 1")
        if max_response_bytes < 1:
            raise ValueError("max_response_bytes must be >= 1")
        self._max_connections = max_connections
        self._max_bytes = max_response_bytes
        self._proxy = proxy
        self._trust_env = trust_env
        self._ssl: ssl.SSLContext | bool = True
        if ca_bundle is not None:
            self._ssl = ssl.create_default_context(cafile=ca_bundle)
        self._session: aiohttp.ClientSession | None = None

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._max_connections, ssl=self._ssl)
            self._session = aiohttp.ClientSession(connector=connector, trust_env=self._trust_env)
        return self._session

    async def send(self, request: Request) -> Response:
        session = self._ensure_session()
        try:
            async with asyncio.timeout(request.timeout):
                async with session.request(
                    request.method,
                    request.url,
                    data=request.body,
                    headers=dict(request.headers),
                    allow_redirects=False,  # the API never redirects: a 3xx is an error
                    proxy=self._proxy,
                ) as resp:
                    body = await self._read_capped(resp, request.label)
                    headers = {k.lower(): v for k, v in resp.headers.items()}
                    return Response(resp.status, MappingProxyType(headers), body)
        except TimeoutError:
            raise RequestTimeoutError(
                f"{request.label}: no complete answer within {request.timeout}s",
                action=request.label,
                outcome_unknown=True,
            ) from None
        except aiohttp.ClientConnectorError as exc:
            # Not chained: aiohttp's exceptions carry the request's headers (the signature).
            raise TransportError(
                f"{request.label}: cannot connect to {exc.host}:{exc.port}: {exc.os_error}",
                action=request.label,
                outcome_unknown=False,
            ) from None
        except aiohttp.ClientError as exc:
            raise TransportError(
                f"{request.label}: connection failed after sending: {type(exc).__name__}",
                action=request.label,
                outcome_unknown=True,
            ) from None

    async def _read_capped(self, resp: aiohttp.ClientResponse, label: str) -> bytes:
        declared = resp.content_length
        if declared is not None and declared > self._max_bytes:
            raise ResponseError(
                f"answer of {declared} bytes exceeds the {self._max_bytes}-byte cap",
                action=label,
                status=resp.status,
                excerpt="",
            )
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > self._max_bytes:
                raise ResponseError(
                    f"answer exceeds the {self._max_bytes}-byte cap",
                    action=label,
                    status=resp.status,
                    excerpt="",
                )
            chunks.append(chunk)
        return b"".join(chunks)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
