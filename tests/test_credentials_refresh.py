"""Refreshing providers, with an injected clock: when they refresh, how many fetches, failures."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tcvpc import Credential
from tcvpc.emulator.auth import SignatureVerifier
from tcvpc.errors import (
    CredentialsError,
    CredentialsNotFoundError,
    ThrottledError,
    TransportError,
)
from tcvpc.metadata import CvmRoleProvider, parse_credential_document, resolve_metadata_url
from tcvpc.refreshing import RefreshableProvider, RefreshingProvider, TemporaryCredential
from tcvpc.sts import StsAssumeRoleProvider, TkeOidcProvider
from tcvpc.transport import MockTransport, Request, Response

SECRET = "tmp-secret-key-value"
TOKEN = "tmp-token-value"


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeProvider(RefreshingProvider):
    """Issues ``AKID<n>`` keys living ``lifetime`` seconds; ``fail`` next fetches raise."""

    source = "fake"

    def __init__(self, clock: Clock, lifetime: float = 3600.0, **options: Any) -> None:
        options.setdefault("retry_wait", (0.001, 0.005))
        super().__init__(clock=clock, **options)
        self.clock = clock
        self.lifetime = lifetime
        self.fetches = 0
        self.fail = 0
        self.error: Callable[[], Exception] = lambda: TransportError(
            "metadata: cannot connect", action="metadata", outcome_unknown=False
        )
        self.gate: asyncio.Event | None = None

    async def _fetch(self) -> TemporaryCredential:
        self.fetches += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            self.fail -= 1
            raise self.error()
        cred = Credential(f"AKID{self.fetches}", SECRET, TOKEN)
        return TemporaryCredential(cred, self.clock() + self.lifetime)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_refresh_ahead_by_five_minutes_for_long_keys() -> None:
    clock = Clock()
    provider = FakeProvider(clock, lifetime=3600)
    first = await provider.get()
    clock.now += 3600 - 301  # 301 s left: not yet
    assert await provider.get() is first
    await settle()
    assert provider.fetches == 1
    clock.now += 2  # 299 s left: refresh in the background, the old key still answers
    assert await provider.get() is first
    await settle()
    assert provider.fetches == 2
    second = await provider.get()
    assert second.secret_id == "AKID2"
    await provider.aclose()


async def test_refresh_ahead_by_a_quarter_for_short_keys() -> None:
    clock = Clock()
    provider = FakeProvider(clock, lifetime=400)  # a quarter (100 s) < 300 s
    await provider.get()
    clock.now += 299  # 101 s left
    await provider.get()
    await settle()
    assert provider.fetches == 1
    clock.now += 2  # 99 s left
    await provider.get()
    await settle()
    assert provider.fetches == 2
    await provider.aclose()


async def test_a_hundred_concurrent_first_gets_make_one_fetch() -> None:
    clock = Clock()
    provider = FakeProvider(clock)
    provider.gate = asyncio.Event()
    tasks = [asyncio.create_task(provider.get()) for _ in range(100)]
    await settle()
    provider.gate.set()
    creds = await asyncio.gather(*tasks)
    assert provider.fetches == 1
    assert {c.secret_id for c in creds} == {"AKID1"}
    await provider.aclose()


async def test_a_hundred_gets_in_the_refresh_window_make_one_fetch_and_never_wait() -> None:
    clock = Clock()
    provider = FakeProvider(clock)
    await provider.get()
    clock.now += 3500
    provider.gate = asyncio.Event()  # the refresh hangs until we say so
    creds = await asyncio.wait_for(asyncio.gather(*(provider.get() for _ in range(100))), 5)
    assert {c.secret_id for c in creds} == {"AKID1"}  # nobody waited for the refresh
    provider.gate.set()
    await settle()
    assert provider.fetches == 2
    assert (await provider.get()).secret_id == "AKID2"
    await provider.aclose()


async def test_failed_refresh_while_valid_keeps_the_key_and_retries_with_backoff() -> None:
    clock = Clock()
    provider = FakeProvider(clock)
    await provider.get()
    clock.now += 3500  # in the window, 100 s of validity left
    provider.fail = 3
    assert (await provider.get()).secret_id == "AKID1"
    for _ in range(200):  # the retries run in the background, with (tiny) backoff sleeps
        if provider.refreshes == 2:
            break
        assert (await provider.get()).secret_id == "AKID1"
        await asyncio.sleep(0.005)
    assert provider.refreshes == 2
    assert provider.failed_attempts == 3
    assert provider.fetches == 5
    assert (await provider.get()).secret_id == "AKID5"
    await provider.aclose()


async def test_expired_key_without_a_refresh_is_a_credentials_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="tcvpc")
    clock = Clock()
    provider = FakeProvider(clock, refresh_timeout=0.05)
    await provider.get()
    clock.now += 4000  # long past its expiry
    provider.fail = 10**6
    with pytest.raises(CredentialsError, match=r"expired at .* could not be renewed") as info:
        await provider.get()
    assert provider.failed_attempts >= 1
    text = str(info.value) + repr(info.value) + caplog.text + repr(provider)
    assert SECRET not in text
    assert TOKEN not in text
    assert info.value.__cause__ is None
    await provider.aclose()


async def test_a_definite_refusal_is_not_retried() -> None:
    from tcvpc.errors import api_error

    clock = Clock()
    provider = FakeProvider(clock, refresh_timeout=30)
    provider.fail = 10**6
    provider.error = lambda: api_error(
        "AuthFailure.SecretIdNotFound", "no such id", request_id="r", action="AssumeRole"
    )
    with pytest.raises(CredentialsError, match="SecretIdNotFound"):
        await asyncio.wait_for(provider.get(), 5)
    assert provider.fetches == 1


async def test_throttled_fetches_are_retried() -> None:
    clock = Clock()
    provider = FakeProvider(clock)
    provider.fail = 2
    provider.error = lambda: ThrottledError(
        "RequestLimitExceeded", "slow down", request_id="r", action="AssumeRole"
    )
    assert (await provider.get()).secret_id == "AKID3"
    await provider.aclose()


async def test_force_refresh_replaces_a_refused_key_once_for_all_callers() -> None:
    clock = Clock()
    provider = FakeProvider(clock)
    assert isinstance(provider, RefreshableProvider)
    refused = await provider.get()
    provider.gate = asyncio.Event()
    waiters = [asyncio.create_task(provider.force_refresh(refused)) for _ in range(50)]
    await settle()
    # While the refresh runs, get() no longer hands out the refused key: it waits too.
    late = asyncio.create_task(provider.get())
    await settle()
    assert not late.done()
    provider.gate.set()
    creds = await asyncio.gather(*waiters, late)
    assert {c.secret_id for c in creds} == {"AKID2"}
    assert provider.fetches == 2
    # A refusal of a key that was already replaced fetches nothing.
    assert (await provider.force_refresh(refused)).secret_id == "AKID2"
    assert provider.fetches == 2
    await provider.aclose()


async def test_a_cancelled_waiter_does_not_cancel_the_shared_refresh() -> None:
    clock = Clock()
    provider = FakeProvider(clock)
    provider.gate = asyncio.Event()
    impatient = asyncio.create_task(provider.get())
    patient = asyncio.create_task(provider.get())
    await settle()
    impatient.cancel()
    await settle()
    provider.gate.set()
    assert (await patient).secret_id == "AKID1"
    assert impatient.cancelled()
    await provider.aclose()


async def test_closed_provider_refuses_and_cancels_its_refresh() -> None:
    clock = Clock()
    provider = FakeProvider(clock)
    provider.gate = asyncio.Event()
    waiter = asyncio.create_task(provider.get())
    await settle()
    await provider.aclose()
    with pytest.raises((asyncio.CancelledError, CredentialsError)):
        await waiter
    with pytest.raises(CredentialsError, match="closed"):
        await provider.get()


# -- CVM metadata -----------------------------------------------------------------------------

METADATA = "http://127.0.0.1:1/latest/meta-data/"


def metadata_handler(documents: list[dict[str, Any]], role: str = "the-role") -> MockTransport:
    def handle(request: Request) -> Response:
        assert request.method == "GET"
        if request.url == METADATA + "cam/security-credentials/":
            return Response(200, {}, role.encode())
        if request.url == METADATA + f"cam/security-credentials/{role}":
            return Response(200, {}, json.dumps(documents.pop(0)).encode())
        return Response(404, {}, b"not found")

    return MockTransport(handle)


def document(expired: float, n: int = 1) -> dict[str, Any]:
    return {
        "TmpSecretId": f"AKIDcvm{n}",
        "TmpSecretKey": SECRET,
        "Token": TOKEN,
        "ExpiredTime": int(expired),
        "Expiration": "2026-01-01T00:00:00Z",
        "Code": "Success",
    }


async def test_cvm_role_provider_reads_role_then_keys_and_refreshes() -> None:
    clock = Clock()
    transport = metadata_handler([document(clock.now + 7200, 1), document(clock.now + 9000, 2)])
    provider = CvmRoleProvider(metadata_url=METADATA, transport=transport, clock=clock)
    cred = await provider.get()
    assert (cred.secret_id, cred.secret_key, cred.token) == ("AKIDcvm1", SECRET, TOKEN)
    clock.now += 7000
    await provider.get()
    await settle()
    assert (await provider.get()).secret_id == "AKIDcvm2"
    urls = [r.url for r in transport.requests]
    assert urls == [
        METADATA + "cam/security-credentials/",
        METADATA + "cam/security-credentials/the-role",
        METADATA + "cam/security-credentials/the-role",
    ]
    assert provider.metadata_fetches == 2
    await provider.aclose()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"Code": "Failure"}, "Code is 'Failure'"),
        ({"TmpSecretKey": ""}, "no TmpSecretKey"),
        ({"Token": None}, "no Token"),
        ({"ExpiredTime": "soon"}, "no ExpiredTime"),
        ({"ExpiredTime": True}, "no ExpiredTime"),
    ],
)
def test_bad_metadata_documents_are_named_without_their_values(
    change: dict[str, Any], message: str
) -> None:
    doc = {**document(2e9), **change}
    with pytest.raises(CredentialsError, match=message) as info:
        parse_credential_document(json.dumps(doc).encode(), "cvm")
    assert SECRET not in str(info.value)
    assert TOKEN not in str(info.value)


def test_garbage_metadata_answers() -> None:
    for body in (b"<html>", b"[]", b"\xff\xfe", b'{"TmpSecretKey": "' + SECRET.encode()):
        with pytest.raises(CredentialsError) as info:
            parse_credential_document(body, "cvm")
        assert SECRET not in str(info.value)


async def test_no_role_attached_is_not_found_and_not_retried() -> None:
    transport = MockTransport(lambda r: Response(404, {}, b""))
    provider = CvmRoleProvider(metadata_url=METADATA, transport=transport, refresh_timeout=30)
    with pytest.raises(CredentialsError, match="404"):
        await asyncio.wait_for(provider.get(), 5)
    assert len(transport.requests) == 1
    await provider.aclose()


async def test_a_role_name_that_would_escape_the_path_is_refused() -> None:
    transport = MockTransport(lambda r: Response(200, {}, b"../../admin?x=1"))
    provider = CvmRoleProvider(metadata_url=METADATA, transport=transport, refresh_timeout=0.05)
    with pytest.raises(CredentialsError, match="invalid role name"):
        await provider.get()
    assert all("admin" not in r.url for r in transport.requests)
    await provider.aclose()


def test_metadata_url_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TCVPC_METADATA_URL")
    assert resolve_metadata_url() == "http://metadata.tencentyun.com/latest/meta-data/"
    monkeypatch.setenv("TCVPC_METADATA_URL", "http://127.0.0.1:8080/latest/meta-data")
    assert resolve_metadata_url() == "http://127.0.0.1:8080/latest/meta-data/"
    assert resolve_metadata_url("http://169.254.0.23/latest/meta-data/").startswith("http://169")
    for bad in ("http://example.com/m/", "ftp://127.0.0.1/", "http://u:p@127.0.0.1/", "nonsense"):
        with pytest.raises(ValueError, match="metadata URL"):
            resolve_metadata_url(bad)


# -- STS ---------------------------------------------------------------------------------------

LONG = Credential("AKIDlonglived", "long-lived-secret")


def sts_transport(seen: list[Request], expires: Callable[[], float]) -> MockTransport:
    def handle(request: Request) -> Response:
        seen.append(request)
        n = len(seen)
        body = {
            "Response": {
                "Credentials": {
                    "TmpSecretId": f"AKIDsts{n}",
                    "TmpSecretKey": SECRET,
                    "Token": TOKEN,
                },
                "ExpiredTime": int(expires()),
                "Expiration": "2026-01-01T00:00:00Z",
                "RequestId": "req",
            }
        }
        return Response(200, {"content-type": "application/json"}, json.dumps(body).encode())

    return MockTransport(handle)


async def test_assume_role_is_tc3_signed_for_sts_and_verifies_independently() -> None:
    seen: list[Request] = []
    clock = Clock()
    provider = StsAssumeRoleProvider(
        LONG,
        "qcs::cam::uin/100:roleName/cleaner",
        "nightly-cleanup",
        duration_seconds=900,
        region="ap-guangzhou",
        endpoint="vpc.ap-guangzhou.tencentcloudapi.com",
        transport=sts_transport(seen, lambda: clock.now + 900),
        clock=clock,
    )
    cred = await provider.get()
    assert cred.secret_id == "AKIDsts1"
    assert cred.token == TOKEN
    request = seen[0]
    assert request.url == "https://sts.ap-guangzhou.tencentcloudapi.com/"
    headers = {k.lower(): v for k, v in request.headers.items()}
    assert headers["x-tc-action"] == "AssumeRole"
    assert headers["x-tc-version"] == "2018-08-13"
    assert json.loads(request.body) == {
        "RoleArn": "qcs::cam::uin/100:roleName/cleaner",
        "RoleSessionName": "nightly-cleanup",
        "DurationSeconds": 900,
    }
    verifier = SignatureVerifier({LONG.secret_id: LONG.secret_key}, service="sts")
    assert (
        verifier.verify(
            authorization=headers["authorization"],
            timestamp=int(headers["x-tc-timestamp"]),
            method="POST",
            path="/",
            query="",
            headers=headers,
            body=request.body,
        )
        == LONG.secret_id
    )
    assert "long-lived-secret" not in repr(request)
    assert TOKEN not in repr(provider)
    await provider.aclose()


def test_sts_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="session name"):
        StsAssumeRoleProvider(LONG, "arn", "bad name with spaces")
    with pytest.raises(ValueError, match="duration"):
        StsAssumeRoleProvider(LONG, "arn", "ok-name", duration_seconds=0)
    with pytest.raises(ValueError, match="role_arn"):
        StsAssumeRoleProvider(LONG, " ", "ok-name")


async def test_tke_reads_the_token_file_at_every_refresh_and_sends_unsigned(
    tmp_path: Path,
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("oidc-token-one\n")
    seen: list[Request] = []
    clock = Clock()
    provider = TkeOidcProvider.from_environment(
        {
            "TKE_REGION": "ap-shanghai",
            "TKE_PROVIDER_ID": "tke-provider",
            "TKE_WEB_IDENTITY_TOKEN_FILE": str(token_file),
            "TKE_ROLE_ARN": "qcs::cam::uin/100:roleName/pod",
        },
        endpoint="http://127.0.0.1:1",
        transport=sts_transport(seen, lambda: clock.now + 7200),
        clock=clock,
    )
    assert provider is not None
    await provider.get()
    token_file.write_text("oidc-token-two\n")  # the kubelet rotated it
    clock.now += 7000
    await provider.get()
    await settle()
    for _ in range(100):
        if len(seen) == 2:
            break
        await asyncio.sleep(0.01)
    bodies = [json.loads(r.body) for r in seen]
    assert [b["WebIdentityToken"] for b in bodies] == ["oidc-token-one", "oidc-token-two"]
    assert set(bodies[0]) == {
        "ProviderId",
        "WebIdentityToken",
        "RoleArn",
        "RoleSessionName",
        "DurationSeconds",
    }
    assert bodies[0]["ProviderId"] == "tke-provider"
    headers = {k.lower(): v for k, v in seen[0].headers.items()}
    assert headers["authorization"] == "SKIP"
    assert headers["x-tc-action"] == "AssumeRoleWithWebIdentity"
    assert headers["x-tc-region"] == "ap-shanghai"
    assert seen[0].url == "http://127.0.0.1:1/"
    assert "oidc-token" not in repr(seen[0])  # a Request shows its body size only
    await provider.aclose()


def test_tke_environment_partly_set_names_what_is_missing() -> None:
    assert TkeOidcProvider.from_environment({}) is None
    with pytest.raises(CredentialsNotFoundError, match="TKE_PROVIDER_ID, TKE_ROLE_ARN"):
        TkeOidcProvider.from_environment(
            {"TKE_REGION": "ap-guangzhou", "TKE_WEB_IDENTITY_TOKEN_FILE": "/x"}
        )


async def test_tke_missing_or_empty_token_file(tmp_path: Path) -> None:
    provider = TkeOidcProvider(
        region="ap-guangzhou",
        provider_id="p",
        role_arn="r",
        token_file=tmp_path / "absent",
        transport=MockTransport(lambda r: Response(500)),
        refresh_timeout=0.05,
    )
    with pytest.raises(CredentialsError, match="does not exist"):
        await provider.get()
    (tmp_path / "empty").write_text("  \n")
    provider.token_file = tmp_path / "empty"
    with pytest.raises(CredentialsError, match="is empty"):
        await provider.get()
    await provider.aclose()


async def test_sts_error_answers_become_typed_errors_without_bodies() -> None:
    answers = [
        Response(502, {}, b"<html>" + SECRET.encode()),
        Response(200, {}, b'{"Response": {"Credentials": {"TmpSecretKey": "' + SECRET.encode()),
    ]
    provider = StsAssumeRoleProvider(
        LONG,
        "arn",
        "session",
        transport=MockTransport(lambda r: answers.pop(0) if answers else Response(500)),
        refresh_timeout=0.05,
        retry_wait=(0.0, 0.0),
    )
    with pytest.raises(CredentialsError) as info:
        await provider.get()
    assert SECRET not in str(info.value)
    await provider.aclose()


async def test_a_background_refresh_that_gave_up_does_not_restart_on_every_call() -> None:
    clock = Clock()
    provider = FakeProvider(clock)
    await provider.get()
    held = provider._held
    assert held is not None
    clock.now = held.usable_until - 0.001  # in the window, a millisecond of use left: no retries
    provider.fail = 10**6
    await provider.get()
    for _ in range(100):
        await asyncio.sleep(0.001)
        if provider._task is None:
            break
    fetches = provider.fetches
    assert fetches >= 2
    for _ in range(100):
        assert (await provider.get()).secret_id == "AKID1"
        await asyncio.sleep(0)
    assert provider.fetches == fetches  # paused, not a fetch per call
    await provider.aclose()


async def test_a_refused_key_that_cannot_be_replaced_says_so() -> None:
    clock = Clock()
    provider = FakeProvider(clock, refresh_timeout=0.05)
    refused = await provider.get()
    provider.fail = 10**6
    with pytest.raises(CredentialsError, match="refused the temporary key's token"):
        await provider.force_refresh(refused)
    with pytest.raises(CredentialsError):  # and nobody signs with it any more
        await provider.get()
    await provider.aclose()
