"""The network seam: one signed request in, status + headers + bytes out.

The client signs and decodes; a transport only moves bytes. Tests swap in
:class:`MockTransport` (a plain function of the request) instead of patching aiohttp, and
credential providers reuse the same seam for metadata and STS calls.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
import ssl
import urllib.request
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol, runtime_checkable

import aiohttp
from yarl import URL

from tcvpc.errors import (
    ClientClosedError,
    EventLoopError,
    RequestTimeoutError,
    ResponseTooLargeError,
    TcvpcError,
    TransportError,
    UntrustedCertificateError,
)
from tcvpc.eventloop import runs_here
from tcvpc.frozen import slot_setters

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

_NO_HEADERS: Mapping[str, str] = MappingProxyType({})

_SECRET_HEADERS = frozenset({"authorization", "x-tc-token", "proxy-authorization"})
_CHUNK = 64 * 1024


def _redacted(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: ("<redacted>" if k.lower() in _SECRET_HEADERS else v) for k, v in headers.items()}


@functools.lru_cache(maxsize=64)
def _url(value: str) -> URL:
    """Parsed once: a transport talks to a handful of URLs, thousands of times a second."""
    return URL(value)


@functools.lru_cache(maxsize=16)
def _client_timeout(total: float) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=total)


def _safe_url(url: str | URL) -> str:
    """A URL fit for logs and messages: any ``user:password@`` is dropped."""
    try:
        return str(URL(url).with_user(None))
    except (ValueError, TypeError):
        return "<unparsable URL>"


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request. ``label`` names it in errors (the API action, or "metadata")."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes = b""
    timeout: float = 30.0
    label: str = ""

    def __init__(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes = b"",
        timeout: float = 30.0,
        label: str = "",
    ) -> None:
        # What dataclass generates, through the slots' own setters (frozen.py: one per
        # request); dataclass keeps an __init__ the class defines.
        _set_method(self, method)
        _set_url(self, url)
        _set_headers(self, headers)
        _set_body(self, body)
        _set_timeout(self, timeout)
        _set_label(self, label)

    def __repr__(self) -> str:
        # Exception trackers record frame locals by repr: the signature and token stay out.
        return (
            f"Request({self.method} {self.url}, headers={_redacted(self.headers)!r}, "
            f"body={len(self.body)} bytes)"
        )


_set_method, _set_url, _set_headers, _set_body, _set_timeout, _set_label = slot_setters(
    Request, "method", "url", "headers", "body", "timeout", "label"
)


@dataclass(frozen=True, slots=True)
class Response:
    """An HTTP answer, fully read. ``headers`` are looked up by lower-case name (a transport
    gives a case-insensitive mapping, or lower-cases the names)."""

    status: int
    headers: Mapping[str, str] = field(default_factory=lambda: _NO_HEADERS)
    body: bytes = b""

    def __init__(
        self, status: int, headers: Mapping[str, str] = _NO_HEADERS, body: bytes = b""
    ) -> None:
        # As Request's (one per answer). The default headers are one shared read-only mapping.
        _set_status(self, status)
        _set_answer_headers(self, headers)
        _set_answer_body(self, body)

    def __repr__(self) -> str:
        # A metadata or STS answer carries temporary keys: the body stays out of reprs.
        return (
            f"Response({self.status}, headers={dict(self.headers)!r}, body={len(self.body)} bytes)"
        )


_set_status, _set_answer_headers, _set_answer_body = slot_setters(
    Response, "status", "headers", "body"
)


@runtime_checkable
class AsyncTransport(Protocol):
    """Sends one request and returns its whole answer, or raises a ``TcvpcError``.

    A transport never follows redirects and never decodes: a 3xx comes back as a ``Response``.
    """

    async def send(self, request: Request) -> Response: ...

    async def aclose(self) -> None: ...


Handler = Callable[[Request], Response | Awaitable[Response]]


class MockTransport:
    """A transport that answers with ``handler(request)`` (sync or async): tests, fakes.

    The handler may raise a ``TcvpcError`` (a ``TransportError`` to play a dropped connection);
    every request is kept in ``requests``.
    """

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self.requests: list[Request] = []
        self.closed = False

    async def send(self, request: Request) -> Response:
        if self.closed:
            raise ClientClosedError("this MockTransport is closed")
        self.requests.append(request)
        answer = self._handler(request)
        if inspect.isawaitable(answer):
            return await answer
        return answer

    async def aclose(self) -> None:
        self.closed = True


def _validated_proxy(proxy: str | None) -> URL | None:
    if proxy is None:
        return None
    try:
        url = URL(proxy)
    except (ValueError, TypeError):
        raise ValueError("proxy is not a valid URL") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"proxy must be an http:// or https:// URL, not {_safe_url(url)!r}")
    return url


def _tls_context(ca_bundle: str | None) -> ssl.SSLContext:
    """Verified TLS: ``ca_bundle`` if given, else the system store (which honours SSL_CERT_FILE)."""
    if ca_bundle is None:
        return _system_tls_context(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
    try:
        # create_default_context always verifies certificates and host names.
        return ssl.create_default_context(cafile=ca_bundle)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"ca_bundle {ca_bundle!r} cannot be loaded: {exc}") from None


@functools.lru_cache(maxsize=4)
def _system_tls_context(cert_file: str | None, cert_dir: str | None) -> ssl.SSLContext:
    """One per process and environment: loading the system store costs tens of milliseconds.

    The arguments are the variables OpenSSL reads, so that a changed SSL_CERT_FILE is honoured.
    """
    return ssl.create_default_context()


class AiohttpTransport:
    """The default transport: one aiohttp session with a keep-alive pool.

    * Redirects are never followed; bodies larger than ``max_response_bytes`` raise
      ``ResponseTooLargeError`` without being read further.
    * TLS is always verified, against ``ca_bundle`` when given (it replaces the system store),
      else against the system store, which honours ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``.
    * ``proxy`` (``http://[user:pass@]host:port``) carries every request; without it,
      ``trust_env`` reads ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY`` (never ``~/.netrc``).
    * ``session``: an ``aiohttp.ClientSession`` of the caller's, used as it is (its connector,
      trust_env, trace hooks) but with this transport's timeout, TLS checks, no redirects and no
      ``raise_for_status``; it is never closed here.

    Every failure is a ``TcvpcError``; none chains an aiohttp exception, because aiohttp's
    exceptions carry the request's headers (the signature and the token).
    """

    def __init__(
        self,
        *,
        max_connections: int = 100,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        proxy: str | None = None,
        trust_env: bool = True,
        ca_bundle: str | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be >= 1")
        if max_response_bytes < 1:
            raise ValueError("max_response_bytes must be >= 1")
        self._max_connections = max_connections
        self._max_bytes = max_response_bytes
        self._proxy = _validated_proxy(proxy)
        self._trust_env = trust_env
        self._ca_bundle = ca_bundle
        # Loaded now so that a bad bundle is a configuration error, not a failed request;
        # the system store is loaded at the first request (SSL_CERT_FILE is read then).
        self._ssl: ssl.SSLContext | None = _tls_context(ca_bundle) if ca_bundle else None
        self._env_proxies: dict[tuple[str, str], URL | None] = {}
        self._routes: dict[str, tuple[URL, URL | None, ssl.SSLContext | bool]] = {}
        self._user_session = session
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    def __repr__(self) -> str:
        proxy = _safe_url(self._proxy) if self._proxy is not None else None
        return (
            f"AiohttpTransport(proxy={proxy!r}, trust_env={self._trust_env}, "
            f"ca_bundle={self._ca_bundle!r}, max_response_bytes={self._max_bytes})"
        )

    def _tls(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = _tls_context(None)
        return self._ssl

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise ClientClosedError("this transport is closed; create a new client")
        if self._user_session is not None:
            if self._user_session.closed:
                raise ClientClosedError(
                    "the aiohttp.ClientSession given to tcvpc is closed; "
                    "keep it open for as long as the client is used"
                )
            return self._user_session
        loop = asyncio.get_running_loop()
        if self._session is not None and self._loop is not loop:
            # aiohttp would fail obscurely, or hang, on connections of another loop.
            raise EventLoopError(
                "this client's connections belong to another event loop; create the client "
                "inside the event loop (or the async function) that uses it"
            )
        if self._session is None or self._session.closed:
            self._loop = loop
            # TLS is chosen per request (send): plain-http endpoints load no trust store.
            connector = aiohttp.TCPConnector(limit=self._max_connections)
            self._session = aiohttp.ClientSession(
                connector=connector,
                # Proxies are resolved here (_proxy_for), so aiohttp never reads ~/.netrc
                # (which could add a second Authorization to our signed requests).
                trust_env=False,
                # A server must not be able to plant cookies that later requests carry.
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    def _proxy_for(self, url: URL) -> URL | None:
        """The proxy for ``url``: ``proxy=``, else the environment's, else none."""
        if self._proxy is not None:
            return self._proxy
        if not self._trust_env or url.host is None:
            return None
        key = (url.scheme, url.host)
        if key not in self._env_proxies:
            # Read once per host: the environment of a running service does not change, and
            # urllib parses every variable on each call. Like curl and requests, loopback hosts
            # are proxied too unless NO_PROXY names them.
            found = urllib.request.getproxies().get(url.scheme)
            if found and urllib.request.proxy_bypass(url.host):
                found = None
            self._env_proxies[key] = _validated_proxy(found) if found else None
        return self._env_proxies[key]

    def _route(self, url_text: str) -> tuple[URL, URL | None, ssl.SSLContext | bool]:
        """``(url, proxy, ssl)`` for a URL not in ``_routes`` yet: worked out once and kept
        (a client sends to one URL; send reads ``_routes`` first)."""
        url = _url(url_text)
        route = (url, self._proxy_for(url), self._tls() if url.scheme == "https" else True)
        if len(self._routes) < 64:
            self._routes[url_text] = route
        return route

    async def send(self, request: Request) -> Response:
        session = self._session
        # Our own session is closed only by aclose (which sets _closed): its ``closed`` property
        # need not be asked per request.
        if session is None or self._closed or not runs_here(self._loop):
            session = self._ensure_session()  # a first request, or the checks' messages
        url, proxy, tls = self._routes.get(request.url) or self._route(request.url)
        failure: TcvpcError
        # The failure is raised after the except block: raised inside, it would keep the aiohttp
        # exception as its __context__, and with it the request's signed headers.
        try:
            async with session.request(
                request.method,
                url,
                data=request.body,
                headers=request.headers,
                allow_redirects=False,  # the API never redirects: a 3xx is the caller's to judge
                proxy=proxy,
                ssl=tls,
                # Per request, so a caller's session cannot stretch, shorten or drop our
                # timeout, nor turn an HTTP status into an aiohttp exception. ``total`` covers
                # connecting, sending and reading the whole body.
                timeout=_client_timeout(request.timeout),
                raise_for_status=False,
            ) as resp:
                headers = resp.headers
                declared = resp.content_length
                if (
                    declared is not None
                    and declared <= self._max_bytes
                    and "content-encoding" not in headers
                ):
                    body = await resp.read()  # the common case: exactly the declared length
                else:
                    body = await self._read_capped(resp, request.label)
                # aiohttp's headers are read-only and case-insensitive: "date" finds "Date".
                return Response(resp.status, headers, body)
        except TcvpcError:
            raise
        except TimeoutError:
            failure = RequestTimeoutError(
                f"{request.label}: no complete answer within {request.timeout}s",
                action=request.label,
                outcome_unknown=True,
            )
        except aiohttp.ClientConnectorCertificateError as exc:
            failure = UntrustedCertificateError(
                f"{request.label}: TLS certificate of {exc.host}:{exc.port} not trusted "
                f"({exc.certificate_error}); pass ca_bundle= or set SSL_CERT_FILE "
                "if it is signed by your own CA",
                action=request.label,
                host=exc.host,
                port=exc.port,
                reason=str(exc.certificate_error),
            )
        except aiohttp.ClientSSLError as exc:
            failure = TransportError(
                f"{request.label}: TLS handshake with {exc.host}:{exc.port} failed: {exc.os_error}",
                action=request.label,
                outcome_unknown=False,
            )
        except aiohttp.ClientProxyConnectionError as exc:
            failure = TransportError(
                f"{request.label}: cannot connect to the proxy {exc.host}:{exc.port}: "
                f"{exc.os_error}",
                action=request.label,
                outcome_unknown=False,
            )
        except aiohttp.ClientHttpProxyError as exc:
            failure = TransportError(
                f"{request.label}: the proxy refused the request: HTTP {exc.status} {exc.message}",
                action=request.label,
                outcome_unknown=False,
            )
        except aiohttp.ClientConnectorError as exc:
            failure = TransportError(
                f"{request.label}: cannot connect to {exc.host}:{exc.port}: {exc.os_error}",
                action=request.label,
                outcome_unknown=False,
            )
        except aiohttp.ClientError as exc:
            failure = TransportError(
                f"{request.label}: connection failed after sending: {type(exc).__name__}",
                action=request.label,
                outcome_unknown=True,
            )
        except (RuntimeError, ValueError) as exc:
            # aiohttp's own complaints (a session closed under us, a netrc entry for the API
            # host in a caller's trust_env session): nothing was sent. Only the type and
            # message are kept: neither carries headers.
            failure = TransportError(
                f"{request.label}: aiohttp refused the request: {type(exc).__name__}: {exc}",
                action=request.label,
                outcome_unknown=False,
            )
        raise failure

    async def _read_capped(self, resp: aiohttp.ClientResponse, label: str) -> bytes:
        """An answer :meth:`send` cannot just read: no declared length, compressed, or declared
        beyond the cap. Read in chunks, counting the decompressed bytes."""
        declared = resp.content_length
        if declared is not None and declared > self._max_bytes:
            resp.close()  # do not read it, and do not reuse the connection
            raise ResponseTooLargeError(
                f"answer of {declared} bytes exceeds the {self._max_bytes}-byte cap",
                action=label,
                status=resp.status,
                excerpt="",
            )
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_chunked(_CHUNK):
            size += len(chunk)
            if size > self._max_bytes:
                resp.close()
                raise ResponseTooLargeError(
                    f"answer exceeds the {self._max_bytes}-byte cap",
                    action=label,
                    status=resp.status,
                    excerpt=chunks[0][:200].decode("utf-8", "replace") if chunks else "",
                )
            chunks.append(chunk)
        return b"".join(chunks)

    async def aclose(self) -> None:
        """Close the session this transport made (a caller's session stays open). Idempotent."""
        self._closed = True
        if self._session is not None:
            await self._session.close()
            self._session = None
