"""Named endpoints, Endpoint.for_service, and the vetting of what callers pass."""

from __future__ import annotations

import pytest

from tcvpc.endpoint import (
    DEFAULT_ENDPOINT,
    INTERNAL_ENDPOINT,
    INTL_ENDPOINT,
    parse_endpoint,
    regional_endpoint,
)


@pytest.mark.parametrize(
    ("endpoint", "sts"),
    [
        (DEFAULT_ENDPOINT, "https://sts.tencentcloudapi.com/"),
        (INTL_ENDPOINT, "https://sts.intl.tencentcloudapi.com/"),
        (INTERNAL_ENDPOINT, "https://sts.internal.tencentcloudapi.com/"),
        (regional_endpoint("ap-guangzhou"), "https://sts.ap-guangzhou.tencentcloudapi.com/"),
        (
            "vpc.ap-guangzhou.tencentcloudapi.com:8443",
            "https://sts.ap-guangzhou.tencentcloudapi.com:8443/",
        ),
        # Not a Tencent API host: the same endpoint serves every service.
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080/"),
        ("https://vpc.gateway.example.com", "https://vpc.gateway.example.com/"),
        ("https://vpc.eviltencentcloudapi.com", "https://vpc.eviltencentcloudapi.com/"),
        ("https://cvm.tencentcloudapi.com", "https://cvm.tencentcloudapi.com/"),
    ],
)
def test_for_service_follows_the_same_site_region_and_network(endpoint: str, sts: str) -> None:
    derived = parse_endpoint(endpoint).for_service("sts")
    assert derived.url == sts
    assert derived.url == f"{sts.split('://')[0]}://{derived.host_header}/"


def test_for_service_refuses_what_is_not_a_service_name() -> None:
    for bad in ("", "sts.evil.com", "a/b", "x y"):
        with pytest.raises(ValueError, match="service"):
            parse_endpoint(DEFAULT_ENDPOINT).for_service(bad)


def test_named_endpoints() -> None:
    assert parse_endpoint(None).url == "https://vpc.tencentcloudapi.com/"
    assert parse_endpoint(INTL_ENDPOINT).host_header == "vpc.intl.tencentcloudapi.com"
    assert parse_endpoint(INTERNAL_ENDPOINT).host_header == "vpc.internal.tencentcloudapi.com"
    assert (
        regional_endpoint("na-siliconvalley") == "https://vpc.na-siliconvalley.tencentcloudapi.com"
    )
    for bad in ("", "ap guangzhou", "evil.com/x"):
        with pytest.raises(ValueError, match="region"):
            regional_endpoint(bad)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("ftp://vpc.tencentcloudapi.com", "scheme"),
        ("https://user:pw@vpc.tencentcloudapi.com", "credentials"),
        ("https://vpc.tencentcloudapi.com/path", "no path"),
        ("http://10.0.0.1", "plain http"),
    ],
)
def test_bad_endpoints_are_refused(value: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        parse_endpoint(value)
