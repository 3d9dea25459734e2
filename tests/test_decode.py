"""The response decoder: any bytes in, a Response dict or a typed TcvpcError out, nothing else."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcvpc import ApiError, ResponseError, TcvpcError
from tcvpc.decode import decode_response


def decode(action: str, status: int, body: bytes, date: str | None) -> dict[str, object]:
    return decode_response(action, status, {"date": date} if date is not None else {}, body)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=10,
)
_envelopes = st.fixed_dictionaries(
    {"Response": st.dictionaries(st.sampled_from(["Error", "RequestId", "X"]), _json, max_size=3)}
)


@settings(deadline=None)  # 100 cases here; 10,000 with HYPOTHESIS_PROFILE=fuzz
@given(
    status=st.sampled_from([200, 200, 200, 301, 307, 400, 429, 500, 502, 503]),
    body=st.one_of(
        st.binary(max_size=200),
        _json.map(lambda v: json.dumps(v).encode()),
        _envelopes.map(lambda v: json.dumps(v).encode()),
        _envelopes.map(lambda v: json.dumps(v).encode()[: len(json.dumps(v)) // 2]),
    ),
    date=st.one_of(st.none(), st.text(max_size=40), st.just("Tue, 15 Nov 1994 08:12:31 GMT")),
)
def test_decoder_never_crashes_untyped(status: int, body: bytes, date: str | None) -> None:
    try:
        result = decode("DeleteVpnConnection", status, body, date)
    except TcvpcError as exc:
        assert isinstance(exc, (ResponseError, ApiError))  # noqa: PT017
        if isinstance(exc, ResponseError):
            assert len(exc.excerpt) <= 200  # noqa: PT017
            assert exc.__context__ is None  # noqa: PT017 (no JSONDecodeError holding the body)
    else:
        assert status == 200
        assert isinstance(result, dict)
        assert "Error" not in result


def test_decoder_reads_error_envelope_and_server_date() -> None:
    body = json.dumps(
        {
            "Response": {
                "Error": {"Code": "AuthFailure.SignatureExpire", "Message": "m"},
                "RequestId": "r1",
            }
        }
    ).encode()
    with pytest.raises(ApiError) as info:
        decode("DeleteVpnConnection", 200, body, "Tue, 15 Nov 1994 08:12:31 GMT")
    assert info.value.code == "AuthFailure.SignatureExpire"
    assert info.value.request_id == "r1"
    assert info.value.server_date is not None
    assert info.value.server_date.year == 1994


def test_decoder_returns_response() -> None:
    body = b'{"Response": {"RequestId": "74883e1b-5901-46de-ae1e-d6e2cf591c5b"}}'
    assert decode("DeleteVpnConnection", 200, body, None) == {
        "RequestId": "74883e1b-5901-46de-ae1e-d6e2cf591c5b"
    }


def test_html_error_page_is_excerpted() -> None:
    page = b"<html><head><title>502 Bad Gateway</title></head>" + b"x" * 5000
    with pytest.raises(ResponseError) as info:
        decode("DeleteVpnConnection", 502, page, None)
    assert info.value.status == 502
    assert info.value.excerpt.startswith("<html>")
    assert len(str(info.value)) < 400


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect_is_never_an_answer(status: int) -> None:
    body = json.dumps({"Response": {"RequestId": "r"}}).encode()
    headers = {"location": "https://elsewhere.example/" + "x" * 500}
    with pytest.raises(ResponseError, match="not followed") as info:
        decode_response("DeleteVpnConnection", status, headers, body)
    assert info.value.status == status
    assert info.value.retry_kind is None
    assert len(str(info.value)) < 700


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-32"])
def test_an_answer_decodes_as_json_loads_reads_it(encoding: str) -> None:
    """The common answer (UTF-8, starting with "{") skips json.loads' encoding detection; the
    rest still goes through it, so every encoding json.loads reads is read the same."""
    text = '{"Response": {"RequestId": "r-é", "Note": "\\ud83d\\ude00"}}'
    body = text.encode(encoding)
    assert decode_response("X", 200, {}, body) == json.loads(body)["Response"]


@pytest.mark.parametrize(
    ("body", "ok"),
    [
        (b'{"Response": {}} \t\r\n', True),  # JSON whitespace may follow the object
        (b'{"Response": {}} x', False),  # anything else may not ("Extra data")
        (b'{"Response": {}}{}', False),
        (b'{"Response": {}}\x00', False),
        (b"{", False),
        (b"{" * 100_000, False),  # too deep: RecursionError, caught
    ],
)
def test_the_answer_shortcut_accepts_what_json_loads_accepts(body: bytes, ok: bool) -> None:
    try:
        json.loads(body)
    except (ValueError, RecursionError):
        assert not ok
    else:
        assert ok
    if ok:
        assert decode_response("X", 200, {}, body) == {}
    else:
        with pytest.raises(ResponseError, match="not JSON"):
            decode_response("X", 200, {}, body)
