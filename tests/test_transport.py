"""AiohttpTransport against real loopback servers: hostile answers, caller sessions, TLS, proxies.

Small asyncio servers play what the API never does (redirect, stall, reset, endless bodies);
the emulator plays the API where the path through a proxy matters.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import socket
import ssl
import time
import traceback
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme
from aiohttp import web

from tcvpc import (
    AiohttpTransport,
    ApiError,
    ClientClosedError,
    Credential,
    DeleteOutcome,
    EventLoopError,
    Request,
    RequestTimeoutError,
    Response,
    ResponseError,
    ResponseTooLargeError,
    RetryPolicy,
    TcvpcError,
    TransportError,
    UntrustedCertificateError,
    VpcClient,
)
from tcvpc.emulator import DEMO_REGION, DEMO_SECRET_ID, DEMO_SECRET_KEY, Emulator, EmulatorConfig

GW, CONN = "vpngw-7lcl5331", "vpnx-p0j11j28"
SECRET = "transport-secret-key-do-not-leak"
TOKEN = "transport-session-token-do-not-leak"
OK_BODY = json.dumps({"Response": {"RequestId": "req-ok"}}).encode()
BOUND = 15.0  # seconds: a hang guard, not a timing claim


# -- a scriptable raw HTTP/1.1 server ------------------------------------------------------------


@dataclass
class Seen:
    """One request as the server read it."""

    line: str
    headers: dict[str, str]
    body: bytes


Behaviour = Callable[[Seen, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class RawServer:
    url: str
    seen: list[Seen] = field(default_factory=list)
    connections: int = 0


async def read_request(reader: asyncio.StreamReader) -> Seen | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    line, *rest = head.decode("latin-1").split("\r\n")
    headers = {}
    for item in rest:
        if ":" in item:
            name, value = item.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Seen(line, headers, body)


@asynccontextmanager
async def raw_server(behaviour: Behaviour, host: str = "127.0.0.1") -> AsyncIterator[RawServer]:
    """Serves each request on a connection with ``behaviour`` (which may close it)."""
    state = RawServer(url="")
    open_writers: set[asyncio.StreamWriter] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        open_writers.add(writer)
        state.connections += 1
        try:
            while not writer.is_closing():
                seen = await read_request(reader)
                if seen is None:
                    break
                state.seen.append(seen)
                await behaviour(seen, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            open_writers.discard(writer)
            writer.close()

    server = await asyncio.start_server(handle, host, 0)
    state.url = f"http://{host}:{server.sockets[0].getsockname()[1]}/"
    try:
        yield state
    finally:
        server.close()
        for writer in list(open_writers):  # Server.close_clients() is Python 3.13+
            writer.transport.abort()
        await server.wait_closed()


def reply(status: int, body: bytes = b"", **headers: str) -> Behaviour:
    async def send(seen: Seen, writer: asyncio.StreamWriter) -> None:
        lines = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}"]
        lines += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        await writer.drain()

    return send


def stall(seconds: float) -> Behaviour:
    async def send(seen: Seen, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(seconds)
        await reply(200, OK_BODY)(seen, writer)

    return send


async def reset(seen: Seen, writer: asyncio.StreamWriter) -> None:
    """The request was read (and could have been acted on); the connection dies unanswered."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    writer.transport.abort()


async def endless(seen: Seen, writer: asyncio.StreamWriter) -> None:
    """A 200 whose body never ends (no length, closed by the client)."""
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n")
    chunk = b"[" * 65536
    while not writer.is_closing():
        writer.write(chunk)
        await writer.drain()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def client_for(url: str, **options: Any) -> VpcClient:
    defaults: dict[str, Any] = {
        "region": "ap-guangzhou",
        "endpoint": url,
        "retry_policy": RetryPolicy.no_retries(),
        "timeout": 5.0,
    }
    return VpcClient(Credential("AKIDtransport", SECRET, TOKEN), **{**defaults, **options})


async def delete(client: VpcClient) -> Any:
    return await client.delete_vpn_connection(vpn_gateway_id=GW, vpn_connection_id=CONN)


