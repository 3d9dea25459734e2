"""The HTTP face of the emulator: aiohttp.web handlers, checks in order, and the envelope.

Every API answer is HTTP 200 with ``Content-Type: application/json`` exactly (the official Python
SDK reads ``Response.Error`` only then), ``{"Response": {..., "RequestId": uuid4}}``, and a ``Date``
header from the server's clock (skew included) so a client can correct its own.

A request to ``/`` goes through, in order (the first failure answers): the protocol (``GET`` or
``POST``; for TC3 the ``X-TC-*`` headers, for the older signature the same as parameters), the
signature (``auth.py``), the parameters' shape, the token of a temporary key (one the emulator's
STS or metadata endpoint issued, ``sts.py``: without its live ``X-TC-Token`` / ``Token`` it gets
``AuthFailure.TokenFailure``; a long-lived key's token is not checked), the
rate limit per (secret id, region, action), injected error codes, injected faults (only
here, so neither masks a real protocol or auth error), then the action and its state machine.
Messages are in Chinese for ``X-TC-Language: zh-CN`` (``Language`` with the older signature).
``GET /_emulator/stats`` answers the counters of ``stats.py`` (no auth: it is a test hook).
STS actions (``sts.py``) are answered on the same port, and with ``metadata`` configured a CVM
metadata endpoint under ``/latest/meta-data/`` (``metadata.py``).
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from tcvpc.emulator.auth import SignatureVerifier
from tcvpc.emulator.codes import ACTIONS, injected_message, localized
from tcvpc.emulator.config import EmulatorConfig, FaultConfig
from tcvpc.emulator.errors import EmuApiError
from tcvpc.emulator.faults import CodeInjector, FaultInjector, FaultKind
from tcvpc.emulator.limits import SlidingWindowLimiter
from tcvpc.emulator.metadata import METADATA_PREFIX, MetadataService
from tcvpc.emulator.state import EmuTunnelState, Tunnel, VpcState
from tcvpc.emulator.stats import Stats
from tcvpc.emulator.sts import STS_ACTIONS, StsService, TokenAuthority
from tcvpc.emulator.wire import MAX_FIELDS, coerce_ints, pairs_to_dict, unflatten

__all__ = ["ACTIONS", "API_VERSION", "STATS_PATH", "EmuApiError", "EmulatorApp"]

API_VERSION = "2017-03-12"
STATS_PATH = "/_emulator/stats"

_JSON = "application/json"
_FORM = "application/x-www-form-urlencoded"
_BEIJING_OFFSET = 8 * 3600
_MAX_IDS = 100
_MAX_FILTERS = 10
_MAX_FILTER_VALUES = 5
_MAX_LIMIT = 100

_HTML_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>stgw</center>\r\n"
    b"</body>\r\n</html>\r\n"
)

# Fields every rendered tunnel shares; every name is an attribute of the SDK's VpnConnection model,
# values as documented (VpnProto "IPSEC", EncryptProto "IKE", IKE/IPsec defaults).
_TUNNEL_DEFAULTS: dict[str, Any] = {
    "PreShareKey": "tcvpc-emulator",
    "VpnProto": "IPSEC",
    "EncryptProto": "IKE",
    "SecurityPolicyDatabaseSet": [],
    "DpdEnable": 0,
    "DpdTimeout": "30",
    "DpdAction": "clear",
    "NegotiationType": "active",
    "IKEOptionsSpecification": {
        "PropoEncryAlgorithm": "AES-CBC-128",
        "PropoAuthenAlgorithm": "SHA",
        "ExchangeMode": "MAIN",
        "LocalIdentity": "ADDRESS",
        "RemoteIdentity": "ADDRESS",
        "LocalAddress": "203.0.113.10",
        "RemoteAddress": "198.51.100.20",
        "LocalFqdnName": "",
        "RemoteFqdnName": "",
        "DhGroupName": "GROUP2",
        "IKESaLifetimeSeconds": 86400,
        "IKEVersion": "IKEV1",
    },
    "IPSECOptionsSpecification": {
        "EncryptAlgorithm": "AES-CBC-128",
        "IntegrityAlgorith": "SHA1",
        "IntegrityAlgorithm": "SHA1",
        "IPSECSaLifetimeSeconds": 3600,
        "PfsDhGroup": "NULL",
        "IPSECSaLifetimeTraffic": 1843200,
    },
    "HealthCheckConfig": {
        "ProbeType": "NQA",
        "ProbeInterval": 5000,
        "ProbeThreshold": 3,
        "ProbeTimeout": 5000,
    },
}
# Most tunnels route statically without health checks; about one in four is a BGP tunnel with
# health checks on (chosen from its ID, so a tunnel always looks the same). HealthCheckStatus is
# documented as absent when health checks are off.
_STATIC_ROUTE: dict[str, Any] = {
    "RouteType": "StaticRoute",
    "EnableHealthCheck": False,
    "HealthCheckLocalIp": "",
    "HealthCheckRemoteIp": "",
    "BgpConfig": {
        "TunnelCidr": "",
        "LocalBgpIp": "",
        "RemoteBgpIp": "",
        "LocalBgpAsn": "",
        "RemoteBgpAsn": "",
    },
}
_BGP_ROUTE: dict[str, Any] = {
    "RouteType": "Bgp",
    "EnableHealthCheck": True,
    "HealthCheckLocalIp": "169.254.128.5",
    "HealthCheckRemoteIp": "169.254.128.6",
    "BgpConfig": {
        "TunnelCidr": "169.254.128.0/30",
        "LocalBgpIp": "169.254.128.1",
        "RemoteBgpIp": "169.254.128.2",
        "LocalBgpAsn": "139341",
        "RemoteBgpAsn": "65000",
    },
}


def is_bgp_tunnel(tunnel_id: str) -> bool:
    """Whether ``tunnel_id`` is shown as a BGP tunnel with health checks (a fixed 1-in-4 pick)."""
    return ord(tunnel_id[-1]) % 4 == 0


@functools.lru_cache(maxsize=65536)
def _created_time(created_at: int) -> str:
    """``YYYY-MM-DD HH:MM:SS`` in Beijing time, as the real API shows it."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(created_at + _BEIJING_OFFSET))


