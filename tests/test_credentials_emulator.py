"""Role-based jobs over loopback against the emulator: CVM metadata, STS, TKE, the default chain.

The proof of issue 15: 50 concurrent calls through three token lifetimes with no failed call, one
metadata fetch per refresh and no request signed with an expired token; a revoked token replaced
after one ``TokenFailure``; secrets nowhere in logs, reprs or errors.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from tencentcloud.common import credential as sdk_credential
from tencentcloud.common.common_client import CommonClient
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.vpc.v20170312 import models, vpc_client

from tcvpc import Credential, RetryPolicy, VpcClient
from tcvpc.chain import DefaultChainProvider, default_provider
from tcvpc.credentials import StaticProvider
from tcvpc.emulator import DEMO_SECRET_ID, DEMO_SECRET_KEY, Emulator, EmulatorConfig
from tcvpc.endpoint import parse_endpoint
from tcvpc.errors import CredentialsError, CredentialsNotFoundError, TcvpcError, TokenExpiredError
from tcvpc.metadata import CvmRoleProvider
from tcvpc.sts import StsAssumeRoleProvider, TkeOidcProvider

REGION = "ap-guangzhou"
LONG = Credential(DEMO_SECRET_ID, DEMO_SECRET_KEY)


@pytest.fixture
async def role_emulator() -> AsyncIterator[Emulator]:
    async with Emulator(EmulatorConfig(metadata=True, token_seconds=4)) as emu:
        yield emu


def credential_stats(emu: Emulator) -> dict[str, Any]:
    stats = emu.stats()["credentials"]
    assert isinstance(stats, dict)
    return stats


def token_failure_answers(emu: Emulator) -> int:
    requests = emu.stats()["requests"]
    assert isinstance(requests, dict)
    return sum(codes.get("AuthFailure.TokenFailure", 0) for codes in requests.values())


async def run_job(
    client: VpcClient, seconds: float, workers: int = 50
) -> tuple[int, list[BaseException]]:
    """``workers`` tasks calling in a loop for ``seconds``; returns (successes, failures)."""
    loop = asyncio.get_running_loop()
    stop = loop.time() + seconds
    ok = 0
    failures: list[BaseException] = []

    async def worker() -> None:
        nonlocal ok
        while loop.time() < stop:
            try:
                await client.call("DescribeVpnConnections", {"Limit": 1})
                ok += 1
            except TcvpcError as exc:
                failures.append(exc)

    await asyncio.gather(*(worker() for _ in range(workers)))
    return ok, failures


def assert_no_secrets(emu: Emulator, *texts: str) -> None:
    keys = emu.app.tokens.issued_keys()
    assert keys
    blob = "\n".join(texts)
    for key in keys:
        assert key.secret_key not in blob
        assert key.token not in blob


@pytest.mark.slow
async def test_cvm_role_job_runs_through_three_lifetimes_without_a_failure(
    role_emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    emu = role_emulator
    provider = CvmRoleProvider(metadata_url=emu.metadata_url)
    async with VpcClient(provider, region=REGION, endpoint=emu.url, rate=60) as client:
        await client.call("DescribeVpnConnections", {"Limit": 1})  # the first key
        assert provider.stalls == 1
        ok, failures = await run_job(client, seconds=11.5)  # lifetimes: 3-4 s (whole seconds)
        assert failures == []
        assert dict(client.stats.errors_by_code) == {}  # not even a retried error
        assert ok > 200
        stats = credential_stats(emu)
        assert provider.refreshes >= 4  # the first key and at least three renewals
        assert provider.stalls == 1  # renewals happened ahead of expiry: no call waited
        assert stats["metadata"] == {"role_fetches": 1, "credential_fetches": provider.refreshes}
        assert stats["token_failures"] == {}
        assert token_failure_answers(emu) == 0
        report = json.dumps(emu.stats()) + repr(client) + repr(provider) + repr(client.stats)
    await provider.aclose()
    assert_no_secrets(emu, caplog.text, report)


@pytest.mark.slow
async def test_a_revoked_token_is_replaced_after_one_token_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with Emulator(EmulatorConfig(metadata=True, token_seconds=600)) as emu:
        provider = CvmRoleProvider(metadata_url=emu.metadata_url)
        async with VpcClient(provider, region=REGION, endpoint=emu.url, rate=60) as client:
            job = asyncio.create_task(run_job(client, seconds=3.0))
            await asyncio.sleep(1.0)
            assert emu.revoke_all_tokens() == 1
            ok, failures = await job
        await provider.aclose()
        assert failures == []
        assert ok > 50
        stats = credential_stats(emu)
        assert stats["metadata"]["credential_fetches"] == 2 == provider.refreshes
        refused = stats["token_failures"].get("revoked", 0)
        assert 1 <= refused <= 50  # at most the calls in flight when it was revoked
        assert set(stats["token_failures"]) == {"revoked"}
        # Each refused call was retried once, with the new key, and succeeded.
        assert client.stats.retries_by_code["AuthFailure.TokenFailure"] == refused
        assert_no_secrets(emu, caplog.text)


async def test_emulator_refuses_temporary_keys_without_their_live_token(
    role_emulator: Emulator,
) -> None:
    emu = role_emulator
    provider = CvmRoleProvider(metadata_url=emu.metadata_url)
    good = await provider.get()
    await provider.aclose()
    assert good.token is not None
    once = RetryPolicy.no_retries()
    no_token = Credential(good.secret_id, good.secret_key)
    wrong_token = Credential(good.secret_id, good.secret_key, good.token[::-1])
    for credential in (no_token, wrong_token):
        async with VpcClient(credential, region=REGION, endpoint=emu.url) as client:
            with pytest.raises(TokenExpiredError) as info:
                await client.call("DescribeVpnConnections", {"Limit": 1}, retry_policy=once)
            assert good.secret_key not in str(info.value)
            assert good.token not in str(info.value)
    async with VpcClient(good, region=REGION, endpoint=emu.url) as client:
        await client.call("DescribeVpnConnections", {"Limit": 1}, retry_policy=once)
        emu.set_clock_skew(10)  # the server's clock passes the key's expiry (4 s at most)
        with pytest.raises(TokenExpiredError):
            await client.call("DescribeVpnConnections", {"Limit": 1}, retry_policy=once)
    assert credential_stats(emu)["token_failures"] == {"missing": 1, "wrong": 1, "expired": 1}


async def test_a_static_temporary_key_is_retried_once_then_fails_clearly(
    role_emulator: Emulator,
) -> None:
    emu = role_emulator
    provider = CvmRoleProvider(metadata_url=emu.metadata_url)
    good = await provider.get()
    await provider.aclose()
    emu.revoke_token(good.secret_id)
    async with VpcClient(good, region=REGION, endpoint=emu.url) as client:
        with pytest.raises(TokenExpiredError) as info:
            await client.call("DescribeVpnConnections", {"Limit": 1})
    assert info.value.attempts == 2


async def test_sts_assume_role_against_the_emulator(role_emulator: Emulator) -> None:
    emu = role_emulator
    provider = StsAssumeRoleProvider(
        LONG, "qcs::cam::uin/100:roleName/cleaner", "tcvpc-test", endpoint=emu.url, region=REGION
    )
    async with VpcClient(provider, region=REGION, endpoint=emu.url) as client:
        response = await client.call("DescribeVpnConnections", {"Limit": 1})
    assert response["TotalCount"] == 100
    await provider.aclose()
    assert credential_stats(emu)["sts"] == {"AssumeRole:OK": 1}

    wrong = StsAssumeRoleProvider(
        Credential(DEMO_SECRET_ID, "not-the-key"),
        "arn",
        "tcvpc-test",
        endpoint=emu.url,
        region=REGION,
    )
    with pytest.raises(CredentialsError, match="SignatureFailure"):
        await asyncio.wait_for(wrong.get(), 10)  # a definite refusal: no retries
    await wrong.aclose()


async def test_tke_pod_through_the_default_chain(role_emulator: Emulator, tmp_path: Path) -> None:
    emu = role_emulator
    token_file = tmp_path / "token"
    token_file.write_text("eyJhbGciOiJSUzI1NiJ9.e30.sig")
    env = {
        "TKE_REGION": REGION,
        "TKE_PROVIDER_ID": "tke-oidc",
        "TKE_WEB_IDENTITY_TOKEN_FILE": str(token_file),
        "TKE_ROLE_ARN": "qcs::cam::uin/100:roleName/pod",
        "TENCENTCLOUD_CREDENTIALS_FILE": str(tmp_path / "none"),
    }
    chain = default_provider(env, endpoint=parse_endpoint(emu.url))
    assert isinstance(chain, DefaultChainProvider)
    async with VpcClient(chain, region=REGION, endpoint=emu.url) as client:
        await client.call("DescribeVpnConnections", {"Limit": 1})
    assert isinstance(chain.provider, TkeOidcProvider)
    await chain.aclose()
    assert credential_stats(emu)["sts"] == {"AssumeRoleWithWebIdentity:OK": 1}


async def test_default_chain_finds_the_cvm_role_and_remembers_the_probe(
    role_emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = role_emulator
    for name in ("TENCENTCLOUD_SECRET_ID", "TENCENTCLOUD_SECRET_KEY", "TENCENTCLOUD_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TENCENTCLOUD_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("TCVPC_METADATA_URL", emu.metadata_url)
    for _ in range(2):
        async with VpcClient(region=REGION, endpoint=emu.url) as client:  # the default chain
            await client.call("DescribeVpnConnections", {"Limit": 1})
    metadata = credential_stats(emu)["metadata"]
    assert metadata == {"role_fetches": 1, "credential_fetches": 2}


async def test_environment_keys_come_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", "AKIDfromenv")
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", "envkey")
    provider = default_provider()
    assert isinstance(provider, StaticProvider)
    assert provider.credential.secret_id == "AKIDfromenv"


@pytest.fixture
async def stalled_metadata() -> AsyncIterator[tuple[str, list[float]]]:
    """A metadata service that never answers (a laptop's black-holed 169.254 route)."""
    hits: list[float] = []

    async def stall(request: web.Request) -> web.Response:
        hits.append(time.monotonic())
        await asyncio.sleep(30)
        return web.Response(text="late")

    app = web.Application()
    app.router.add_get("/{tail:.*}", stall)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}/latest/meta-data/", hits
    await runner.cleanup()


