"""VpcClient through a MockTransport: envelope decoding, every error class and retry path.

No HTTP here: the transport is a function of the request. The aiohttp transport itself is tested
against real loopback servers in test_transport.py.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tcvpc import (
    AuthError,
    BadRequestError,
    ClientClosedError,
    Credential,
    DeadlineExceededError,
    DeleteOutcome,
    GatewayBusyError,
    InvalidStateError,
    LimiterRegistry,
    MockTransport,
    NotFoundError,
    Request,
    RequestTimeoutError,
    ResourceBusyError,
    Response,
    ResponseError,
    RetryBudget,
    RetryEvent,
    RetryPolicy,
    ServerError,
    TransportError,
    VpcClient,
    __version__,
)
from tcvpc.endpoint import parse_endpoint
from tcvpc.retry import Backoff

URL = "http://127.0.0.1:9/"
GW, CONN = "vpngw-7lcl5331", "vpnx-p0j11j28"
SECRET = "topsecretkey-do-not-leak"
TOKEN = "session-token-do-not-leak"

Answer = Callable[[Request], Response | Awaitable[Response]]


def answer(
    document: Any = None, *, status: int = 200, body: bytes | None = None, **headers: str
) -> Answer:
    """An answer with a JSON ``document`` (or raw ``body``)."""
    raw = body if body is not None else json.dumps(document).encode()
    lowered = {k.lower().replace("_", "-"): v for k, v in headers.items()}
    return lambda request: Response(status, lowered, raw)


def ok(**extra: Any) -> Answer:
    return answer({"Response": {"RequestId": "req-ok", **extra}})


def err(code: str, message: str = "boom", request_id: str = "req-err", **headers: str) -> Answer:
    doc = {"Response": {"Error": {"Code": code, "Message": message}, "RequestId": request_id}}
    return answer(doc, **headers)


def fails(exc_type: type[TransportError] = TransportError, *, sent: bool = True) -> Answer:
    """A connection failure, fresh each time (the client annotates the exceptions it sees)."""

    def raise_it(request: Request) -> Response:
        raise exc_type("x: simulated", action=request.label, outcome_unknown=sent)

    return raise_it


class Script:
    """The scripted server behind a MockTransport: answers in order, then ``repeat``."""

    def __init__(self) -> None:
        self.answers: list[Answer] = []
        self.repeat: Answer | None = None
        self.transport = MockTransport(self)

    def then(self, *answers: Answer, repeat: bool = False) -> Script:
        if repeat:
            (self.repeat,) = answers
        else:
            self.answers.extend(answers)
        return self

    async def __call__(self, request: Request) -> Response:
        if self.answers:
            reply = self.answers.pop(0)
        elif self.repeat is not None:
            reply = self.repeat
        else:
            raise AssertionError(f"unexpected request {request!r}")
        result = reply(request)
        return await result if inspect.isawaitable(result) else result

    @property
    def requests(self) -> list[Request]:
        return self.transport.requests

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.body) for r in self.requests]


@pytest.fixture
def server() -> Script:
    return Script()


@pytest.fixture
async def client(server: Script) -> AsyncIterator[VpcClient]:
    async with VpcClient(
        Credential("AKIDtest", SECRET, TOKEN),
        region="ap-guangzhou",
        endpoint=URL,
        retry_policy=RetryPolicy().without_waits(),
        rate=10_000,
        transport=server.transport,
    ) as c:
        yield c


def make_client(server: Script, **options: Any) -> VpcClient:
    """A client for the scripted server; ``options`` override or extend the defaults."""
    return VpcClient(
        Credential("AKIDtest", SECRET),
        **{"region": "ap-guangzhou", "endpoint": URL, "transport": server.transport, **options},
    )


async def delete(client: VpcClient, **kw: Any) -> Any:
    return await client.delete_vpn_connection(vpn_gateway_id=GW, vpn_connection_id=CONN, **kw)


async def test_success_sends_signed_headers_and_body(server: Script, client: VpcClient) -> None:
    server.then(ok())
    result = await delete(client)
    metrics = client.metrics()
    assert metrics.queue_wait_seconds == {"DeleteVpnConnection": 0.0}  # a free permit: no wait
    assert metrics.call_seconds["DeleteVpnConnection"] > 0
    assert result.outcome is DeleteOutcome.DELETED
    assert (result.request_id, result.attempts, result.inferred) == ("req-ok", 1, False)
    (request,) = server.requests
    assert (request.method, request.url, request.label) == ("POST", URL, "DeleteVpnConnection")
    headers = request.headers
    assert headers["X-TC-Action"] == "DeleteVpnConnection"
    assert headers["X-TC-Version"] == "2017-03-12"
    assert headers["X-TC-Region"] == "ap-guangzhou"
    assert headers["User-Agent"] == f"tcvpc/{__version__}"  # in place of aiohttp's own
    assert headers["X-TC-Token"] == TOKEN
    assert headers["Host"] == "127.0.0.1:9"
    assert headers["Authorization"].startswith("TC3-HMAC-SHA256 Credential=AKIDtest/")
    assert json.loads(request.body) == {"VpnGatewayId": GW, "VpnConnectionId": CONN}
    assert request.timeout == 30.0
    assert TOKEN not in repr(request)
    assert "Signature=" not in repr(request)


@pytest.mark.parametrize(
    "code",
    [
        "InternalError",
        "InternalError.ModuleError",
        "InternalServerError",
        "ServiceUnavailable",
        "RequestLimitExceeded",
        "RequestLimitExceeded.UinLimitExceeded",
        "LimitExceeded.ActionLimited",
        "UnsupportedOperation.MutexOperationTaskRunning",
        "UnsupportedOperation.DeleteVpnConnInvalidState",
        "ResourceInUse",
    ],
)
async def test_transient_codes_are_retried_then_succeed(
    server: Script, client: VpcClient, code: str
) -> None:
    events: list[RetryEvent] = []
    client._on_retry = events.append
    server.then(err(code), err(code), ok())
    result = await delete(client)
    assert result.attempts == 3
    assert [e.code for e in events] == [code, code]
    assert client.stats.retries_by_code[code] == 2
    assert client.stats.requests_sent == 3


@pytest.mark.parametrize(
    ("code", "exc_type"),
    [
        ("AuthFailure.SignatureFailure", AuthError),
        ("AuthFailure.SecretIdNotFound", AuthError),
        ("UnauthorizedOperation", AuthError),
        ("InvalidParameterValue.Malformed", BadRequestError),
        ("MissingParameter", BadRequestError),
        ("UnsupportedOperation", BadRequestError),
        ("SomethingNobodyDocumented", BadRequestError),
        ("ResourceInUse.Address", BadRequestError),
        ("ResourceUnavailable.ServiceWhiteListNotAdded", BadRequestError),
    ],
)
async def test_permanent_codes_are_not_retried(
    server: Script, client: VpcClient, code: str, exc_type: type[Exception]
) -> None:
    server.then(err(code, "no", "req-1"), ok())
    with pytest.raises(exc_type) as info:
        await delete(client)
    assert info.value.code == code  # type: ignore[attr-defined]
    assert info.value.request_id == "req-1"  # type: ignore[attr-defined]
    assert info.value.attempts == 1  # type: ignore[attr-defined]
    assert len(server.requests) == 1


async def test_not_found_raises_unless_missing_ok(server: Script, client: VpcClient) -> None:
    server.then(err("ResourceNotFound"))
    with pytest.raises(NotFoundError):
        await delete(client)
    for code in ("ResourceNotFound", "UnsupportedOperation.RecordNotExists"):
        server.then(err(code, request_id="req-gone"))
        result = await delete(client, missing_ok=True)
        assert result.outcome is DeleteOutcome.ALREADY_GONE
        assert (result.request_id, result.inferred, result.error_code) == ("req-gone", False, code)


@pytest.mark.parametrize(
    "failure",
    [
        fails(TransportError),
        fails(RequestTimeoutError),
        answer(status=502, body=b"<html><body>502 Bad Gateway</body></html>"),
        answer(body=b'{"Response": {"RequestId": "x", "Err'),
    ],
    ids=["dropped", "timeout", "502", "truncated"],
)
async def test_unknown_outcome_then_not_found_counts_as_deleted(
    server: Script, client: VpcClient, failure: Answer
) -> None:
    server.then(failure, err("ResourceNotFound", request_id="req-2"))
    result = await delete(client)  # missing_ok=False: inferred deletion is still a deletion
    assert result.outcome is DeleteOutcome.DELETED
    assert result.inferred is True
    assert (result.attempts, result.request_id) == (2, "req-2")


async def test_refused_connection_is_known_not_sent(server: Script, client: VpcClient) -> None:
    server.then(fails(TransportError, sent=False), err("ResourceNotFound"))
    with pytest.raises(NotFoundError):
        await delete(client)  # nothing was sent the first time: not-found is a real not-found


@pytest.mark.parametrize(
    ("failure", "exc_type", "fragment"),
    [
        (answer(status=502, body=b"<html>Bad Gateway</html>"), ResponseError, "HTTP 502"),
        (answer(body=b'{"Response": {"Req'), ResponseError, "not JSON"),
        (answer(body=b"[1, 2]"), ResponseError, "without a Response"),
        (answer({"Response": {"Error": "x"}}), ResponseError, "malformed"),
        (fails(TransportError), TransportError, "simulated"),
        (fails(RequestTimeoutError), RequestTimeoutError, "simulated"),
    ],
)
async def test_broken_answers_become_typed_errors(
    server: Script, failure: Answer, exc_type: type[Exception], fragment: str
) -> None:
    policy = RetryPolicy(transient=Backoff(0, 0, 2), max_attempts=2)
    server.then(failure, failure)
    async with make_client(server, retry_policy=policy) as c:
        with pytest.raises(exc_type) as info:
            await c.call("DescribeVpnConnections", {})
    assert fragment in str(info.value)
    assert info.value.attempts == 2  # type: ignore[attr-defined]
    assert SECRET not in str(info.value)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_redirect_is_a_response_error_never_retried(
    server: Script, client: VpcClient, status: int
) -> None:
    server.then(answer(status=status, body=b"", location="http://127.0.0.2:9/"), ok())
    with pytest.raises(
        ResponseError, match=re.escape("redirect to 'http://127.0.0.2:9/' not followed")
    ):
        await delete(client)
    assert len(server.requests) == 1
    assert client.stats.errors_by_code[f"HTTP {status}"] == 1


async def test_http_4xx_from_a_proxy_is_not_retried(server: Script, client: VpcClient) -> None:
    server.then(answer(status=403, body=b"forbidden by proxy"))
    with pytest.raises(ResponseError) as info:
        await delete(client)
    assert info.value.status == 403
    assert len(server.requests) == 1


async def test_per_kind_attempt_bound(server: Script) -> None:
    policy = RetryPolicy(gateway_busy=Backoff(0, 0, 3)).without_waits()
    server.then(err("UnsupportedOperation.MutexOperationTaskRunning"), repeat=True)
    async with make_client(server, retry_policy=policy) as c:
        with pytest.raises(GatewayBusyError) as info:
            await delete(c)
    assert info.value.attempts == 3


async def test_busy_codes_have_a_bounded_schedule(server: Script) -> None:
    policy = RetryPolicy(resource_busy=Backoff(0, 0, 2)).without_waits()
    server.then(err("ResourceUnavailable"), repeat=True)
    async with make_client(server, retry_policy=policy) as c:
        with pytest.raises(ResourceBusyError) as info:
            await delete(c)
    assert info.value.attempts == 2


async def test_per_call_policy_overrides_client_policy(server: Script, client: VpcClient) -> None:
    server.then(err("InternalError"), ok())
    with pytest.raises(ServerError):
        await delete(client, retry_policy=RetryPolicy.no_retries())


async def test_deadline_stops_retrying(server: Script) -> None:
    policy = RetryPolicy(deadline=0.3, transient=Backoff(0.2, 0.2, 100), max_attempts=100)
    server.then(err("InternalError"), repeat=True)
    async with make_client(server, retry_policy=policy) as c:
        loop = asyncio.get_running_loop()
        start = loop.time()
        # The last answer's error; or, when a loaded machine makes the next attempt miss the
        # deadline it was scheduled within, the deadline's own typed error.
        with pytest.raises((ServerError, DeadlineExceededError)) as info:
            await delete(c)
        assert loop.time() - start < 5  # generous: the deadline is 0.3 s
    assert 1 < info.value.attempts < 100  # type: ignore[attr-defined]


async def test_retry_budget_limits_retries_in_an_outage(server: Script) -> None:
    budget = RetryBudget(capacity=10, retry_cost=5)
    server.then(err("InternalError"), repeat=True)
    policy = RetryPolicy().without_waits()
    async with make_client(server, retry_policy=policy, retry_budget=budget) as c:
        with pytest.raises(ServerError) as info:
            await delete(c)
        assert info.value.attempts == 3  # two retries paid for, the third refused
        with pytest.raises(ServerError) as info:
            await delete(c)
        assert info.value.attempts == 1  # budget empty: no retry at all
    assert budget.available == 0


async def test_budget_refills_on_success(server: Script) -> None:
    budget = RetryBudget(capacity=20, retry_cost=5)
    server.then(err("InternalError"), ok())
    policy = RetryPolicy().without_waits()
    async with make_client(server, retry_policy=policy, retry_budget=budget) as c:
        await delete(c)
        assert budget.available == 20  # the retried call returned what it spent


async def test_clock_skew_resigns_once_with_server_offset(
    server: Script, client: VpcClient
) -> None:
    server_now = datetime.now(UTC) + timedelta(hours=2)
    server.then(err("AuthFailure.SignatureExpire", date=format_datetime(server_now, usegmt=True)))
    server.then(ok())
    result = await delete(client)
    assert result.attempts == 2
    stamps = [int(r.headers["X-TC-Timestamp"]) for r in server.requests]
    assert abs(stamps[1] - server_now.timestamp()) < 60
    assert stamps[1] - stamps[0] > 7000


async def test_signature_expired_twice_gives_up(server: Script, client: VpcClient) -> None:
    server.then(err("AuthFailure.SignatureExpire"), repeat=True)
    with pytest.raises(AuthError) as info:
        await delete(client)
    assert info.value.attempts == 2  # type: ignore[attr-defined]


async def test_cancellation_is_not_retried(server: Script, client: VpcClient) -> None:
    async def slow(request: Request) -> Response:
        await asyncio.sleep(10)
        return ok()(request)  # type: ignore[return-value]

    server.then(slow, repeat=True)
    task = asyncio.create_task(delete(client))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("gw", "conn", "fragment"),
    [(None, CONN, "must be a string"), (GW, "", "must not be empty"), (GW, 5, "must be a string")],
)
async def test_bad_ids_raise_before_sending(
    server: Script, client: VpcClient, gw: Any, conn: Any, fragment: str
) -> None:
    with pytest.raises(ValueError, match=fragment):
        await client.delete_vpn_connection(vpn_gateway_id=gw, vpn_connection_id=conn)
    assert server.requests == []


async def test_odd_ids_are_sent_with_one_warning(
    server: Script, client: VpcClient, caplog: pytest.LogCaptureFixture
) -> None:
    server.then(ok(), repeat=True)
    with caplog.at_level(logging.WARNING, logger="tcvpc"):
        await client.delete_vpn_connection(vpn_gateway_id="gw-1", vpn_connection_id="VPNX-UPPER")
        await client.delete_vpn_connection(vpn_gateway_id="gw-2", vpn_connection_id="x")
    assert len([r for r in caplog.records if "do not look like" in r.message]) == 1
    assert len(server.requests) == 2


async def test_closed_client_raises_clearly(server: Script) -> None:
    c = make_client(server)
    async with c:
        pass
    with pytest.raises(ClientClosedError, match="closed"):
        await delete(c)
    await c.aclose()  # idempotent
    assert server.requests == []


async def test_client_closes_only_the_transport_it_made(server: Script) -> None:
    async with make_client(server) as c:
        assert c.transport is server.transport
    assert not server.transport.closed  # the caller's transport: the caller closes it
    own = VpcClient(Credential("AKIDtest", SECRET), region="ap-guangzhou", endpoint=URL)
    own_transport = own.transport
    await own.aclose()
    with pytest.raises(ClientClosedError):
        await own_transport.send(Request("POST", URL, {}))


def test_configuration_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    cred = Credential("AKIDtest", SECRET)
    monkeypatch.delenv("TENCENTCLOUD_REGION", raising=False)
    with pytest.raises(ValueError, match="region is required"):
        VpcClient(cred)
    monkeypatch.setenv("TENCENTCLOUD_REGION", "ap-beijing")
    assert VpcClient(cred).region == "ap-beijing"
    with pytest.raises(ValueError, match="plain http"):
        VpcClient(cred, endpoint="http://vpc.tencentcloudapi.com")
    assert VpcClient(cred, endpoint="http://10.0.0.1", allow_insecure=True).endpoint.url
    assert VpcClient(cred).endpoint.url == "https://vpc.tencentcloudapi.com/"
    with pytest.raises(ValueError, match="language"):
        VpcClient(cred, language="fr")
    with pytest.raises(ValueError, match="max_connections"):
        VpcClient(cred, max_connections=0)
    with pytest.raises(ValueError, match="max_response_bytes"):
        VpcClient(cred, max_response_bytes=0)
    with pytest.raises(ValueError, match="proxy must be"):
        VpcClient(cred, proxy="socks5://127.0.0.1:1080")
    with pytest.raises(ValueError, match="ca_bundle"):
        VpcClient(cred, ca_bundle="/nonexistent/ca.pem")
    with pytest.raises(ValueError, match="transport= or"):
        VpcClient(cred, transport=MockTransport(ok()), proxy="http://127.0.0.1:3128")


async def test_secrets_never_in_logs_or_reprs(
    server: Script, client: VpcClient, caplog: pytest.LogCaptureFixture
) -> None:
    server.then(err("InternalError"), fails(TransportError), ok())
    with caplog.at_level(logging.DEBUG):
        await delete(client)
    text = caplog.text + repr(client) + repr(client._credentials) + repr(server.requests)
    assert SECRET not in text
    assert TOKEN not in text
    assert "Signature=" not in text


async def test_describe_pages_by_100_and_chunks_ids(server: Script, client: VpcClient) -> None:
    def tunnel(i: int) -> dict[str, Any]:
        return {
            "VpnConnectionId": f"vpnx-{i:08d}",
            "VpnGatewayId": GW,
            "State": "AVAILABLE",
            "CreatedTime": "2022-07-22 14:05:07",
            "TagSet": [{"Key": "env", "Value": "test"}],
        }

    def page(request: Request) -> Response:
        body = json.loads(request.body)
        if "VpnConnectionIds" in body:
            items = [tunnel(int(i[5:])) for i in body["VpnConnectionIds"]]
            return ok(TotalCount=len(items), VpnConnectionSet=items)(request)  # type: ignore[return-value]
        start, limit = body["Offset"], body["Limit"]
        items = [tunnel(i) for i in range(start, min(start + limit, 250))]
        return ok(TotalCount=250, VpnConnectionSet=items)(request)  # type: ignore[return-value]

    server.then(page, repeat=True)
    found = [c async for c in client.describe_vpn_connections(filters={"vpn-gateway-id": GW})]
    assert len(found) == 250
    bodies = server.bodies()
    assert [b["Offset"] for b in bodies] == [0, 100, 200]
    assert all(b["Limit"] == 100 for b in bodies)
    assert bodies[0]["Filters"] == [{"Name": "vpn-gateway-id", "Values": [GW]}]
    assert found[0].tags[0].key == "env"
    assert found[0].created_time == datetime(2022, 7, 22, 14, 5, 7)

    server.requests.clear()
    ids = [f"vpnx-{i:08d}" for i in range(230)]
    async for _ in client.describe_vpn_connections(vpn_connection_ids=ids):
        pass
    assert [len(b["VpnConnectionIds"]) for b in server.bodies()] == [100, 100, 30]


async def test_describe_splits_wide_filters(server: Script, client: VpcClient) -> None:
    server.then(ok(TotalCount=0, VpnConnectionSet=[]), repeat=True)
    gws = [f"vpngw-{i:08d}" for i in range(12)]
    async for _ in client.describe_vpn_connections(
        filters={"vpn-gateway-id": gws, "vpc-id": "vpc-1"}
    ):
        pass
    bodies = server.bodies()
    assert [len(b["Filters"][0]["Values"]) for b in bodies] == [5, 5, 2]
    assert all(b["Filters"][1] == {"Name": "vpc-id", "Values": ["vpc-1"]} for b in bodies)
    with pytest.raises(ValueError, match="not both"):
        async for _ in client.describe_vpn_connections(
            vpn_connection_ids=["a"], filters={"x": "y"}
        ):
            pass
    with pytest.raises(ValueError, match="at most 10"):
        async for _ in client.describe_vpn_connections(filters={str(i): "v" for i in range(11)}):
            pass


async def test_errors_say_when_an_earlier_attempt_may_have_worked(server: Script) -> None:
    policy = RetryPolicy(invalid_state=Backoff(0, 0, 1)).without_waits()
    async with make_client(server, retry_policy=policy) as c:
        server.then(fails(TransportError), err("UnsupportedOperation.DeleteVpnConnInvalidState"))
        with pytest.raises(InvalidStateError) as info:
            await delete(c)
        assert info.value.after_unknown_outcome is True
        assert info.value.attempts == 2
        server.then(err("UnsupportedOperation.DeleteVpnConnInvalidState"))
        with pytest.raises(InvalidStateError) as info:
            await delete(c)
        assert info.value.after_unknown_outcome is False


async def test_http_429_slows_the_limiter_and_counts_as_throttled(server: Script) -> None:
    registry = LimiterRegistry(100, persist=0)  # slow down at the first throttle
    server.then(answer(status=429, body=b"slow down"), err("RequestLimitExceeded"), ok())
    policy = RetryPolicy().without_waits()
    async with make_client(server, limiters=registry, retry_policy=policy) as c:
        await c.call("DescribeVpnConnections")
        assert c.stats.throttled == 2  # decided by the error's kind, HTTP status or API code
        assert c.stats.errors_by_code == {"HTTP 429": 1, "RequestLimitExceeded": 1}
        limiter = registry.get(
            account="AKIDtest", region="ap-guangzhou", action="DescribeVpnConnections"
        )
        assert limiter.rate < registry.rate


async def test_a_changed_region_or_endpoint_is_honoured_by_the_next_call(
    server: Script, client: VpcClient
) -> None:
    """The client keeps each action's constant headers and limiter: changing the public
    ``region`` or ``endpoint`` between calls must still change what is sent and which budget
    is spent."""
    server.then(ok(), ok(), ok())
    await delete(client)
    client.region = "ap-shanghai"
    await delete(client)
    client.endpoint = parse_endpoint("http://127.0.0.2:9", allow_insecure=False)
    await delete(client)
    first, second, third = server.requests
    assert first.headers["X-TC-Region"] == "ap-guangzhou"
    assert second.headers["X-TC-Region"] == "ap-shanghai"
    assert (second.url, second.headers["Host"]) == (URL, "127.0.0.1:9")
    assert (third.url, third.headers["Host"]) == ("http://127.0.0.2:9/", "127.0.0.2:9")
    assert third.headers["X-TC-Region"] == "ap-shanghai"
    # Each region has its own budget: the second call took a permit from Shanghai's limiter.
    shanghai = client.limiters.get(
        account="AKIDtest", region="ap-shanghai", action="DeleteVpnConnection"
    )
    assert client._limiters_used["DeleteVpnConnection"] is shanghai


@given(st.text(), st.text())
def test_a_delete_s_body_is_what_the_json_encoder_writes(gateway: str, connection: str) -> None:
    """The delete's hand-built body: the encoder's bytes exactly, whatever the IDs hold."""
    from tcvpc.client import _JSON, _delete_body

    params = {"VpnGatewayId": gateway, "VpnConnectionId": connection}
    try:
        expected = _JSON.encode(params).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: neither can send it
        with pytest.raises(UnicodeEncodeError):
            _delete_body(gateway, connection)
        return
    assert _delete_body(gateway, connection) == expected
    assert json.loads(expected) == params


@pytest.mark.parametrize("action", ["", 123, None])
async def test_call_refuses_an_action_that_is_no_name(
    server: Script, client: VpcClient, action: Any
) -> None:
    with pytest.raises(ValueError, match="action must be a non-empty string"):
        await client.call(action)
    assert server.requests == []  # nothing sent


@pytest.mark.parametrize(
    "setting",
    [{"capacity": -1}, {"retry_cost": 1.5}, {"success_refund": -1}, {"timeout_cost": True}],
)
def test_a_retry_budget_refuses_settings_that_are_no_token_counts(setting: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be an int >= 0"):
        RetryBudget(**setting)


async def test_a_call_that_succeeds_after_a_retry_keeps_no_error_in_a_cycle(
    server: Script, client: VpcClient
) -> None:
    """The replayed first failure's traceback holds _call's and _retry's frames: neither may keep
    the error in a local, or every retried call leaves it (and its frames) to the collector."""
    import gc

    server.then(err("InternalError"), ok(), err("InternalError"), ok())
    await delete(client)  # warm-up: first-use caches
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        result = await delete(client)
        assert result.attempts == 2
        gc.collect()
        kept = [o for o in gc.garbage if isinstance(o, BaseException)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert kept == []