def _tunnel_fields(tunnel: Tunnel, bgp: bool) -> dict[str, Any]:
    available = tunnel.state is EmuTunnelState.AVAILABLE
    fields = {
        "VpnConnectionId": tunnel.tunnel_id,
        "VpnConnectionName": tunnel.name,
        "VpcId": tunnel.vpc_id,
        "VpnGatewayId": tunnel.gateway_id,
        "CustomerGatewayId": tunnel.customer_gateway_id,
        "State": tunnel.state.value,
        "NetStatus": "AVAILABLE" if available else "UNAVAILABLE",
        "CreatedTime": _created_time(tunnel.created_at),
        "TagSet": [{"Key": k, "Value": v} for k, v in tunnel.tags],
    }
    if bgp:
        fields["HealthCheckStatus"] = "AVAILABLE" if available else "UNAVAILABLE"
    return fields


# The fields every tunnel of a kind shares, encoded once: the hot path only encodes what varies.
_STATIC_JSON = json.dumps({**_TUNNEL_DEFAULTS, **_STATIC_ROUTE})[1:-1]
_BGP_JSON = json.dumps({**_TUNNEL_DEFAULTS, **_BGP_ROUTE})[1:-1]


def tunnel_json(tunnel: Tunnel) -> str:
    """One tunnel as ``DescribeVpnConnections`` shows it, as a JSON object."""
    bgp = is_bgp_tunnel(tunnel.tunnel_id)
    shared = _BGP_JSON if bgp else _STATIC_JSON
    return json.dumps(_tunnel_fields(tunnel, bgp))[:-1] + ", " + shared + "}"