async def failure_of(client: VpcClient) -> TcvpcError:
    """The error a delete ends with (this frame holds no secret for capture_locals to find)."""
    try:
        async with asyncio.timeout(BOUND):
            await delete(client)
    except TcvpcError as exc:
        return exc
    raise AssertionError("the delete succeeded")


# -- redirects -----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 307])
async def test_redirect_to_another_host_is_not_followed(status: int) -> None:
    async with (
        raw_server(reply(200, OK_BODY), host="127.0.0.2") as elsewhere,
        raw_server(reply(status, b"moved", Location=elsewhere.url)) as redirector,
        client_for(redirector.url, retry_policy=RetryPolicy().without_waits()) as client,
    ):
        exc = await failure_of(client)
        assert isinstance(exc, ResponseError)
        assert exc.status == status
        assert "not followed" in str(exc)
        assert exc.attempts == 1  # never retried: asking again cannot make it the API
        assert elsewhere.seen == []  # the signed delete never reached the other host
        assert len(redirector.seen) == 1


# -- size cap ------------------------------------------------------------------------------------


async def test_endless_body_is_cut_at_the_cap() -> None:
    async with (
        raw_server(endless) as server,
        client_for(server.url, max_response_bytes=1_000_000) as client,
    ):
        tracemalloc.start()
        try:
            exc = await failure_of(client)  # raises within BOUND, or the test fails
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert isinstance(exc, ResponseTooLargeError)
    assert "1000000-byte cap" in str(exc)
    assert exc.retry_kind is None
    assert peak < 32 * 1024 * 1024  # what was read stays near the cap


async def test_compressed_bomb_is_cut_at_the_cap() -> None:
    bomb = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip
    blob = bomb.compress(b"\0" * (64 * 1024 * 1024)) + bomb.flush()

    async def gzipped(seen: Seen, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n"
            + f"Content-Length: {len(blob)}\r\n\r\n".encode()
            + blob
        )
        await writer.drain()

    async with (
        raw_server(gzipped) as server,
        client_for(server.url, max_response_bytes=1_000_000) as client,
    ):
        tracemalloc.start()
        try:
            exc = await failure_of(client)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert isinstance(exc, ResponseTooLargeError)  # the cap counts decompressed bytes
    assert peak < 32 * 1024 * 1024


async def test_declared_oversize_is_refused_unread() -> None:
    async def huge(seen: Seen, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10000000000\r\n\r\n" + b"x" * 1000)
        await writer.drain()

    async with raw_server(huge) as server, client_for(server.url) as client:
        exc = await failure_of(client)
    assert isinstance(exc, ResponseTooLargeError)
    assert "10000000000 bytes" in str(exc)


async def test_answer_within_the_cap_is_read() -> None:
    async with (
        raw_server(reply(200, OK_BODY)) as server,
        client_for(server.url, max_response_bytes=len(OK_BODY)) as client,
    ):
        result = await delete(client)
    assert result.outcome is DeleteOutcome.DELETED


# -- connection failures -------------------------------------------------------------------------


async def test_refused_is_known_not_sent() -> None:
    async with client_for(f"http://127.0.0.1:{closed_port()}") as client:
        exc = await failure_of(client)
    assert type(exc) is TransportError
    assert exc.outcome_unknown is False
    assert "cannot connect" in str(exc)


async def test_reset_after_send_is_an_unknown_outcome() -> None:
    async with raw_server(reset) as server, client_for(server.url) as client:
        exc = await failure_of(client)
    assert type(exc) is TransportError
    assert exc.outcome_unknown is True
    assert len(server.seen) == 1


async def test_keep_alive_pool_reuses_connections() -> None:
    async with raw_server(reply(200, OK_BODY)) as server:
        transport = AiohttpTransport(max_connections=1)
        try:
            for _ in range(3):
                answer = await transport.send(Request("POST", server.url, {}, b"{}", label="A"))
                assert answer.status == 200
                assert answer.body == OK_BODY
                assert answer.headers["content-length"] == str(len(OK_BODY))
        finally:
            await transport.aclose()
    assert len(server.seen) == 3
    assert server.connections == 1  # one kept-alive connection carried all three
    with pytest.raises(ClientClosedError):
        await transport.send(Request("POST", server.url, {}))


# -- a caller's own aiohttp session --------------------------------------------------------------


async def test_session_cannot_stretch_the_client_timeout() -> None:
    async with (
        raw_server(stall(3.0)) as server,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session,
        client_for(server.url, session=session, timeout=0.5) as client,
    ):
        started = time.monotonic()
        exc = await failure_of(client)
        elapsed = time.monotonic() - started
        await client.aclose()
        assert not session.closed  # the caller's session is the caller's to close
    assert isinstance(exc, RequestTimeoutError)
    assert exc.outcome_unknown is True
    assert elapsed < 2.5  # the server stalls 3 s; the client's 0.5 s decides


async def test_session_cannot_shorten_the_client_timeout() -> None:
    async with (
        raw_server(stall(0.3)) as server,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.05)) as session,
        client_for(server.url, session=session, timeout=5.0) as client,
    ):
        result = await delete(client)
    assert result.outcome is DeleteOutcome.DELETED


