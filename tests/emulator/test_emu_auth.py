"""The emulator's own verifier against Tencent's documented example vector and bad inputs."""

from __future__ import annotations

import pytest

from tcvpc.emulator.auth import (
    EmuAuthError,
    SignatureVerifier,
    canonical_request,
    derive_signing_key,
    parse_authorization,
    payload_hash,
    sign_string,
    string_to_sign,
)

# Tencent's documented worked example (signature v3 docs): CVM DescribeInstances.
EX_ID = "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE"
EX_KEY = "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE"
EX_TS = 1551113065
EX_CT = "application/json; charset=utf-8"
EX_BODY = (
    b'{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}'
)
EX_PAYLOAD_HASH = "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
EX_CANONICAL_HASH = "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"
EX_SIGNATURE = "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
EX_HEADERS = {"content-type": EX_CT, "host": "cvm.tencentcloudapi.com"}


def example_authorization(signature: str = EX_SIGNATURE, secret_id: str = EX_ID) -> str:
    return (
        f"TC3-HMAC-SHA256 Credential={secret_id}/2019-02-25/cvm/tc3_request, "
        f"SignedHeaders=content-type;host, Signature={signature}"
    )


def test_example_vector_step_by_step() -> None:
    import hashlib

    assert payload_hash(EX_BODY) == EX_PAYLOAD_HASH
    canonical = canonical_request(
        method="POST",
        path="/",
        query="",
        headers=EX_HEADERS,
        signed_headers=("content-type", "host"),
        hashed_payload=EX_PAYLOAD_HASH,
    )
    assert hashlib.sha256(canonical.encode()).hexdigest() == EX_CANONICAL_HASH
    to_sign = string_to_sign(EX_TS, "2019-02-25", "cvm", canonical)
    assert to_sign.endswith(EX_CANONICAL_HASH)
    key = derive_signing_key(EX_KEY, "2019-02-25", "cvm")
    assert sign_string(key, to_sign) == EX_SIGNATURE


def _verifier() -> SignatureVerifier:
    return SignatureVerifier({EX_ID: EX_KEY}, service="cvm")


def _verify(authorization: str, *, body: bytes = EX_BODY, now: float = EX_TS + 10, **kw: object):
    headers = dict(EX_HEADERS)
    headers.update(kw.pop("headers", {}))  # type: ignore[arg-type]
    return _verifier().verify(
        authorization=authorization,
        timestamp=EX_TS,
        method="POST",
        path="/",
        query="",
        headers=headers,
        body=body,
        now=now,
    )


def test_verifier_accepts_the_example_request() -> None:
    assert _verify(example_authorization()) == EX_ID


@pytest.mark.parametrize(
    ("authorization", "kwargs", "code"),
    [
        ("Bearer x", {}, "AuthFailure.InvalidAuthorization"),
        (
            example_authorization().replace("content-type;host", "host"),
            {},
            "AuthFailure.InvalidAuthorization",
        ),
        (example_authorization(secret_id="AKIDunknown"), {}, "AuthFailure.SecretIdNotFound"),
        (example_authorization(), {"now": EX_TS + 301}, "AuthFailure.SignatureExpire"),
        (example_authorization(), {"now": EX_TS - 301}, "AuthFailure.SignatureExpire"),
        (example_authorization("0" * 64), {}, "AuthFailure.SignatureFailure"),
        (example_authorization(), {"body": EX_BODY + b" "}, "AuthFailure.SignatureFailure"),
        (
            example_authorization(),
            {"headers": {"content-type": "application/json"}},
            "AuthFailure.SignatureFailure",
        ),
        (
            example_authorization().replace("2019-02-25", "2019-02-24"),
            {},
            "AuthFailure.SignatureFailure",
        ),
    ],
)
def test_verifier_rejections(authorization: str, kwargs: dict[str, object], code: str) -> None:
    with pytest.raises(EmuAuthError) as info:
        _verify(authorization, **kwargs)
    assert info.value.code == code


def test_skew_boundary_is_300_seconds() -> None:
    assert _verify(example_authorization(), now=EX_TS + 300) == EX_ID
    assert _verify(example_authorization(), now=EX_TS - 300) == EX_ID


def test_extra_signed_headers_are_verified() -> None:
    headers = {**EX_HEADERS, "x-tc-action": "DescribeInstances"}
    names = ("content-type", "host", "x-tc-action")
    canonical = canonical_request(
        method="POST",
        path="/",
        query="",
        headers=headers,
        signed_headers=names,
        hashed_payload=payload_hash(EX_BODY),
    )
    sig = sign_string(
        derive_signing_key(EX_KEY, "2019-02-25", "cvm"),
        string_to_sign(EX_TS, "2019-02-25", "cvm", canonical),
    )
    auth = (
        f"TC3-HMAC-SHA256 Credential={EX_ID}/2019-02-25/cvm/tc3_request, "
        f"SignedHeaders=content-type;host;x-tc-action, Signature={sig}"
    )
    assert "describeinstances" in canonical  # values are lower-cased
    assert _verify(auth, headers={"x-tc-action": "DescribeInstances"}) == EX_ID
    with pytest.raises(EmuAuthError) as info:
        _verify(auth, headers={"x-tc-action": "RunInstances"})
    assert info.value.code == "AuthFailure.SignatureFailure"
    with pytest.raises(EmuAuthError) as info:
        _verify(auth)  # declared but not sent
    assert info.value.code == "AuthFailure.InvalidAuthorization"


def test_parse_authorization() -> None:
    parsed = parse_authorization(example_authorization())
    assert parsed.secret_id == EX_ID
    assert parsed.date == "2019-02-25"
    assert parsed.service == "cvm"
    assert parsed.signed_headers == ("content-type", "host")
    assert parsed.signature == EX_SIGNATURE