class _Raw(str):
    """Marks a pre-encoded JSON fragment for :meth:`EmulatorApp._answer`."""

    __slots__ = ()


def _require_str(params: dict[str, Any], name: str) -> str:
    if name not in params:
        raise EmuApiError(
            "MissingParameter", f"The request is missing a required parameter `{name}`."
        )
    value = params[name]
    if not isinstance(value, str):
        raise EmuApiError("InvalidParameter", f"The parameter `{name}` must be a string.")
    return value


def _check_known(params: dict[str, Any], known: frozenset[str], where: str = "") -> None:
    for name in params:
        if name not in known:
            raise EmuApiError(
                "UnknownParameter", f"The parameter `{where}{name}` is not recognized."
            )


def _optional_int(params: dict[str, Any], name: str, default: int) -> int:
    value = params.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise EmuApiError("InvalidParameter", f"The parameter `{name}` must be an integer.")
    if value < 0:
        raise EmuApiError("InvalidParameterValue.Range", f"The value of `{name}` must be >= 0.")
    return value


def _string_list(value: Any, name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise EmuApiError(
            "InvalidParameter", f"The parameter `{name}` must be an array of strings."
        )
    return value


_DELETE_PARAMS = frozenset({"VpnGatewayId", "VpnConnectionId"})
_DESCRIBE_PARAMS = frozenset({"VpnConnectionIds", "Filters", "Offset", "Limit"})
_FILTER_KEYS = frozenset({"Name", "Values"})


# The common parameters of the older signature (the rest are the action's own).
_LEGACY_COMMON = frozenset(
    {
        "Action",
        "Version",
        "Region",
        "Timestamp",
        "Nonce",
        "SecretId",
        "Signature",
        "SignatureMethod",
        "Token",
        "Language",
        "RequestClient",
    }
)
# Parameters that arrive as strings in a query string or form body but are integers in JSON.
_INT_PARAMS: dict[str, tuple[str, ...]] = {"DescribeVpnConnections": ("Offset", "Limit")}


@dataclass(slots=True)
class _Incoming:
    """What a request says before any check: its signature style, action and language."""

    method: str
    media_type: str  # the Content-Type without parameters, lower-cased
    body: bytes
    form: list[tuple[str, str]] | None  # decoded query (GET) or form body; None: neither
    legacy: bool  # signed with the older Signature parameter, not an Authorization header
    action: str | None
    language: str | None


class EmulatorApp:
    """Holds one emulator's state and serves it over aiohttp.web."""

    def __init__(self, config: EmulatorConfig, state: VpcState) -> None:
        self.config = config
        self.state = state
        self.verifier = SignatureVerifier({config.secret_id: config.secret_key})
        self.faults = FaultInjector(config.faults, config.seed)
        self.injector = CodeInjector(config.inject, config.seed)
        self.limiter = (
            SlidingWindowLimiter(
                config.rate_limit,
                stranger_rate=config.stranger_rate,
                stranger_seconds=config.stranger_seconds,
            )
            if config.rate_limit is not None
            else None
        )
        self.stats = Stats(ACTIONS)
        self.tokens = TokenAuthority(self.verifier, token_seconds=config.token_seconds)
        self.sts = StsService(
            self.tokens, {config.secret_id: config.secret_key}, frozenset(config.regions)
        )
        self.metadata = (
            MetadataService(self.tokens, role=config.metadata_role, clock=self.server_time)
            if config.metadata
            else None
        )
        self.clock_skew_seconds = float(config.clock_skew_seconds)
        self.stall_seconds = float(config.stall_seconds)
        self._regions = frozenset(config.regions)
        self._date_second = -1
        self._date_text = ""
        self._handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "DeleteVpnConnection": self._delete_vpn_connection,
            "DescribeVpnConnections": self._describe_vpn_connections,
        }

    # -- wiring ------------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        app = web.Application()
        if self.metadata is not None:  # before the catch-all: routes match in order
            app.router.add_route("*", METADATA_PREFIX + "{tail:.*}", self.metadata.handle)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    def set_faults(self, faults: FaultConfig) -> None:
        self.faults.config = faults

    def stats_snapshot(self) -> dict[str, object]:
        """Counters; ``faults`` counts fault kinds and injected codes (by code) alike."""
        throttled = self.limiter.rejected if self.limiter is not None else 0
        snapshot = self.stats.snapshot(
            throttled=throttled,
            faults=self.faults.counts + self.injector.counts,
            tunnels=self.state.counts(),
            deleted=self.state.deleted_total,
            rate_limit=self.limiter.snapshot() if self.limiter is not None else None,
        )
        snapshot["credentials"] = {
            **self.tokens.snapshot(),
            "sts": dict(self.sts.requests),
            "metadata": self.metadata.snapshot() if self.metadata is not None else None,
        }
        return snapshot

    # -- envelope ----------------------------------------------------------------------------

    def server_time(self) -> float:
        """The server's wall clock: the machine's plus the configured skew."""
        return time.time() + self.clock_skew_seconds

    def _date_header(self, now: float) -> str:
        second = int(now)
        if second != self._date_second:
            self._date_second = second
            self._date_text = formatdate(second, usegmt=True)
        return self._date_text

    def _answer(self, payload: dict[str, Any], now: float, *, status: int = 200) -> web.Response:
        payload["RequestId"] = str(uuid.uuid4())
        raw = payload.pop("VpnConnectionSet", None)
        if isinstance(raw, _Raw):  # splice the pre-encoded tunnels in
            text = json.dumps(payload)
            text = f'{{"Response": {{"VpnConnectionSet": {raw}, {text[1:]}}}'
        else:
            if raw is not None:
                payload["VpnConnectionSet"] = raw
            text = json.dumps({"Response": payload})
        body = text.encode("utf-8")
        return web.Response(
            body=body,
            status=status,
            headers={"Content-Type": _JSON, "Date": self._date_header(now)},
        )

    @staticmethod
    def _error_payload(exc: EmuApiError, language: str | None) -> dict[str, Any]:
        return {"Error": {"Code": exc.code, "Message": localized(exc.code, exc.message, language)}}

    # -- request path ------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.path == STATS_PATH and request.method == "GET":
            return web.Response(
                body=json.dumps(self.stats_snapshot()).encode(),
                headers={"Content-Type": _JSON, "Date": self._date_header(self.server_time())},
            )
        mono = time.monotonic()
        now = time.time() + self.clock_skew_seconds
        incoming = await self._incoming(request)
        if incoming.action in STS_ACTIONS and not incoming.legacy:  # another service (sts.py)
            try:
                return self._answer(await self.sts.answer(request, incoming.action, now), now)
            except EmuApiError as exc:
                return self._answer(self._error_payload(exc, incoming.language), now)
        key = self.stats.key(incoming.action)
        self.stats.started(key, mono)
        try:
            action, secret_id, region, params = self._checked(request, incoming, now)
            self.tokens.check(secret_id, _token_of(request, incoming), now)
            if self.limiter is not None and not self.limiter.admit(
                (secret_id, region, action), mono
            ):
                raise EmuApiError(
                    "RequestLimitExceeded",
                    f"Your current request times exceeds the limit ({self.limiter.rate:g}/s) "
                    f"of {action}.",
                )
            injected = self.injector.draw(action)
            if injected is not None:
                raise EmuApiError(injected, injected_message(injected))
            fault = self.faults.draw(mono)
            if fault is not None:
                return await self._faulty(
                    request, fault, key, params, action, now, incoming.language
                )
            result = self._run(action, params)
        except EmuApiError as exc:
            self.stats.answered(key, exc.code)
            return self._answer(self._error_payload(exc, incoming.language), now)
        self.stats.answered(key, "OK")
        return self._answer(result, now)

    @staticmethod
    async def _incoming(request: web.Request) -> _Incoming:
        """Read the request and find its signature style, action and language (no checks)."""
        headers = request.headers
        body = await request.read()
        form: list[tuple[str, str]] | None = None
        content_type = headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        try:
            if request.method == "GET":
                form = parse_qsl(
                    request.rel_url.raw_query_string,
                    keep_blank_values=True,
                    max_num_fields=MAX_FIELDS,
                )
            elif request.method == "POST" and content_type == _FORM:
                form = parse_qsl(
                    body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FIELDS
                )
        except (UnicodeDecodeError, ValueError):
            form = None  # too many fields or not UTF-8: answered as malformed by _checked
        legacy = (
            "Authorization" not in headers
            and form is not None
            and any(name == "Signature" for name, _ in form)
        )
        if legacy:
            assert form is not None
            first = {name: value for name, value in reversed(form)}
            action = first.get("Action")
            language = first.get("Language") or headers.get("X-TC-Language")
        else:
            action = headers.get("X-TC-Action")
            language = headers.get("X-TC-Language")
        return _Incoming(request.method, content_type, body, form, legacy, action, language)

    def _checked(
        self, request: web.Request, incoming: _Incoming, now: float
    ) -> tuple[str, str, str, dict[str, Any]]:
        """Protocol, signature and parameter checks; return (action, secret id, region, params)."""
        if incoming.method not in ("GET", "POST") or request.path != "/":
            raise EmuApiError(
                "UnsupportedProtocol",
                "The emulator serves the API at / only, with GET or POST.",
            )
        if incoming.legacy:
            return self._checked_legacy(request, incoming, now)
        headers = request.headers
        if incoming.method == "POST":
            if incoming.form is None and incoming.media_type == _FORM:
                raise EmuApiError(
                    "InvalidParameter",
                    f"The form body is not valid UTF-8 or has over {MAX_FIELDS} parameters.",
                )
            if incoming.media_type != _JSON:
                content_type = headers.get("Content-Type", "")
                raise EmuApiError(
                    "InvalidParameter",
                    f"Content-Type `{content_type}` is not supported: send JSON with TC3.",
                )
        elif incoming.form is None:
            raise EmuApiError(
                "InvalidParameter",
                f"The query string is not valid UTF-8 or has over {MAX_FIELDS} parameters.",
            )
        action, region, timestamp = self._common(
            incoming.action,
            headers.get("X-TC-Version"),
            headers.get("X-TC-Region"),
            headers.get("X-TC-Timestamp"),
            "X-TC-",
        )
        authorization = headers.get("Authorization")
        if not authorization:
            raise EmuApiError(
                "AuthFailure.InvalidAuthorization", "The request has no `Authorization` header."
            )
        secret_id = self.verifier.verify(
            authorization=authorization,
            timestamp=timestamp,
            method=incoming.method,
            path="/",
            # the query exactly as on the wire: aiohttp's query_string is partly decoded
            query=request.rel_url.raw_query_string if incoming.method == "GET" else "",
            headers=headers,
            body=incoming.body,
            now=now,
        )
        if incoming.form is not None and incoming.method == "GET":
            params = coerce_ints(
                unflatten(pairs_to_dict(incoming.form)), _INT_PARAMS.get(action, ())
            )
            return action, secret_id, region, params
        try:
            params = json.loads(incoming.body) if incoming.body else {}
        except ValueError:
            raise EmuApiError("InvalidParameter", "The request body is not valid JSON.") from None
        if not isinstance(params, dict):
            raise EmuApiError("InvalidParameter", "The request body must be a JSON object.")
        return action, secret_id, region, params

    def _checked_legacy(
        self, request: web.Request, incoming: _Incoming, now: float
    ) -> tuple[str, str, str, dict[str, Any]]:
        """The older ``Signature`` parameter (``HmacSHA1``/``HmacSHA256``), query or form."""
        assert incoming.form is not None
        flat = pairs_to_dict(incoming.form)
        action, region, _ = self._common(
            flat.get("Action"), flat.get("Version"), flat.get("Region"), flat.get("Timestamp"), ""
        )
        for name in ("SecretId", "Nonce"):
            if not flat.get(name):
                raise EmuApiError("MissingParameter", f"The request is missing `{name}`.")
        secret_id = self.verifier.verify_legacy(
            params=flat,
            method=incoming.method,
            host=request.headers.get("Host", ""),
            path="/",
            now=now,
        )
        own = {name: value for name, value in flat.items() if name not in _LEGACY_COMMON}
        params = coerce_ints(unflatten(own), _INT_PARAMS.get(action, ()))
        return action, secret_id, region, params

    def _common(
        self,
        action: str | None,
        version: str | None,
        region: str | None,
        timestamp_text: str | None,
        prefix: str,
    ) -> tuple[str, str, int]:
        """Check action, version, region and timestamp; ``prefix`` names where they came from."""
        if not action:
            raise EmuApiError("MissingParameter", f"The request is missing `{prefix}Action`.")
        if action not in self._handlers:
            raise EmuApiError("InvalidAction", f"The action `{action}` is not supported.")
        if not version:
            raise EmuApiError("MissingParameter", f"The request is missing `{prefix}Version`.")
        if version != API_VERSION:
            raise EmuApiError("NoSuchVersion", f"The API version `{version}` does not exist.")
        if not region:
            raise EmuApiError("MissingParameter", f"The request is missing `{prefix}Region`.")
        if region not in self._regions:
            raise EmuApiError("UnsupportedRegion", f"The region `{region}` is not supported.")
        if not timestamp_text:
            raise EmuApiError("MissingParameter", f"The request is missing `{prefix}Timestamp`.")
        try:
            timestamp = int(timestamp_text)
        except ValueError:
            raise EmuApiError(
                "InvalidParameter", f"`{prefix}Timestamp` must be an integer (Unix seconds)."
            ) from None
        return action, region, timestamp

    def _run(self, action: str, params: dict[str, Any]) -> dict[str, Any]:
        return self._handlers[action](params)

    async def _faulty(
        self,
        request: web.Request,
        fault: FaultKind,
        key: str,
        params: dict[str, Any],
        action: str,
        now: float,
        language: str | None,
    ) -> web.StreamResponse:
        """Answer (or not) as the fault says; see :class:`FaultConfig` for what each kind does."""
        if fault is FaultKind.INTERNAL_ERROR:
            raise EmuApiError("InternalError", "An internal error has occurred. Retry later.")
        if fault is FaultKind.SERVICE_UNAVAILABLE:
            raise EmuApiError("ServiceUnavailable", "Service is unavailable now. Retry later.")
        if fault is FaultKind.THROTTLE_BURST:
            raise EmuApiError(
                "RequestLimitExceeded", "Your current request times exceeds the limit."
            )
        if fault is FaultKind.HTTP_502_HTML:
            self.stats.answered(key, "HTTP502")
            return web.Response(
                body=_HTML_502,
                status=502,
                headers={"Content-Type": "text/html", "Date": self._date_header(now)},
            )
        if fault is FaultKind.DROP_BEFORE_ACTION:
            self.stats.answered(key, "ConnectionDropped")
            return _drop(request)
        # The remaining kinds do the action, then spoil the answer.
        try:
            payload = self._run(action, params)
            code = "OK"
        except EmuApiError as exc:
            payload = self._error_payload(exc, language)
            code = exc.code
        self.stats.answered(key, code)
        if fault is FaultKind.DROP_AFTER_ACTION:
            return _drop(request)
        response = self._answer(payload, now)
        if fault is FaultKind.TRUNCATED_JSON:
            body = response.body
            assert isinstance(body, bytes)
            response.body = body[: max(1, len(body) // 2)]
            return response
        # STALL: longer than any sane client timeout; the action already happened.
        await asyncio.sleep(self.stall_seconds)
        return response

    # -- actions -----------------------------------------------------------------------------

    def _delete_vpn_connection(self, params: dict[str, Any]) -> dict[str, Any]:
        _check_known(params, _DELETE_PARAMS)
        gateway_id = _require_str(params, "VpnGatewayId")
        tunnel_id = _require_str(params, "VpnConnectionId")
        self.state.delete(gateway_id, tunnel_id)
        return {}

    def _describe_vpn_connections(self, params: dict[str, Any]) -> dict[str, Any]:
        _check_known(params, _DESCRIBE_PARAMS)
        ids_value = params.get("VpnConnectionIds")
        filters_value = params.get("Filters")
        ids = None if ids_value is None else _string_list(ids_value, "VpnConnectionIds")
        filters: dict[str, list[str]] | None = None
        if filters_value is not None:
            filters = self._parse_filters(filters_value)
        if ids and filters:
            raise EmuApiError(
                "InvalidParameter.Coexist",
                "The parameters `VpnConnectionIds` and `Filters` cannot be specified together.",
            )
        if ids is not None and len(ids) > _MAX_IDS:
            raise EmuApiError(
                "InvalidParameterValue.LimitExceeded",
                f"`VpnConnectionIds` may name at most {_MAX_IDS} tunnels.",
            )
        offset = _optional_int(params, "Offset", 0)
        limit = _optional_int(params, "Limit", 20)
        if limit > _MAX_LIMIT:
            raise EmuApiError(
                "InvalidParameterValue.LimitExceeded",
                f"The value of `Limit` exceeds the maximum {_MAX_LIMIT}.",
            )
        total, page = self.state.describe(
            ids=ids or None,
            filters=filters or None,
            offset=offset,
            limit=limit,
            strict_ids=self.config.strict_describe_ids,
        )
        tunnels = _Raw("[" + ", ".join(tunnel_json(t) for t in page) + "]")
        return {"TotalCount": total, "VpnConnectionSet": tunnels}

    @staticmethod
    def _parse_filters(value: Any) -> dict[str, list[str]]:
        if not isinstance(value, list):
            raise EmuApiError("InvalidParameter", "The parameter `Filters` must be an array.")
        if len(value) > _MAX_FILTERS:
            raise EmuApiError(
                "InvalidParameterValue.LimitExceeded",
                f"`Filters` may hold at most {_MAX_FILTERS} filters.",
            )
        out: dict[str, list[str]] = {}
        for i, item in enumerate(value):
            where = f"Filters.{i}."
            if not isinstance(item, dict):
                raise EmuApiError("InvalidParameter", f"`{where[:-1]}` must be an object.")
            _check_known(item, _FILTER_KEYS, where)
            if "Name" not in item:
                raise EmuApiError("MissingParameter", f"The request is missing `{where}Name`.")
            if "Values" not in item:
                raise EmuApiError("MissingParameter", f"The request is missing `{where}Values`.")
            name = item["Name"]
            if not isinstance(name, str):
                raise EmuApiError("InvalidParameter", f"`{where}Name` must be a string.")
            values = _string_list(item["Values"], f"{where}Values")
            if len(values) > _MAX_FILTER_VALUES:
                raise EmuApiError(
                    "InvalidParameterValue.LimitExceeded",
                    f"`{where}Values` may hold at most {_MAX_FILTER_VALUES} values.",
                )
            out.setdefault(name, []).extend(values)
        return out


def _token_of(request: web.Request, incoming: _Incoming) -> str | None:
    """The session token: ``X-TC-Token`` with TC3, the ``Token`` parameter with the older one."""
    if incoming.legacy and incoming.form is not None:
        return pairs_to_dict(incoming.form).get("Token")
    return request.headers.get("X-TC-Token")


def _drop(request: web.Request) -> web.StreamResponse:
    """Close the connection without an answer: the client sees a disconnect mid-request."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    return _Dropped()


class _Dropped(web.Response):
    """A response that writes nothing (its connection is already gone)."""

    async def prepare(self, request: web.BaseRequest) -> None:
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        return None
