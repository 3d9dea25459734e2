"""VpcClient against aioresponses: envelope decoding, every error class and retry path."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import aiohttp
import pytest
from aioresponses import CallbackResult, aioresponses

from tcvpc import (
    AuthError,
    BadRequestError,
    ClientClosedError,
    Credential,
    DeleteOutcome,
    GatewayBusyError,
    InvalidStateError,
    LimiterRegistry,
    NotFoundError,
    RequestTimeoutError,
    ResponseError,
    RetryBudget,
    RetryEvent,
    RetryPolicy,
    ServerError,
    ThrottledError,
    TransportError,
    VpcClient,
)
from tcvpc.retry import Backoff

URL = "http://127.0.0.1:9/"
GW, CONN = "vpngw-7lcl5331", "vpnx-p0j11j28"
SECRET = "topsecretkey-do-not-leak"
TOKEN = "session-token-do-not-leak"


def ok(**extra: Any) -> dict[str, Any]:
    return {"Response": {"RequestId": "req-ok", **extra}}


def err(code: str, message: str = "boom", request_id: str = "req-err") -> dict[str, Any]:
    return {"Response": {"Error": {"Code": code, "Message": message}, "RequestId": request_id}}


@pytest.fixture
def mocked() -> AsyncIterator[aioresponses]:
    with aioresponses() as m:
        yield m


@pytest.fixture
async def client() -> AsyncIterator[VpcClient]:
    async with VpcClient(
        Credential("AKIDtest", SECRET, TOKEN),
        region="ap-guangzhou",
        endpoint=URL,
        retry_policy=RetryPolicy().without_waits(),
        rate=10_000,
    ) as c:
        yield c


def make_client(**options: Any) -> VpcClient:
    """A client for the mocked endpoint; ``options`` override or extend the defaults."""
    return VpcClient(
        Credential("AKIDtest", SECRET),
        **{"region": "ap-guangzhou", "endpoint": URL, **options},
    )


def sent(m: aioresponses) -> list[Any]:
    return [call for calls in m.requests.values() for call in calls]


async def delete(client: VpcClient, **kw: Any) -> Any:
    return await client.delete_vpn_connection(vpn_gateway_id=GW, vpn_connection_id=CONN, **kw)


async def test_success_sends_signed_headers_and_body(
    mocked: aioresponses, client: VpcClient
) -> None:
    mocked.post(URL, payload=ok())
    result = await delete(client)
    assert result.outcome is DeleteOutcome.DELETED
    assert (result.request_id, result.attempts, result.inferred) == ("req-ok", 1, False)
    (call,) = sent(mocked)
    headers = call.kwargs["headers"]
    assert headers["X-TC-Action"] == "DeleteVpnConnection"
    assert headers["X-TC-Version"] == "2017-03-12"
    assert headers["X-TC-Region"] == "ap-guangzhou"
    assert headers["X-TC-Token"] == TOKEN
    assert headers["Host"] == "127.0.0.1:9"
    assert headers["Authorization"].startswith("TC3-HMAC-SHA256 Credential=AKIDtest/")
    assert json.loads(call.kwargs["data"]) == {"VpnGatewayId": GW, "VpnConnectionId": CONN}


@pytest.mark.parametrize(
    ("code", "exc_type"),
    [
        ("InternalError", ServerError),
        ("InternalError.ModuleError", ServerError),
        ("ServiceUnavailable", ServerError),
        ("RequestLimitExceeded", ThrottledError),
        ("RequestLimitExceeded.UinLimitExceeded", ThrottledError),
        ("LimitExceeded.ActionLimited", ThrottledError),
        ("UnsupportedOperation.MutexOperationTaskRunning", GatewayBusyError),
        ("UnsupportedOperation.DeleteVpnConnInvalidState", InvalidStateError),
        ("ResourceInUse", Exception),
    ],
)
async def test_transient_codes_are_retried_then_succeed(
    mocked: aioresponses, client: VpcClient, code: str, exc_type: type[Exception]
) -> None:
    events: list[RetryEvent] = []
    client._on_retry = events.append
    mocked.post(URL, payload=err(code))
    mocked.post(URL, payload=err(code))
    mocked.post(URL, payload=ok())
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
    ],
)
async def test_permanent_codes_are_not_retried(
    mocked: aioresponses, client: VpcClient, code: str, exc_type: type[Exception]
) -> None:
    mocked.post(URL, payload=err(code, "no", "req-1"))
    mocked.post(URL, payload=ok())
    with pytest.raises(exc_type) as info:
        await delete(client)
    assert info.value.code == code  # type: ignore[attr-defined]
    assert info.value.request_id == "req-1"  # type: ignore[attr-defined]
    assert info.value.attempts == 1  # type: ignore[attr-defined]
    assert len(sent(mocked)) == 1


async def test_not_found_raises_unless_missing_ok(mocked: aioresponses, client: VpcClient) -> None:
    mocked.post(URL, payload=err("ResourceNotFound"))
    with pytest.raises(NotFoundError):
        await delete(client)
    for code in ("ResourceNotFound", "UnsupportedOperation.RecordNotExists"):
        mocked.post(URL, payload=err(code, request_id="req-gone"))
        result = await delete(client, missing_ok=True)
        assert result.outcome is DeleteOutcome.ALREADY_GONE
        assert (result.request_id, result.inferred, result.error_code) == ("req-gone", False, code)


@pytest.mark.parametrize(
    "failure",
    [
        {"exception": aiohttp.ServerDisconnectedError()},
        {"exception": TimeoutError()},
        {"status": 502, "body": "<html><body>502 Bad Gateway</body></html>"},
        {"status": 200, "body": '{"Response": {"RequestId": "x", "Err'},
    ],
)
async def test_unknown_outcome_then_not_found_counts_as_deleted(
    mocked: aioresponses, client: VpcClient, failure: dict[str, Any]
) -> None:
    mocked.post(URL, **failure)
    mocked.post(URL, payload=err("ResourceNotFound", request_id="req-2"))
    result = await delete(client)  # missing_ok=False: inferred deletion is still a deletion
    assert result.outcome is DeleteOutcome.DELETED
    assert result.inferred is True
    assert (result.attempts, result.request_id) == (2, "req-2")


async def test_refused_connection_is_known_not_sent(
    mocked: aioresponses, client: VpcClient
) -> None:
    conn_key = aiohttp.client_reqrep.ConnectionKey("127.0.0.1", 9, False, True, None, None, None)
    refused = aiohttp.ClientConnectorError(conn_key, OSError(111, "Connection refused"))
    mocked.post(URL, exception=refused)
    mocked.post(URL, payload=err("ResourceNotFound"))
    with pytest.raises(NotFoundError):
        await delete(client)  # nothing was sent the first time: not-found is a real not-found


@pytest.mark.parametrize(
    ("failure", "exc_type", "fragment"),
    [
        ({"status": 502, "body": "<html>Bad Gateway</html>"}, ResponseError, "HTTP 502"),
        ({"status": 200, "body": '{"Response": {"Req'}, ResponseError, "not JSON"),
        ({"status": 200, "body": "[1, 2]"}, ResponseError, "without a Response"),
        ({"status": 200, "payload": {"Response": {"Error": "x"}}}, ResponseError, "malformed"),
        ({"exception": aiohttp.ServerDisconnectedError()}, TransportError, "after sending"),
        ({"exception": TimeoutError()}, RequestTimeoutError, "no complete answer"),
    ],
)
async def test_broken_answers_become_typed_errors(
    mocked: aioresponses, failure: dict[str, Any], exc_type: type[Exception], fragment: str
) -> None:
    policy = RetryPolicy(transient=Backoff(0, 0, 2), max_attempts=2)
    async with make_client(retry_policy=policy) as c:
        mocked.post(URL, **failure)
        mocked.post(URL, **failure)
        with pytest.raises(exc_type) as info:
            await c.call("DescribeVpnConnections", {})
    assert fragment in str(info.value)
    assert info.value.attempts == 2  # type: ignore[attr-defined]
    assert SECRET not in str(info.value)


async def test_http_4xx_from_a_proxy_is_not_retried(
    mocked: aioresponses, client: VpcClient
) -> None:
    mocked.post(URL, status=403, body="forbidden by proxy")
    with pytest.raises(ResponseError) as info:
        await delete(client)
    assert info.value.status == 403
    assert len(sent(mocked)) == 1


async def test_content_type_with_charset_still_sees_errors(
    mocked: aioresponses, client: VpcClient
) -> None:
    mocked.post(
        URL,
        body=json.dumps(err("InvalidParameterValue.Malformed")),
        content_type="application/json; charset=utf-8",
    )
    with pytest.raises(BadRequestError):
        await delete(client)


async def test_per_kind_attempt_bound(mocked: aioresponses) -> None:
    policy = RetryPolicy(gateway_busy=Backoff(0, 0, 3)).without_waits()
    async with make_client(retry_policy=policy) as c:
        for _ in range(5):
            mocked.post(URL, payload=err("UnsupportedOperation.MutexOperationTaskRunning"))
        with pytest.raises(GatewayBusyError) as info:
            await delete(c)
    assert info.value.attempts == 3


async def test_per_call_policy_overrides_client_policy(
    mocked: aioresponses, client: VpcClient
) -> None:
    mocked.post(URL, payload=err("InternalError"))
    mocked.post(URL, payload=ok())
    with pytest.raises(ServerError):
        await delete(client, retry_policy=RetryPolicy.no_retries())


async def test_deadline_stops_retrying() -> None:
    policy = RetryPolicy(deadline=0.3, transient=Backoff(0.2, 0.2, 100), max_attempts=100)
    with aioresponses() as m:
        m.post(URL, payload=err("InternalError"), repeat=True)
        async with make_client(retry_policy=policy) as c:
            loop = asyncio.get_running_loop()
            start = loop.time()
            with pytest.raises(ServerError) as info:
                await delete(c)
            assert loop.time() - start < 5  # generous: the deadline is 0.3 s
    assert 1 < info.value.attempts < 100  # type: ignore[attr-defined]


async def test_retry_budget_limits_retries_in_an_outage(mocked: aioresponses) -> None:
    budget = RetryBudget(capacity=10, retry_cost=5)
    async with make_client(retry_policy=RetryPolicy().without_waits(), retry_budget=budget) as c:
        mocked.post(URL, payload=err("InternalError"), repeat=True)
        with pytest.raises(ServerError) as info:
            await delete(c)
        assert info.value.attempts == 3  # two retries paid for, the third refused
        with pytest.raises(ServerError) as info:
            await delete(c)
        assert info.value.attempts == 1  # budget empty: no retry at all
    assert budget.available == 0


async def test_budget_refills_on_success(mocked: aioresponses) -> None:
    budget = RetryBudget(capacity=20, retry_cost=5)
    async with make_client(retry_policy=RetryPolicy().without_waits(), retry_budget=budget) as c:
        mocked.post(URL, payload=err("InternalError"))
        mocked.post(URL, payload=ok())
        await delete(c)
        assert budget.available == 20  # the retried call returned what it spent


async def test_clock_skew_resigns_once_with_server_offset(
    mocked: aioresponses, client: VpcClient
) -> None:
    server_now = datetime.now(UTC) + timedelta(hours=2)
    stamps: list[int] = []

    def record(url: Any, **kwargs: Any) -> CallbackResult:
        stamps.append(int(kwargs["headers"]["X-TC-Timestamp"]))
        if len(stamps) == 1:
            return CallbackResult(
                payload=err("AuthFailure.SignatureExpire"),
                headers={"Date": format_datetime(server_now, usegmt=True)},
            )
        return CallbackResult(payload=ok())

    mocked.post(URL, callback=record, repeat=True)
    result = await delete(client)
    assert result.attempts == 2
    assert abs(stamps[1] - server_now.timestamp()) < 60
    assert stamps[1] - stamps[0] > 7000


async def test_signature_expired_twice_gives_up(mocked: aioresponses, client: VpcClient) -> None:
    mocked.post(URL, payload=err("AuthFailure.SignatureExpire"), repeat=True)
    with pytest.raises(AuthError) as info:
        await delete(client)
    assert info.value.attempts == 2  # type: ignore[attr-defined]


async def test_cancellation_is_not_retried(mocked: aioresponses, client: VpcClient) -> None:
    calls = 0

    async def slow(url: Any, **kwargs: Any) -> CallbackResult:
        nonlocal calls
        calls += 1
        await asyncio.sleep(10)
        return CallbackResult(payload=ok())

    mocked.post(URL, callback=slow, repeat=True)
    task = asyncio.create_task(delete(client))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert calls == 1


@pytest.mark.parametrize(
    ("gw", "conn", "fragment"),
    [(None, CONN, "must be a string"), (GW, "", "must not be empty"), (GW, 5, "must be a string")],
)
async def test_bad_ids_raise_before_sending(
    mocked: aioresponses, client: VpcClient, gw: Any, conn: Any, fragment: str
) -> None:
    with pytest.raises(ValueError, match=fragment):
        await client.delete_vpn_connection(vpn_gateway_id=gw, vpn_connection_id=conn)
    assert sent(mocked) == []


async def test_odd_ids_are_sent_with_one_warning(
    mocked: aioresponses, client: VpcClient, caplog: pytest.LogCaptureFixture
) -> None:
    mocked.post(URL, payload=ok(), repeat=True)
    with caplog.at_level(logging.WARNING, logger="tcvpc"):
        await client.delete_vpn_connection(vpn_gateway_id="gw-1", vpn_connection_id="VPNX-UPPER")
        await client.delete_vpn_connection(vpn_gateway_id="gw-2", vpn_connection_id="x")
    assert len([r for r in caplog.records if "do not look like" in r.message]) == 1
    assert len(sent(mocked)) == 2


async def test_closed_client_raises_clearly(mocked: aioresponses) -> None:
    c = make_client()
    async with c:
        pass
    with pytest.raises(ClientClosedError, match="closed"):
        await delete(c)
    await c.aclose()  # idempotent


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


async def test_secrets_never_in_logs_or_reprs(
    mocked: aioresponses, client: VpcClient, caplog: pytest.LogCaptureFixture
) -> None:
    mocked.post(URL, payload=err("InternalError"))
    mocked.post(URL, exception=aiohttp.ServerDisconnectedError())
    mocked.post(URL, payload=ok())
    with caplog.at_level(logging.DEBUG):
        await delete(client)
    text = caplog.text + repr(client) + repr(client._credentials)
    assert SECRET not in text
    assert TOKEN not in text
    assert "Signature=" not in text


async def test_describe_pages_by_100_and_chunks_ids(
    mocked: aioresponses, client: VpcClient
) -> None:
    def tunnel(i: int) -> dict[str, Any]:
        return {
            "VpnConnectionId": f"vpnx-{i:08d}",
            "VpnGatewayId": GW,
            "State": "AVAILABLE",
            "CreatedTime": "2022-07-22 14:05:07",
            "TagSet": [{"Key": "env", "Value": "test"}],
        }

    bodies: list[dict[str, Any]] = []

    def page(url: Any, **kwargs: Any) -> CallbackResult:
        body = json.loads(kwargs["data"])
        bodies.append(body)
        if "VpnConnectionIds" in body:
            items = [tunnel(int(i[5:])) for i in body["VpnConnectionIds"]]
            return CallbackResult(payload=ok(TotalCount=len(items), VpnConnectionSet=items))
        start, limit = body["Offset"], body["Limit"]
        items = [tunnel(i) for i in range(start, min(start + limit, 250))]
        return CallbackResult(payload=ok(TotalCount=250, VpnConnectionSet=items))

    mocked.post(URL, callback=page, repeat=True)
    found = [c async for c in client.describe_vpn_connections(filters={"vpn-gateway-id": GW})]
    assert len(found) == 250
    assert [b["Offset"] for b in bodies] == [0, 100, 200]
    assert all(b["Limit"] == 100 for b in bodies)
    assert bodies[0]["Filters"] == [{"Name": "vpn-gateway-id", "Values": [GW]}]
    assert found[0].tags[0].key == "env"
    assert found[0].created_time == datetime(2022, 7, 22, 14, 5, 7)

    bodies.clear()
    ids = [f"vpnx-{i:08d}" for i in range(230)]
    async for _ in client.describe_vpn_connections(vpn_connection_ids=ids):
        pass
    assert [len(b["VpnConnectionIds"]) for b in bodies] == [100, 100, 30]


async def test_describe_splits_wide_filters(mocked: aioresponses, client: VpcClient) -> None:
    bodies: list[dict[str, Any]] = []

    def page(url: Any, **kwargs: Any) -> CallbackResult:
        bodies.append(json.loads(kwargs["data"]))
        return CallbackResult(payload=ok(TotalCount=0, VpnConnectionSet=[]))

    mocked.post(URL, callback=page, repeat=True)
    gws = [f"vpngw-{i:08d}" for i in range(12)]
    async for _ in client.describe_vpn_connections(
        filters={"vpn-gateway-id": gws, "vpc-id": "vpc-1"}
    ):
        pass
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


async def test_errors_say_when_an_earlier_attempt_may_have_worked(mocked: aioresponses) -> None:
    policy = RetryPolicy(invalid_state=Backoff(0, 0, 1)).without_waits()
    async with make_client(retry_policy=policy) as c:
        mocked.post(URL, exception=aiohttp.ServerDisconnectedError())
        mocked.post(URL, payload=err("UnsupportedOperation.DeleteVpnConnInvalidState"))
        with pytest.raises(InvalidStateError) as info:
            await delete(c)
        assert info.value.after_unknown_outcome is True
        assert info.value.attempts == 2
        mocked.post(URL, payload=err("UnsupportedOperation.DeleteVpnConnInvalidState"))
        with pytest.raises(InvalidStateError) as info:
            await delete(c)
        assert info.value.after_unknown_outcome is False


async def test_http_429_slows_the_limiter_like_a_throttle_code(mocked: aioresponses) -> None:
    registry = LimiterRegistry(100)
    async with make_client(limiters=registry, retry_policy=RetryPolicy().without_waits()) as c:
        mocked.post(URL, status=429, body="slow down")
        mocked.post(URL, payload=ok())
        await c.call("DescribeVpnConnections")
    pacer = registry.get(account="AKIDtest", region="ap-guangzhou", action="DescribeVpnConnections")
    assert pacer.factor() < 1.0