async def test_session_raise_for_status_does_not_hide_the_status() -> None:
    answers: list[Behaviour] = []

    async def scripted(seen: Seen, writer: asyncio.StreamWriter) -> None:
        await answers.pop(0)(seen, writer)

    answers[:] = [reply(502, b"<html>bad gateway</html>")]
    async with (
        raw_server(scripted) as server,
        aiohttp.ClientSession(raise_for_status=True) as session,
        client_for(server.url, session=session) as client,
    ):
        exc = await failure_of(client)
        assert type(exc) is ResponseError
        assert exc.status == 502
    answers[:] = [reply(502, b"<html>bad gateway</html>"), reply(200, OK_BODY)]
    async with (
        raw_server(scripted) as server,
        aiohttp.ClientSession(raise_for_status=True) as session,
        client_for(server.url, session=session, retry_policy=RetryPolicy().without_waits()) as c,
    ):
        result = await delete(c)  # the 502 is retried like any 5xx, then the 200 is read
        assert result.attempts == 2


async def test_closed_session_is_a_clear_tcvpc_error() -> None:
    async with raw_server(reply(200, OK_BODY)) as server:
        session = aiohttp.ClientSession()
        await session.close()
        async with client_for(server.url, session=session) as client:
            exc = await failure_of(client)
        assert server.seen == []
    assert isinstance(exc, ClientClosedError)
    assert "ClientSession given to tcvpc is closed" in str(exc)


# -- secrets stay out of exceptions --------------------------------------------------------------


def chain(exc: BaseException | None) -> Iterator[BaseException]:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


@asynccontextmanager
async def scene(kind: str) -> AsyncIterator[tuple[str, RawServer | None]]:
    """An endpoint that fails in the way ``kind`` names."""
    behaviours: dict[str, Behaviour] = {
        "timeout": stall(5.0),
        "reset": reset,
        "5xx": reply(503, b"<html>unavailable</html>"),
        "3xx": reply(307, b"", Location="http://127.0.0.2:9/"),
        "oversized": endless,
        "api": reply(
            200,
            json.dumps(
                {"Response": {"Error": {"Code": "AuthFailure.TokenFailure", "Message": "m"}}}
            ).encode(),
        ),
    }
    if kind == "refused":
        yield f"http://127.0.0.1:{closed_port()}/", None
        return
    async with raw_server(behaviours[kind]) as server:
        yield server.url, server


@pytest.mark.parametrize("kind", ["timeout", "refused", "reset", "5xx", "3xx", "oversized", "api"])
async def test_no_secret_in_exceptions_chains_or_frames(kind: str) -> None:
    async with (
        scene(kind) as (url, server),
        client_for(url, timeout=0.5, max_response_bytes=100_000) as client,
    ):
        exc = await failure_of(client)
    signatures = []
    if server is not None and server.seen:
        auth = server.seen[0].headers["authorization"]
        signatures = re.findall(r"Signature=([0-9a-f]{64})", auth)
        assert signatures
        assert server.seen[0].headers["x-tc-token"] == TOKEN
    text = "".join(
        traceback.TracebackException(
            type(exc), exc, exc.__traceback__, capture_locals=True
        ).format()
    )
    for link in chain(exc):
        text += repr(link) + str(link)
        assert not type(link).__module__.startswith("aiohttp"), type(link)
    assert exc.__cause__ is None
    assert exc.__context__ is None
    for secret in [SECRET, TOKEN, "Signature=", *signatures]:
        assert secret not in text, (kind, secret)
    assert "<redacted>" in text  # the Request was in a frame, and its repr hid what it must


