"""TC3-HMAC-SHA256: the documented example vector, and agreement with the official SDK."""

from __future__ import annotations

import hashlib
import string

from hypothesis import given, settings
from hypothesis import strategies as st
from tencentcloud.common.abstract_client import AbstractClient
from tencentcloud.common.http.request import RequestInternal

from tcvpc import signing

# The worked example from Tencent Cloud's signature v3 documentation (api.md).
EX_ID = "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE"
EX_KEY = "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE"
EX_TS = 1551113065
EX_CT = "application/json; charset=utf-8"
EX_BODY = (
    b'{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}'
)


def test_documented_example_vector() -> None:
    assert hashlib.sha256(EX_BODY).hexdigest() == (
        "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
    )
    canonical, signed = signing.canonical_request(
        {"content-type": EX_CT, "host": "cvm.tencentcloudapi.com"}, EX_BODY
    )
    assert signed == "content-type;host"
    assert hashlib.sha256(canonical.encode()).hexdigest() == (
        "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"
    )
    to_sign = signing.string_to_sign(canonical, timestamp=EX_TS, service="cvm")
    assert to_sign.splitlines()[2] == "2019-02-25/cvm/tc3_request"
    sig = signing.signature(EX_KEY, to_sign, timestamp=EX_TS, service="cvm")
    assert sig == "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
    auth = signing.authorization(
        secret_id=EX_ID,
        secret_key=EX_KEY,
        service="cvm",
        host="cvm.tencentcloudapi.com",
        content_type=EX_CT,
        payload=EX_BODY,
        timestamp=EX_TS,
    )
    assert auth == (
        f"TC3-HMAC-SHA256 Credential={EX_ID}/2019-02-25/cvm/tc3_request, "
        f"SignedHeaders=content-type;host, Signature={sig}"
    )


def test_header_values_are_trimmed_and_lowercased() -> None:
    a, _ = signing.canonical_request({"Content-Type": " Application/JSON ", "Host": "H"}, b"")
    b, _ = signing.canonical_request({"content-type": "application/json", "host": "h"}, b"")
    assert a == b


def _sdk_signature(secret_key: str, host: str, ct: str, body: bytes, ts: int) -> str:
    req = RequestInternal(
        host=host,
        method="POST",
        uri="/",
        header={"Content-Type": ct, "Host": host, "X-TC-Timestamp": str(ts)},
        data=body.decode("utf-8"),
    )
    date = signing.utc_date(ts)
    # The SDK's own canonicalisation and key derivation; self is unused by this method.
    return str(AbstractClient._get_tc3_signature(None, {}, req, date, "vpc", secret_key))  # type: ignore[arg-type]


_hosts = st.from_regex(
    r"vpc(\.[a-z]{2}-[a-z]{3,9})?\.tencentcloudapi\.com|127\.0\.0\.1:[1-9][0-9]{3}", fullmatch=True
)
_keys = st.text(alphabet=string.ascii_letters + string.digits + "+/=", min_size=1, max_size=40)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(
    key=_keys,
    host=_hosts,
    params=st.dictionaries(st.text(min_size=1, max_size=10), _json, max_size=5),
    ts=st.integers(min_value=0, max_value=4_000_000_000),
    ct=st.sampled_from(["application/json", "application/json; charset=utf-8"]),
)
def test_agrees_with_official_sdk(
    key: str, host: str, params: dict[str, object], ts: int, ct: str
) -> None:
    import json

    body = json.dumps(params, ensure_ascii=False).encode("utf-8")
    canonical, _ = signing.canonical_request({"content-type": ct, "host": host}, body)
    ours = signing.signature(
        key,
        signing.string_to_sign(canonical, timestamp=ts, service="vpc"),
        timestamp=ts,
        service="vpc",
    )
    assert ours == _sdk_signature(key, host, ct, body, ts)


@settings(max_examples=200, deadline=None)
@given(
    key=_keys,
    host=_hosts,
    text=st.text(max_size=40),
    # Around day boundaries too: the cached date and key must follow the UTC day.
    ts=st.integers(min_value=0, max_value=4_000_000_000)
    | st.integers(min_value=0, max_value=40_000).map(lambda d: d * 86_400 + (-1, 0, 1)[d % 3]),
    ct=st.sampled_from(["application/json", "Application/JSON; charset=utf-8 "]),
)
def test_authorization_agrees_with_the_sdk_and_the_spelled_out_steps(
    key: str, host: str, text: str, ts: int, ct: str
) -> None:
    """``authorization`` caches its constant parts: it must still equal the steps it skips."""
    ts, body = max(ts, 0), text.encode("utf-8")
    canonical, signed = signing.canonical_request({"content-type": ct, "host": host}, body)
    to_sign = signing.string_to_sign(canonical, timestamp=ts, service="vpc")
    sig = signing.signature(key, to_sign, timestamp=ts, service="vpc")
    auth = signing.authorization(
        secret_id="AKIDx",
        secret_key=key,
        service="vpc",
        host=host,
        content_type=ct,
        payload=body,
        timestamp=ts,
    )
    scope = f"{signing.utc_date(ts)}/vpc/tc3_request"
    credential = f"Credential=AKIDx/{scope}"
    assert auth == f"TC3-HMAC-SHA256 {credential}, SignedHeaders={signed}, Signature={sig}"
    if ct == "application/json":  # the SDK signs the content type as given
        assert sig == _sdk_signature(key, host, ct, body, ts)


def test_utc_date_follows_the_utc_day() -> None:
    assert signing.utc_date(0) == "1970-01-01"
    assert signing.utc_date(86_399) == "1970-01-01"
    assert signing.utc_date(86_400) == "1970-01-02"
    assert signing.utc_date(EX_TS) == "2019-02-25"
