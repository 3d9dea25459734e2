"""Where requests go: the endpoints Tencent documents, and vetting the one the caller names.

TLS is the default; plain ``http://`` carries the signed request (not the secret key, but
replayable for five minutes) in clear text, so it is accepted only for loopback hosts (an
emulator on this machine) unless the caller says ``allow_insecure=True``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from yarl import URL

__all__ = [
    "DEFAULT_ENDPOINT",
    "INTERNAL_ENDPOINT",
    "INTL_ENDPOINT",
    "Endpoint",
    "is_loopback",
    "parse_endpoint",
    "regional_endpoint",
]

_DOMAIN = "tencentcloudapi.com"
DEFAULT_ENDPOINT = f"https://vpc.{_DOMAIN}"
"""The nearest region's access point, chosen by DNS."""
INTL_ENDPOINT = f"https://vpc.intl.{_DOMAIN}"
"""The international site's endpoint (the one the API document names)."""
INTERNAL_ENDPOINT = f"https://vpc.internal.{_DOMAIN}"
"""From inside Tencent Cloud's network (a CVM without a public address)."""


def regional_endpoint(region: str) -> str:
    """The endpoint of one region, ``https://vpc.<region>.tencentcloudapi.com``."""
    if not region or not all(c.isalnum() or c == "-" for c in region):
        raise ValueError(f"region {region!r} is not a region name like 'ap-guangzhou'")
    return f"https://vpc.{region}.{_DOMAIN}"


def is_loopback(host: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ::1."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A vetted endpoint: the URL to POST to and the exact ``Host`` header that is signed."""

    url: str
    host_header: str

    def for_service(self, service: str) -> Endpoint:
        """The same choice of site, region or network for another service (STS, CAM, ...).

        For a Tencent API host the leading ``vpc`` label is swapped:
        ``vpc.intl.tencentcloudapi.com`` gives ``sts.intl.tencentcloudapi.com``. Any other host
        (an emulator, a gateway of your own) serves every service itself: returned unchanged.
        """
        if not service or not all(c.isalnum() or c == "-" for c in service):
            raise ValueError(f"service {service!r} is not a service name like 'sts'")
        url = URL(self.url)
        host = url.host or ""
        first, _, rest = host.partition(".")
        if first != "vpc" or not (rest == _DOMAIN or rest.endswith("." + _DOMAIN)):
            return self
        new_host = f"{service.lower()}.{rest}"
        host_header = new_host if url.is_default_port() else f"{new_host}:{url.port}"
        return Endpoint(url=f"{url.scheme}://{host_header}/", host_header=host_header)


class InsecureEndpointError(ValueError):
    """Plain ``http://`` to a host that is not loopback, without ``allow_insecure``.

    Its own class so a CLI can name its own flag instead of the argument.
    """

    def __init__(self, endpoint: str) -> None:
        super().__init__(
            f"endpoint {endpoint!r} uses plain http to a non-loopback host; use https, "
            "or pass allow_insecure=True if you really mean it"
        )
        self.endpoint = endpoint


def parse_endpoint(value: str | None, *, allow_insecure: bool = False) -> Endpoint:
    """Accept a bare host (``vpc.ap-guangzhou.tencentcloudapi.com``) or an http(s) URL.

    Raises ``ValueError`` for anything else: other schemes, a path, query or credentials in the
    URL, or ``http://`` to a host that is not loopback without ``allow_insecure``.
    """
    raw = (value or DEFAULT_ENDPOINT).strip()
    if not raw:
        raise ValueError("endpoint must not be empty")
    if "://" not in raw:
        raw = "https://" + raw
    try:
        url = URL(raw)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"endpoint {value!r} is not a valid URL") from exc
    if url.scheme not in ("http", "https"):
        raise ValueError(f"endpoint {value!r}: scheme must be https (or http for loopback)")
    if not url.host:
        raise ValueError(f"endpoint {value!r} has no host")
    if url.user or url.password:
        raise ValueError("endpoint must not contain credentials")
    if url.path not in ("", "/") or url.query_string or url.fragment:
        raise ValueError(f"endpoint {value!r}: API 3.0 endpoints take no path, query or fragment")
    if url.scheme == "http" and not is_loopback(url.host) and not allow_insecure:
        raise InsecureEndpointError(value or "")
    host = f"[{url.host}]" if ":" in url.host else url.host
    host_header = host if url.is_default_port() else f"{host}:{url.port}"
    return Endpoint(url=f"{url.scheme}://{host_header}/", host_header=host_header)