# -- TLS -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@asynccontextmanager
async def https_server(ca: trustme.CA) -> AsyncIterator[str]:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=OK_BODY, content_type="application/json")

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    app = web.Application()
    app.router.add_post("/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"https://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_tls_trusted_with_the_ca_bundle(ca: trustme.CA, tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    async with https_server(ca) as url, client_for(url, ca_bundle=str(bundle)) as client:
        result = await delete(client)
    assert result.outcome is DeleteOutcome.DELETED


async def test_tls_untrusted_without_it(ca: trustme.CA, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    async with https_server(ca) as url, client_for(url) as client:
        exc = await failure_of(client)
    assert type(exc) is UntrustedCertificateError  # a TransportError of its own (issue 11)
    assert isinstance(exc, TransportError)
    assert exc.host == "127.0.0.1"
    assert "verify failed" in exc.reason.lower()
    assert exc.outcome_unknown is False
    assert "TLS certificate" in str(exc)
    assert "not trusted" in str(exc)
    assert "ca_bundle" in str(exc)


async def test_tls_honours_ssl_cert_file(
    ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    async with https_server(ca) as url, client_for(url) as client:
        result = await delete(client)
    assert result.outcome is DeleteOutcome.DELETED


async def test_tls_is_verified_even_through_a_caller_session(
    ca: trustme.CA, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    async with (
        https_server(ca) as url,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as session,
        client_for(url, session=session) as client,
    ):
        exc = await failure_of(client)
    assert type(exc) is UntrustedCertificateError
    assert "not trusted" in str(exc)


async def test_the_client_against_the_emulator_over_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    config = EmulatorConfig(gateways=1, tunnels_per_gateway=2, tls=True)
    credential = Credential(DEMO_SECRET_ID, DEMO_SECRET_KEY)
    async with Emulator(config) as emu:
        async with VpcClient(
            credential, region=DEMO_REGION, endpoint=emu.url, ca_bundle=str(emu.ca_path)
        ) as client:
            found = [c async for c in client.describe_vpn_connections(filters={"vpc-id": "x"})]
            assert found == []
            (tunnel, _) = emu.tunnels()
            result = await client.delete_vpn_connection(
                vpn_gateway_id=tunnel["gateway"], vpn_connection_id=tunnel["id"]
            )
            assert result.outcome is DeleteOutcome.DELETED
        async with VpcClient(credential, region=DEMO_REGION, endpoint=emu.url) as untrusting:
            exc = await failure_of(untrusting)
            assert type(exc) is UntrustedCertificateError
            assert "not trusted" in str(exc)


# -- proxies -------------------------------------------------------------------------------------


@dataclass
class Proxy:
    url: str
    seen: list[Seen] = field(default_factory=list)


@asynccontextmanager
async def forward_proxy() -> AsyncIterator[Proxy]:
    """A plain-http forward proxy: one request per connection, relayed to its absolute URL."""
    state = Proxy(url="")

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            seen = await read_request(reader)
            if seen is None:
                return
            state.seen.append(seen)
            method, target, _ = seen.line.split(" ")
            match = re.fullmatch(r"http://([^/:]+):(\d+)(/.*)", target)
            assert match, f"not an absolute-form proxy request: {seen.line}"
            host, port, path = match.group(1), int(match.group(2)), match.group(3)
            up_reader, up_writer = await asyncio.open_connection(host, port)
            headers = {
                k: v
                for k, v in seen.headers.items()
                if k not in ("connection", "proxy-authorization", "proxy-connection")
            }
            head = [f"{method} {path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items())]
            head.append("Connection: close")
            up_writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + seen.body)
            await up_writer.drain()
            writer.write(await up_reader.read())  # the origin closes: the whole answer
            await writer.drain()
            up_writer.close()
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    state.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield state
    finally:
        server.close()
        await server.wait_closed()


def clear_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "REQUEST_METHOD"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


async def run_calls(url: str, **options: Any) -> VpcClient:
    """A few calls against the emulator at ``url``; returns the (closed) client."""
    client = VpcClient(
        Credential(DEMO_SECRET_ID, DEMO_SECRET_KEY),
        region=DEMO_REGION,
        endpoint=url,
        timeout=5.0,
        **options,
    )
    async with client:
        found = [c async for c in client.describe_vpn_connections(filters={"vpc-id": "x"})]
        assert found == []
        await client.call("DescribeVpnConnections", {"Limit": 1})
        await client.call("DescribeVpnConnections", {"Limit": 2})
    return client


async def test_every_request_passes_the_proxy_named_by_http_proxy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clear_proxy_env(monkeypatch)
    config = EmulatorConfig(gateways=1, tunnels_per_gateway=2, seed=1)
    async with Emulator(config) as emu, forward_proxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        client = await run_calls(emu.url)
    assert client.stats.requests_sent == 3
    assert len(proxy.seen) == 3
    origin = emu.url.rstrip("/")
    assert all(s.line.startswith(f"POST {origin}/ HTTP/1.1") for s in proxy.seen)
    assert all("proxy-authorization" not in s.headers for s in proxy.seen)  # none invented


async def test_no_proxy_bypasses_it(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_proxy_env(monkeypatch)
    config = EmulatorConfig(gateways=1, tunnels_per_gateway=1)
    async with Emulator(config) as emu, forward_proxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        await run_calls(emu.url)
        assert proxy.seen == []
        monkeypatch.delenv("NO_PROXY")
        await run_calls(emu.url, trust_env=False)
        assert proxy.seen == []
        await run_calls(emu.url)
        assert len(proxy.seen) == 3  # the same set-up without either goes through it


async def test_proxy_argument_with_credentials_never_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    clear_proxy_env(monkeypatch)
    config = EmulatorConfig(gateways=1, tunnels_per_gateway=1)
    async with Emulator(config) as emu, forward_proxy() as proxy:
        with caplog.at_level(logging.DEBUG):
            proxied = proxy.url.replace("http://", "http://proxyuser:proxy-pw-secret@")
            client = await run_calls(emu.url, proxy=proxied)
    assert len(proxy.seen) == 3
    expected = "Basic " + base64.b64encode(b"proxyuser:proxy-pw-secret").decode()
    assert all(s.headers.get("proxy-authorization") == expected for s in proxy.seen)
    assert "proxy-pw-secret" not in caplog.text + repr(client.transport) + repr(client)


async def test_unreachable_proxy_is_a_transport_error(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_proxy_env(monkeypatch)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{closed_port()}")
    async with client_for("http://127.0.0.1:9/") as client:
        exc = await failure_of(client)
    assert type(exc) is TransportError
    assert "proxy" in str(exc)
    assert exc.outcome_unknown is False


async def test_api_error_through_the_real_transport() -> None:
    body = json.dumps(
        {"Response": {"Error": {"Code": "ResourceNotFound", "Message": "m"}, "RequestId": "r"}}
    ).encode()
    answer = reply(200, body, Date="Tue, 15 Nov 1994 08:12:31 GMT")
    async with raw_server(answer) as server, client_for(server.url) as client:
        exc = await failure_of(client)
    assert isinstance(exc, ApiError)
    assert "body=" in repr(Response(200, {}, b"TmpSecretKey"))
    assert "Tmp" not in repr(Response(200, {}, b"TmpSecretKey"))
    assert exc.server_date is not None
    assert exc.server_date.year == 1994


async def test_a_client_used_from_a_second_event_loop_says_so() -> None:
    transport = AiohttpTransport()

    async def from_another_loop(url: str) -> None:
        with pytest.raises(EventLoopError, match="create the client inside the event loop"):
            await transport.send(Request("POST", url, {}, b"{}", label="A"))

    async with raw_server(reply(200, OK_BODY)) as server:
        try:
            answer = await transport.send(Request("POST", server.url, {}, b"{}", label="A"))
            assert answer.status == 200
            # A thread with its own loop, as a second thread or a per-test loop would have.
            await asyncio.to_thread(asyncio.run, from_another_loop(server.url))
            assert len(server.seen) == 1  # nothing sent from the other loop
        finally:
            await transport.aclose()
