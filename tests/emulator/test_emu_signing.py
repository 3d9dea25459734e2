"""The signing paths the cloud accepts besides TC3 over POST: TC3 over GET, the older HmacSHA1 /
HmacSHA256 parameter signature (query or form), and a Host signed without its port."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from emu_helpers import call, legacy_params, sign_headers, tc3_get_headers

from tcvpc.emulator import Emulator, EmulatorConfig
from tcvpc.emulator.auth import SignatureVerifier, host_forms
from tcvpc.emulator.errors import EmuApiError
from tcvpc.emulator.wire import unflatten


@pytest.fixture
async def emu() -> Any:
    config = EmulatorConfig(gateways=2, tunnels_per_gateway=3, delete_seconds=30, seed=3)
    async with Emulator(config) as emulator:
        yield emulator


async def get(
    http: aiohttp.ClientSession, emu: Emulator, query: str, headers: dict[str, str]
) -> dict[str, Any]:
    async with http.get(f"{emu.url}/?{query}", headers=headers) as resp:
        assert resp.status == 200
        return dict((await resp.json())["Response"])


def filter_query(gateway: str) -> str:
    # Flattened as the official SDKs do: lists by index, nested names dotted, ints as strings.
    return urlencode(
        {
            "Filters.0.Name": "vpn-gateway-id",
            "Filters.0.Values.0": gateway,
            "Offset": "1",
            "Limit": "1",
        }
    )


async def test_tc3_over_get_with_flattened_parameters(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    gateway = emu.tunnels()[0]["gateway"]
    query = filter_query(gateway)
    headers = tc3_get_headers(host=emu.endpoint, action="DescribeVpnConnections", query=query)
    response = await get(http, emu, query, headers)
    assert response["TotalCount"] == 3
    assert [t["VpnGatewayId"] for t in response["VpnConnectionSet"]] == [gateway]
    # the query string is signed: a changed parameter breaks the signature
    tampered = query.replace("Limit=1", "Limit=2")
    response = await get(http, emu, tampered, headers)
    assert response["Error"]["Code"] == "AuthFailure.SignatureFailure"


async def test_tc3_get_with_bad_parameters_gets_the_json_path_codes(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    for query, code in [
        (urlencode({"Limit": "many"}), "InvalidParameter"),
        (urlencode({"Limit": "101"}), "InvalidParameterValue.LimitExceeded"),
        (urlencode({"VpnConnectionIds.1": "vpnx-aaaaaaaa"}), "InvalidParameter"),
        (urlencode({"Bogus": "1"}), "UnknownParameter"),
    ]:
        headers = tc3_get_headers(host=emu.endpoint, action="DescribeVpnConnections", query=query)
        response = await get(http, emu, query, headers)
        assert response["Error"]["Code"] == code, query


async def test_host_signed_without_its_port_is_accepted(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    """The official Node.js SDK signs ``host:127.0.0.1`` and sends ``Host: 127.0.0.1:PORT``."""
    query = ""
    headers = tc3_get_headers(
        host=emu.endpoint,
        action="DescribeVpnConnections",
        query=query,
        signed_host="127.0.0.1",
    )
    response = await get(http, emu, query, headers)
    assert response["TotalCount"] == 6
    # another host is still another host
    headers = tc3_get_headers(
        host=emu.endpoint, action="DescribeVpnConnections", query=query, signed_host="127.0.0.2"
    )
    response = await get(http, emu, query, headers)
    assert response["Error"]["Code"] == "AuthFailure.SignatureFailure"
    # and over POST, with the JSON body
    body = b"{}"
    signed_bare = sign_headers(host="127.0.0.1", action="DescribeVpnConnections", body=body)
    signed_bare["Host"] = emu.endpoint
    async with http.post(emu.url + "/", data=body, headers=signed_bare) as resp:
        assert (await resp.json())["Response"]["TotalCount"] == 6


@pytest.mark.parametrize(
    ("host", "forms"),
    [
        ("127.0.0.1:8080", ("127.0.0.1:8080", "127.0.0.1")),
        ("vpc.tencentcloudapi.com", ("vpc.tencentcloudapi.com",)),
        ("[::1]:443", ("[::1]:443", "[::1]")),
        ("[::1]", ("[::1]",)),
        ("::1", ("::1",)),
    ],
)
def test_host_forms(host: str, forms: tuple[str, ...]) -> None:
    assert host_forms(host) == forms


@pytest.mark.parametrize("signature_method", ["HmacSHA256", "HmacSHA1", None])
@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_legacy_signature(
    emu: Emulator, http: aiohttp.ClientSession, method: str, signature_method: str | None
) -> None:
    tunnel = emu.tunnels()[0]
    params = legacy_params(
        method=method,
        host=emu.endpoint,
        action="DeleteVpnConnection",
        params={"VpnGatewayId": tunnel["gateway"], "VpnConnectionId": tunnel["id"]},
        signature_method=signature_method,
    )
    if method == "GET":
        request = http.get(emu.url + "/?" + urlencode(params))
    else:  # a form body, as the SDKs send it
        request = http.post(emu.url + "/", data=params)
    async with request as resp:
        response = (await resp.json())["Response"]
    assert "Error" not in response, response
    assert emu.tunnel(tunnel["id"])["state"] == "DELETING"  # type: ignore[index]


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"secret_key": "not-the-key"}, "AuthFailure.SignatureFailure"),
        ({"secret_id": "AKIDnobody"}, "AuthFailure.SecretIdNotFound"),
        ({"timestamp": int(time.time()) - 400}, "AuthFailure.SignatureExpire"),
        ({"signature_method": "HmacMD5"}, "AuthFailure.SignatureFailure"),
    ],
)
async def test_legacy_signature_failures(
    emu: Emulator, http: aiohttp.ClientSession, change: dict[str, Any], code: str
) -> None:
    params = legacy_params(
        method="GET", host=emu.endpoint, action="DescribeVpnConnections", params={}, **change
    )
    async with http.get(emu.url + "/?" + urlencode(params)) as resp:
        assert (await resp.json())["Response"]["Error"]["Code"] == code


async def test_legacy_signature_covers_every_parameter(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    params = legacy_params(
        method="GET", host=emu.endpoint, action="DescribeVpnConnections", params={"Limit": "1"}
    )
    params["Limit"] = "2"
    async with http.get(emu.url + "/?" + urlencode(params)) as resp:
        error = (await resp.json())["Response"]["Error"]
    assert error["Code"] == "AuthFailure.SignatureFailure"
    params = legacy_params(
        method="GET", host=emu.endpoint, action="DescribeVpnConnections", params={}
    )
    del params["Nonce"]
    async with http.get(emu.url + "/?" + urlencode(params)) as resp:
        error = (await resp.json())["Response"]["Error"]
    assert error["Code"] == "MissingParameter"
    assert "Nonce" in error["Message"]


async def test_legacy_language_parameter(emu: Emulator, http: aiohttp.ClientSession) -> None:
    params = legacy_params(
        method="GET",
        host=emu.endpoint,
        action="DeleteVpnConnection",
        params={"VpnGatewayId": "vpngw-00000000", "VpnConnectionId": "vpnx-00000000"},
        language="zh-CN",
    )
    async with http.get(emu.url + "/?" + urlencode(params)) as resp:
        error = (await resp.json())["Response"]["Error"]
    assert error == {"Code": "ResourceNotFound", "Message": "资源不存在。"}


async def test_language_header_picks_the_message(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    params = {"VpnGatewayId": "vpngw-00000000", "VpnConnectionId": "vpnx-00000000"}
    english = await call(http, emu.url, "DeleteVpnConnection", params)
    chinese = await call(
        http,
        emu.url,
        "DeleteVpnConnection",
        params,
        header_overrides={"X-TC-Language": "zh-CN"},  # not signed, as the SDKs send it
    )
    other = await call(
        http, emu.url, "DeleteVpnConnection", params, header_overrides={"X-TC-Language": "fr"}
    )
    assert english.code == chinese.code == other.code == "ResourceNotFound"
    assert chinese.response["Error"]["Message"] == "资源不存在。"
    assert english.response["Error"]["Message"].startswith("The resource `vpnx-00000000`")
    assert other.response["Error"]["Message"] == english.response["Error"]["Message"]


def test_unflatten() -> None:
    flat = {
        "Filters.0.Name": "vpc-id",
        "Filters.0.Values.0": "vpc-1",
        "Filters.0.Values.1": "vpc-2",
        "Filters.1.Name": "vpn-gateway-id",
        "Filters.1.Values.0": "vpngw-1",
        "Offset": "0",
    }
    assert unflatten(flat) == {
        "Filters": [
            {"Name": "vpc-id", "Values": ["vpc-1", "vpc-2"]},
            {"Name": "vpn-gateway-id", "Values": ["vpngw-1"]},
        ],
        "Offset": "0",
    }
    for bad in (
        {"Ids.1": "x"},  # gap
        {"Ids.0": "x", "Ids.00": "y"},
        {"A": "1", "A.0": "2"},  # scalar and list at once
        {"A..B": "1"},
        {".".join(["A"] * 10_000): "1"},  # hostile depth: refused before any recursion
    ):
        with pytest.raises(EmuApiError) as info:
            unflatten(bad)
        assert info.value.code == "InvalidParameter"


def test_verifier_never_imports_the_clients_signer() -> None:
    import ast

    import tcvpc.emulator.auth as auth

    tree = ast.parse(Path(auth.__file__).read_text(encoding="utf-8"))
    imported = {
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    outside = {n for n in imported if n and n.startswith("tcvpc") and "tcvpc.emulator" not in n}
    assert not outside, outside
    assert SignatureVerifier.verify_legacy  # both paths live in the independent module


async def test_too_many_form_parameters(emu: Emulator, http: aiohttp.ClientSession) -> None:
    ids = {f"VpnConnectionIds.{i}": "vpnx-aaaaaaaa" for i in range(1001)}
    params = legacy_params(
        method="POST", host=emu.endpoint, action="DescribeVpnConnections", params=ids
    )
    async with http.post(emu.url + "/", data=params) as resp:
        error = (await resp.json())["Response"]["Error"]
    assert error["Code"] == "InvalidParameter"