async def test_nothing_found_names_every_place_and_the_probe_is_bounded_and_remembered(
    stalled_metadata: tuple[str, list[float]], tmp_path: Path
) -> None:
    url, hits = stalled_metadata
    env = {"TENCENTCLOUD_CREDENTIALS_FILE": str(tmp_path / "none"), "TCVPC_METADATA_URL": url}
    started = time.monotonic()
    with pytest.raises(CredentialsNotFoundError) as info:
        await DefaultChainProvider(env).get()
    assert time.monotonic() - started < 10  # about 1 s; generous for a loaded machine
    message = str(info.value)
    for place in (
        "TENCENTCLOUD_SECRET_ID",
        str(tmp_path / "none"),
        url,
        "no complete answer",
        "TKE_WEB_IDENTITY_TOKEN_FILE",
    ):
        assert place in message
    with pytest.raises(CredentialsNotFoundError):
        await DefaultChainProvider(env).get()
    assert len(hits) == 1  # the second chain did not ask again


async def test_client_without_credentials_fails_before_its_first_request(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("TENCENTCLOUD_SECRET_ID", "TENCENTCLOUD_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TENCENTCLOUD_CREDENTIALS_FILE", str(tmp_path / "none"))
    async with VpcClient(region=REGION, endpoint="http://127.0.0.1:9") as client:
        with pytest.raises(CredentialsNotFoundError, match="CVM instance role"):
            await client.check_credentials()
        assert client.stats.requests_sent == 0


def test_sts_follows_the_endpoint_choice() -> None:
    cases = {
        None: "https://sts.tencentcloudapi.com/",
        "vpc.intl.tencentcloudapi.com": "https://sts.intl.tencentcloudapi.com/",
        "vpc.ap-shanghai-fsi.tencentcloudapi.com": "https://sts.ap-shanghai-fsi.tencentcloudapi.com/",
        "vpc.internal.tencentcloudapi.com": "https://sts.internal.tencentcloudapi.com/",
        "http://127.0.0.1:8080": "http://127.0.0.1:8080/",
        "vpc.eviltencentcloudapi.com": "https://vpc.eviltencentcloudapi.com/",
    }
    for given, expected in cases.items():
        assert parse_endpoint(given).for_service("sts").url == expected


@pytest.mark.slow
def test_cli_serves_metadata_with_the_lifetime_given() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from tcvpc.emulator.command import emulator_command; emulator_command()",
            "--metadata",
            "--token-seconds",
            "30",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stderr is not None
        url = proc.stdout.readline().strip()
        line = proc.stderr.readline()
        assert f"{url}/latest/meta-data/" in line
        base = f"{url}/latest/meta-data/cam/security-credentials/"
        with urllib.request.urlopen(base, timeout=10) as resp:
            role = resp.read().decode()
        with urllib.request.urlopen(base + role, timeout=10) as resp:
            document = json.load(resp)
        assert document["Code"] == "Success"
        assert 28 <= document["ExpiredTime"] - time.time() <= 31
    finally:
        proc.terminate()
        proc.communicate(timeout=20)  # reaps it and closes its pipes


async def sts_post(url: str, action: str, params: dict[str, Any], **headers: str) -> dict[str, Any]:
    base = {
        "Content-Type": "application/json",
        "X-TC-Action": action,
        "X-TC-Version": "2018-08-13",
        "X-TC-Region": REGION,
        "X-TC-Timestamp": str(int(time.time())),
        "Authorization": "SKIP",
    }
    base.update({k.replace("_", "-"): v for k, v in headers.items()})
    async with (
        aiohttp.ClientSession() as session,
        session.post(url + "/", data=json.dumps(params), headers=base) as resp,
    ):
        assert resp.status == 200
        answer = await resp.json(content_type=None)
    response = answer["Response"]
    assert isinstance(response, dict)
    return response


WEB = {"ProviderId": "p", "WebIdentityToken": "a.b.c", "RoleArn": "r", "RoleSessionName": "s1"}


async def test_emulator_sts_checks_its_requests(role_emulator: Emulator) -> None:
    url = role_emulator.url
    unsigned = await sts_post(url, "AssumeRole", {"RoleArn": "r", "RoleSessionName": "s1"})
    assert unsigned["Error"]["Code"] == "AuthFailure.InvalidAuthorization"
    old = await sts_post(url, "AssumeRoleWithWebIdentity", WEB, X_TC_Version="2017-03-12")
    assert old["Error"]["Code"] == "NoSuchVersion"
    missing = await sts_post(url, "AssumeRoleWithWebIdentity", {**WEB, "WebIdentityToken": None})
    assert missing["Error"]["Code"] == "MissingParameter"
    bad = await sts_post(url, "AssumeRoleWithWebIdentity", {**WEB, "DurationSeconds": 0})
    assert bad["Error"]["Code"] == "InvalidParameterValue"
    unknown = await sts_post(url, "AssumeRoleWithWebIdentity", {**WEB, "Extra": 1})
    assert unknown["Error"]["Code"] == "UnknownParameter"
    ok = await sts_post(url, "AssumeRoleWithWebIdentity", {**WEB, "DurationSeconds": 7200})
    assert set(ok["Credentials"]) == {"Token", "TmpSecretId", "TmpSecretKey"}
    assert 0 < ok["ExpiredTime"] - time.time() <= 4  # capped by --token-seconds
    assert ok["Expiration"].endswith("Z")


async def test_emulator_metadata_answers_only_its_paths(role_emulator: Emulator) -> None:
    base = role_emulator.metadata_url
    async with aiohttp.ClientSession() as session:
        async with session.get(base + "cam/security-credentials/other-role") as resp:
            assert resp.status == 404
        async with session.post(base + "cam/security-credentials/") as resp:
            assert resp.status == 405
        async with session.get(base + "cam/security-credentials/") as resp:
            assert await resp.text() == "tcvpc-demo-role"
    assert credential_stats(role_emulator)["metadata"]["credential_fetches"] == 0


async def test_metadata_is_off_unless_asked() -> None:
    async with Emulator(EmulatorConfig()) as emu, aiohttp.ClientSession() as session:
        async with session.get(emu.url + "/latest/meta-data/cam/security-credentials/") as resp:
            body = await resp.json(content_type=None)
        assert body["Response"]["Error"]["Code"] == "UnsupportedProtocol"
        with pytest.raises(RuntimeError, match="metadata"):
            _ = emu.metadata_url


@pytest.mark.slow
async def test_role_based_cleanup_job_outlives_its_tokens(tmp_path: Path) -> None:
    """``tcvpc cleanup`` in a process with no keys at all: the chain finds the CVM role."""
    config = EmulatorConfig(
        metadata=True, token_seconds=3, gateways=30, tunnels_per_gateway=10, delete_seconds=0.05
    )
    async with Emulator(config) as emu:
        tunnels = emu.tunnels()
        (tmp_path / "t.csv").write_text(
            "VpnGatewayId,VpnConnectionId\n"
            + "".join(f"{t['gateway']},{t['id']}\n" for t in tunnels)
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("TENCENTCLOUD_")}
        src = str(Path(__file__).resolve().parents[1] / "src")
        env.update(
            PYTHONPATH=os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p),
            HOME=str(tmp_path),
            TENCENTCLOUD_REGION=REGION,
            TENCENTCLOUD_CREDENTIALS_FILE=str(tmp_path / "none"),
            TCVPC_METADATA_URL=emu.metadata_url,
        )
        report = tmp_path / "report.jsonl"
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "import sys; from tcvpc.cleanup.command import cleanup_command; "
            "cleanup_command(sys.argv[1:], prog_name='tcvpc cleanup')",
            "--input",
            str(tmp_path / "t.csv"),
            "--endpoint",
            emu.url,
            "--report",
            str(report),
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode == 0, err.decode()
        assert emu.tunnels() == [] or all(t["state"] == "DELETING" for t in emu.tunnels())
        stats = credential_stats(emu)
        assert stats["metadata"]["credential_fetches"] >= 2  # the job outlived its first key
        assert stats["token_failures"] == {}
        assert token_failure_answers(emu) == 0
        deletes = emu.stats()["requests"]
        assert isinstance(deletes, dict)
        assert deletes["DeleteVpnConnection"] == {"OK": len(tunnels)}
        assert_no_secrets(emu, out.decode(), err.decode(), report.read_text())


