"""The emulator over HTTP: envelope, protocol checks, actions, rate limit, skew and stats."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import pytest
from emu_helpers import call, sign_headers

from tcvpc.emulator import DEMO_REGION, Emulator, EmulatorConfig


@pytest.fixture
async def emu() -> Any:
    config = EmulatorConfig(gateways=3, tunnels_per_gateway=4, delete_seconds=0.3, seed=1)
    async with Emulator(config) as emulator:
        yield emulator


def first_tunnel(emu: Emulator, n: int = 0) -> tuple[str, str]:
    t = emu.tunnels()[n]
    return t["gateway"], t["id"]


async def test_success_envelope(emu: Emulator, http: aiohttp.ClientSession) -> None:
    answer = await call(http, emu.url, "DescribeVpnConnections", {})
    assert answer.status == 200
    assert answer.headers["Content-Type"] == "application/json"
    response = answer.response
    assert uuid.UUID(response["RequestId"]).version == 4
    assert response["TotalCount"] == 12
    assert len(response["VpnConnectionSet"]) == 12  # default Limit is 20
    tunnel = response["VpnConnectionSet"][0]
    for name in (
        "VpnConnectionId",
        "VpnConnectionName",
        "VpcId",
        "VpnGatewayId",
        "CustomerGatewayId",
        "State",
        "NetStatus",
        "CreatedTime",
        "TagSet",
    ):
        assert name in tunnel
    assert tunnel["State"] == "AVAILABLE"
    time.strptime(tunnel["CreatedTime"], "%Y-%m-%d %H:%M:%S")
    assert tunnel["VpnConnectionId"].startswith("vpnx-")
    assert tunnel["VpcId"].startswith("vpc-")


async def test_error_envelope_and_date_header(emu: Emulator, http: aiohttp.ClientSession) -> None:
    answer = await call(http, emu.url, "DeleteVpnConnection", {"VpnGatewayId": "vpngw-00000000"})
    assert answer.status == 200
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.response["Error"] == {
        "Code": "MissingParameter",
        "Message": answer.response["Error"]["Message"],
    }
    assert "RequestId" in answer.response
    served = parsedate_to_datetime(answer.headers["Date"]).timestamp()
    assert abs(served - time.time()) < 60


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"X-TC-Action": None}, "MissingParameter"),
        ({"X-TC-Action": "RunInstances"}, "InvalidAction"),
        ({"X-TC-Version": None}, "MissingParameter"),
        ({"X-TC-Version": "2020-01-01"}, "NoSuchVersion"),
        ({"X-TC-Region": None}, "MissingParameter"),
        ({"X-TC-Region": "mars-olympus"}, "UnsupportedRegion"),
        ({"X-TC-Timestamp": None}, "MissingParameter"),
        ({"X-TC-Timestamp": "yesterday"}, "InvalidParameter"),
        ({"Authorization": None}, "AuthFailure.InvalidAuthorization"),
        ({"Authorization": "TC3-HMAC-SHA256 nonsense"}, "AuthFailure.InvalidAuthorization"),
        ({"Content-Type": "text/plain"}, "InvalidParameter"),
    ],
)
async def test_protocol_checks(
    emu: Emulator, http: aiohttp.ClientSession, overrides: dict[str, str | None], code: str
) -> None:
    answer = await call(http, emu.url, "DescribeVpnConnections", {}, header_overrides=overrides)
    assert answer.status == 200
    assert answer.code == code


async def test_other_methods_and_paths_are_unsupported(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    async with http.put(emu.url + "/") as resp:
        assert (await resp.json())["Response"]["Error"]["Code"] == "UnsupportedProtocol"
    async with http.get(emu.url + "/") as resp:  # GET is a signing path: it misses X-TC-Action
        assert (await resp.json())["Response"]["Error"]["Code"] == "MissingParameter"
    body = b"{}"
    headers = sign_headers(host=emu.endpoint, action="DescribeVpnConnections", body=body)
    async with http.post(emu.url + "/v2", data=body, headers=headers) as resp:
        assert (await resp.json())["Response"]["Error"]["Code"] == "UnsupportedProtocol"


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"secret_key": "wrong-key"}, "AuthFailure.SignatureFailure"),
        ({"secret_id": "AKIDnobody"}, "AuthFailure.SecretIdNotFound"),
        ({"timestamp": int(time.time()) - 400}, "AuthFailure.SignatureExpire"),
        ({"service": "cvm"}, "AuthFailure.InvalidAuthorization"),
    ],
)
async def test_auth_failures(
    emu: Emulator, http: aiohttp.ClientSession, kwargs: dict[str, Any], code: str
) -> None:
    answer = await call(http, emu.url, "DescribeVpnConnections", {}, **kwargs)
    assert answer.code == code


async def test_signature_covers_body_and_any_signed_headers(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    body = json.dumps({"Limit": 1}).encode()
    headers = sign_headers(
        host=emu.endpoint,
        action="DescribeVpnConnections",
        body=body,
        content_type="application/json; charset=utf-8",
        extra_signed={"X-TC-Action": "DescribeVpnConnections"},
    )
    async with http.post(emu.url + "/", data=body, headers=headers) as resp:
        assert "Error" not in (await resp.json())["Response"]
    async with http.post(emu.url + "/", data=body + b" ", headers=headers) as resp:
        payload = await resp.json()
        assert payload["Response"]["Error"]["Code"] == "AuthFailure.SignatureFailure"


async def test_token_is_accepted(emu: Emulator, http: aiohttp.ClientSession) -> None:
    answer = await call(
        http, emu.url, "DescribeVpnConnections", {}, header_overrides={"X-TC-Token": "tok"}
    )
    assert answer.code is None


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"VpnConnectionId": "vpnx-00000000"}, "MissingParameter"),
        ({"VpnGatewayId": 1, "VpnConnectionId": "vpnx-00000000"}, "InvalidParameter"),
        (
            {"VpnGatewayId": "vpngw-0", "VpnConnectionId": "vpnx-00000000"},
            "InvalidParameterValue.Malformed",
        ),
        (
            {"VpnGatewayId": "vpngw-00000000", "VpnConnectionId": "vpnx-00000000"},
            "ResourceNotFound",
        ),
        (
            {"VpnGatewayId": "vpngw-00000000", "VpnConnectionId": "vpnx-0", "Force": True},
            "UnknownParameter",
        ),
    ],
)
async def test_delete_parameter_errors(
    emu: Emulator, http: aiohttp.ClientSession, params: dict[str, Any], code: str
) -> None:
    answer = await call(http, emu.url, "DeleteVpnConnection", params)
    assert answer.code == code


async def test_body_must_be_a_json_object(emu: Emulator, http: aiohttp.ClientSession) -> None:
    for body in (b"[1, 2]", b"{not json"):
        answer = await call(http, emu.url, "DescribeVpnConnections", body=body)
        assert answer.code == "InvalidParameter"


async def test_delete_lifecycle_and_mutex(emu: Emulator, http: aiohttp.ClientSession) -> None:
    gateway, tunnel = first_tunnel(emu)
    params = {"VpnGatewayId": gateway, "VpnConnectionId": tunnel}
    assert (await call(http, emu.url, "DeleteVpnConnection", params)).code is None
    assert emu.tunnel(tunnel)["state"] == "DELETING"  # type: ignore[index]
    again = await call(http, emu.url, "DeleteVpnConnection", params)
    assert again.code == "UnsupportedOperation.DeleteVpnConnInvalidState"
    sibling = next(t for t in emu.tunnels() if t["gateway"] == gateway and t["id"] != tunnel)
    other = {"VpnGatewayId": gateway, "VpnConnectionId": sibling["id"]}
    answer = await call(http, emu.url, "DeleteVpnConnection", other)
    assert answer.code == "UnsupportedOperation.MutexOperationTaskRunning"
    far = next(t for t in emu.tunnels() if t["gateway"] != gateway)
    answer = await call(
        http,
        emu.url,
        "DeleteVpnConnection",
        {"VpnGatewayId": far["gateway"], "VpnConnectionId": far["id"]},
    )
    assert answer.code is None  # another gateway is not blocked
    # delete_seconds = mutex_seconds = 0.3: generous wait, then gone and unlocked
    deadline = time.monotonic() + 5
    while emu.tunnel(tunnel) is not None and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert emu.tunnel(tunnel) is None
    assert (await call(http, emu.url, "DeleteVpnConnection", params)).code == "ResourceNotFound"
    assert (await call(http, emu.url, "DeleteVpnConnection", other)).code is None
    shown = await call(
        http, emu.url, "DescribeVpnConnections", {"VpnConnectionIds": [sibling["id"]]}
    )
    assert shown.response["VpnConnectionSet"][0]["State"] == "DELETING"


async def test_pending_tunnel_cannot_be_deleted(emu: Emulator, http: aiohttp.ClientSession) -> None:
    emu.add_tunnel("vpnx-pending1", "vpngw-newgate1", state="PENDING")
    params = {"VpnGatewayId": "vpngw-newgate1", "VpnConnectionId": "vpnx-pending1"}
    answer = await call(http, emu.url, "DeleteVpnConnection", params)
    assert answer.code == "UnsupportedOperation.DeleteVpnConnInvalidState"


async def test_describe_paging_and_filters(emu: Emulator, http: aiohttp.ClientSession) -> None:
    seen: list[str] = []
    offset = 0
    while True:
        answer = await call(http, emu.url, "DescribeVpnConnections", {"Offset": offset, "Limit": 5})
        page = answer.response["VpnConnectionSet"]
        assert answer.response["TotalCount"] == 12
        if not page:
            break
        seen.extend(t["VpnConnectionId"] for t in page)
        offset += len(page)
    assert seen == [t["id"] for t in emu.tunnels()]
    gateway = emu.tunnels()[0]["gateway"]
    answer = await call(
        http,
        emu.url,
        "DescribeVpnConnections",
        {"Filters": [{"Name": "vpn-gateway-id", "Values": [gateway]}]},
    )
    assert answer.response["TotalCount"] == 4
    assert {t["VpnGatewayId"] for t in answer.response["VpnConnectionSet"]} == {gateway}
    ids = seen[:3]
    answer = await call(http, emu.url, "DescribeVpnConnections", {"VpnConnectionIds": ids})
    assert [t["VpnConnectionId"] for t in answer.response["VpnConnectionSet"]] == ids


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"Limit": 101}, "InvalidParameterValue.LimitExceeded"),
        ({"Limit": -1}, "InvalidParameterValue.Range"),
        ({"Offset": "0"}, "InvalidParameter"),
        (
            {"VpnConnectionIds": [f"vpnx-{i:08d}" for i in range(101)]},
            "InvalidParameterValue.LimitExceeded",
        ),
        ({"VpnConnectionIds": ["vpnx-00000000"]}, "ResourceNotFound"),
        ({"VpnConnectionIds": ["nope"]}, "InvalidParameterValue.Malformed"),
        (
            {
                "VpnConnectionIds": ["vpnx-00000000"],
                "Filters": [{"Name": "vpc-id", "Values": ["vpc-1"]}],
            },
            "InvalidParameter.Coexist",
        ),
        ({"Filters": [{"Name": "state", "Values": ["x"]}]}, "InvalidParameter.FilterInvalidKey"),
        (
            {"Filters": [{"Name": "vpc-id", "Values": ["v"]}] * 11},
            "InvalidParameterValue.LimitExceeded",
        ),
        (
            {"Filters": [{"Name": "vpc-id", "Values": list("abcdef")}]},
            "InvalidParameterValue.LimitExceeded",
        ),
        ({"Filters": [{"Name": "vpc-id"}]}, "MissingParameter"),
        ({"Filters": {"Name": "vpc-id"}}, "InvalidParameter"),
        ({"Filters": [{"Name": "vpc-id", "Values": "vpc-1"}]}, "InvalidParameter"),
        ({"Filters": [{"Name": "vpc-id", "Values": [], "Op": "eq"}]}, "UnknownParameter"),
        ({"NextToken": "x"}, "UnknownParameter"),
    ],
)
async def test_describe_errors(
    emu: Emulator, http: aiohttp.ClientSession, params: dict[str, Any], code: str
) -> None:
    answer = await call(http, emu.url, "DescribeVpnConnections", params)
    assert answer.code == code


async def test_rate_limit(http: aiohttp.ClientSession) -> None:
    config = EmulatorConfig(gateways=1, tunnels_per_gateway=1, rate_limit=10)
    async with Emulator(config) as emu:
        answers = await asyncio.gather(
            *(call(http, emu.url, "DescribeVpnConnections", {}) for _ in range(25))
        )
        codes = [a.code for a in answers]
        # 25 requests in far less than a second (generous: the loop could stall; then more pass)
        assert codes.count("RequestLimitExceeded") >= 1
        assert codes.count(None) >= 10
        assert set(codes) <= {None, "RequestLimitExceeded"}
        # another action has its own budget
        other = await call(http, emu.url, "DeleteVpnConnection", {})
        assert other.code == "MissingParameter"
        # another region too
        other = await call(http, emu.url, "DescribeVpnConnections", {}, region="ap-beijing")
        assert other.code is None
        stats = emu.stats()
        assert stats["throttled"] == codes.count("RequestLimitExceeded")
        # the window slides: after a second the budget is back
        await asyncio.sleep(1.1)
        assert (await call(http, emu.url, "DescribeVpnConnections", {})).code is None


async def test_clock_skew_mode(http: aiohttp.ClientSession) -> None:
    config = EmulatorConfig(gateways=1, tunnels_per_gateway=1, clock_skew_seconds=3600)
    async with Emulator(config) as emu:
        answer = await call(http, emu.url, "DescribeVpnConnections", {})
        assert answer.code == "AuthFailure.SignatureExpire"
        server_now = parsedate_to_datetime(answer.headers["Date"]).timestamp()
        offset = server_now - time.time()
        assert 3500 < offset < 3700
        # a client that corrects its clock from the Date header gets through
        fixed = await call(
            http, emu.url, "DescribeVpnConnections", {}, timestamp=int(time.time() + offset)
        )
        assert fixed.code is None
        emu.set_clock_skew(0)
        assert (await call(http, emu.url, "DescribeVpnConnections", {})).code is None


async def test_regions_are_configurable(http: aiohttp.ClientSession) -> None:
    config = EmulatorConfig(gateways=1, tunnels_per_gateway=1, regions=("ap-shanghai-fsi",))
    async with Emulator(config) as emu:
        assert (await call(http, emu.url, "DescribeVpnConnections", {})).code == "UnsupportedRegion"
        answer = await call(http, emu.url, "DescribeVpnConnections", {}, region="ap-shanghai-fsi")
        assert answer.code is None
        assert DEMO_REGION == "ap-guangzhou"


async def test_stats_endpoint(emu: Emulator, http: aiohttp.ClientSession) -> None:
    gateway, tunnel = first_tunnel(emu)
    await call(http, emu.url, "DescribeVpnConnections", {})
    await call(http, emu.url, "DescribeVpnConnections", {})
    await call(
        http, emu.url, "DeleteVpnConnection", {"VpnGatewayId": gateway, "VpnConnectionId": tunnel}
    )
    await call(
        http, emu.url, "DeleteVpnConnection", {"VpnGatewayId": gateway, "VpnConnectionId": tunnel}
    )
    await call(http, emu.url, "Nope", {})
    async with http.get(emu.url + "/_emulator/stats") as resp:
        assert resp.headers["Content-Type"] == "application/json"
        stats = await resp.json()
    direct = json.loads(json.dumps(emu.stats()))
    # Both clocks are read at each call, a moment apart: everything else must be equal.
    direct["uptime_seconds"] = stats["uptime_seconds"]
    direct["rate_limit"]["uptime_seconds"] = stats["rate_limit"]["uptime_seconds"]
    assert stats == direct
    assert stats["requests_total"] == 5
    assert stats["requests"]["DescribeVpnConnections"] == {"OK": 2}
    assert stats["requests"]["DeleteVpnConnection"] == {
        "OK": 1,
        "UnsupportedOperation.DeleteVpnConnInvalidState": 1,
    }
    assert stats["requests"]["<unknown>"] == {"InvalidAction": 1}
    assert stats["throttled"] == 0
    # 5 quick requests: normally all in one second, but a slow machine may spread them out
    assert 1 <= stats["max_requests_per_second"]["overall"] <= 5
    by_action = stats["max_requests_per_second"]["by_action"]
    assert set(by_action) == {"DeleteVpnConnection", "DescribeVpnConnections"}
    assert all(1 <= n <= 2 for n in by_action.values())
    assert stats["tunnels"]["DELETING"] == 1
    assert stats["tunnels"]["AVAILABLE"] == 11
    assert stats["tunnels"]["total"] == 12