@pytest.mark.parametrize(
    ("sign_method", "req_method"),
    [
        ("TC3-HMAC-SHA256", "POST"),
        ("TC3-HMAC-SHA256", "GET"),
        ("HmacSHA256", "POST"),
        ("HmacSHA1", "GET"),
    ],
)
async def test_official_sdk_with_a_temporary_key_in_every_signing_mode(
    role_emulator: Emulator, sign_method: str, req_method: str
) -> None:
    """The SDK sends the token as ``X-TC-Token`` (TC3) or the ``Token`` parameter (older)."""
    emu = role_emulator
    provider = CvmRoleProvider(metadata_url=emu.metadata_url)
    key = await provider.get()
    await provider.aclose()
    assert key.token is not None

    def describe(token: str) -> int:
        profile = ClientProfile(
            signMethod=sign_method,
            httpProfile=HttpProfile(protocol="http", endpoint=emu.endpoint, reqMethod=req_method),
        )
        client = vpc_client.VpcClient(
            sdk_credential.Credential(key.secret_id, key.secret_key, token), REGION, profile
        )
        request = models.DescribeVpnConnectionsRequest()
        request.Limit = 1
        return int(client.DescribeVpnConnections(request).TotalCount)

    assert await asyncio.to_thread(describe, key.token) == 100
    with pytest.raises(TencentCloudSDKException) as info:
        await asyncio.to_thread(describe, key.token[::-1])
    assert info.value.get_code() == "AuthFailure.TokenFailure"


async def test_official_sdk_common_client_against_the_emulator_sts(role_emulator: Emulator) -> None:
    """The SDK's own STS calls (as its STS and OIDC credentials make them) get keys that work."""
    emu = role_emulator

    def sts(action: str, params: dict[str, Any], options: dict[str, Any] | None) -> Any:
        profile = ClientProfile(httpProfile=HttpProfile(protocol="http", endpoint=emu.endpoint))
        client = CommonClient(
            "sts",
            "2018-08-13",
            sdk_credential.Credential(DEMO_SECRET_ID, DEMO_SECRET_KEY),
            REGION,
            profile=profile,
        )
        return client.call_json(action, params, options=options)

    role = {"RoleArn": "qcs::cam::uin/100:roleName/x", "RoleSessionName": "sdk-session"}
    signed = await asyncio.to_thread(sts, "AssumeRole", role, None)
    unsigned = await asyncio.to_thread(
        sts,
        "AssumeRoleWithWebIdentity",
        {**role, "ProviderId": "tke", "WebIdentityToken": "a.b.c"},
        {"SkipSign": True},
    )
    for answer in (signed, unsigned):
        creds = answer["Response"]["Credentials"]
        key = Credential(creds["TmpSecretId"], creds["TmpSecretKey"], creds["Token"])
        async with VpcClient(key, region=REGION, endpoint=emu.url) as client:
            await client.call("DescribeVpnConnections", {"Limit": 1})
