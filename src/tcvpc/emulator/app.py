"""The HTTP face of the emulator: aiohttp.web handlers, checks in order, and the envelope.

Every API answer is HTTP 200 with ``Content-Type: application/json`` exactly (the official
Python SDK reads ``Response.Error`` only then) and ``{"Response": {..., "RequestId": uuid4}}``.
Every answer carries a ``Date`` header from the *server's* clock (skew included), so a client
that gets ``AuthFailure.SignatureExpire`` can learn the offset.

A request to ``POST /`` goes through, in order (the first failure answers):

1. protocol: method ``POST`` and path ``/`` (``UnsupportedProtocol``); a JSON Content-Type
   (``InvalidParameter``); ``X-TC-Action`` (``MissingParameter`` / ``InvalidAction``),
   ``X-TC-Version`` (``MissingParameter`` / ``NoSuchVersion``), ``X-TC-Region``
   (``MissingParameter`` / ``UnsupportedRegion``), ``X-TC-Timestamp`` (``MissingParameter`` /
   ``InvalidParameter``), ``Authorization`` present (``AuthFailure.InvalidAuthorization``);
2. signature (see ``auth.py``); ``X-TC-Token``, when present, is accepted whatever its value
   (the emulator has no STS to check it against);
3. the body is a JSON object (``InvalidParameter``);
4. the rate limit per (secret id, region, action) (``RequestLimitExceeded``);
5. **fault injection**: only here, so faults never mask a real protocol or auth error;
6. the action: parameter checks (``MissingParameter``, ``UnknownParameter``,
   ``InvalidParameter``, ``InvalidParameterValue.*``) and the state machine (``state.py``).

``GET /_emulator/stats`` answers the counters of ``stats.py`` (no auth: it is a test hook).
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
import uuid
from collections.abc import Callable
from email.utils import formatdate
from typing import Any

from aiohttp import web

from tcvpc.emulator.auth import SignatureVerifier
from tcvpc.emulator.config import EmulatorConfig, FaultConfig
from tcvpc.emulator.errors import ApiError
from tcvpc.emulator.faults import FaultInjector, FaultKind
from tcvpc.emulator.limits import SlidingWindowLimiter
from tcvpc.emulator.state import Tunnel, TunnelState, VpcState
from tcvpc.emulator.stats import Stats

__all__ = ["ACTIONS", "API_VERSION", "STATS_PATH", "ApiError", "EmulatorApp"]

API_VERSION = "2017-03-12"
ACTIONS = ("DeleteVpnConnection", "DescribeVpnConnections")
STATS_PATH = "/_emulator/stats"

_JSON = "application/json"
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

# Fields every rendered tunnel shares: realistic IKE/IPsec defaults, all names from the SDK model.
_TUNNEL_DEFAULTS: dict[str, Any] = {
    "PreShareKey": "tcvpc-emulator",
    "VpnProto": "IKE",
    "EncryptProto": "IKE/IPSec",
    "RouteType": "StaticRoute",
    "SecurityPolicyDatabaseSet": [],
    "EnableHealthCheck": False,
    "HealthCheckLocalIp": "",
    "HealthCheckRemoteIp": "",
    "DpdEnable": 0,
    "DpdTimeout": "30",
    "DpdAction": "clear",
    "NegotiationType": "active",
}
_IKE = {
    "PropoEncryAlgorithm": "AES-CBC-128",
    "PropoAuthenAlgorithm": "SHA",
    "ExchangeMode": "MAIN",
    "LocalIdentity": "ADDRESS",
    "RemoteIdentity": "ADDRESS",
    "LocalAddress": "203.0.113.10",
    "RemoteAddress": "198.51.100.20",
    "DhGroupName": "GROUP2",
    "IKESaLifetimeSeconds": 86400,
    "IKEVersion": "IKEV1",
}
_IPSEC = {
    "EncryptAlgorithm": "AES-CBC-128",
    "IntegrityAlgorith": "SHA1",
    "IntegrityAlgorithm": "SHA1",
    "IPSECSaLifetimeSeconds": 3600,
    "PfsDhGroup": "NULL",
    "IPSECSaLifetimeTraffic": 1843200,
}


def render_tunnel(tunnel: Tunnel) -> dict[str, Any]:
    """A tunnel as ``DescribeVpnConnections`` shows it (documented field names)."""
    out = _tunnel_fields(tunnel)
    out.update(_TUNNEL_DEFAULTS)
    out["IKEOptionsSpecification"] = dict(_IKE)
    out["IPSECOptionsSpecification"] = dict(_IPSEC)
    return out


@functools.lru_cache(maxsize=65536)
def _created_time(created_at: int) -> str:
    """``YYYY-MM-DD HH:MM:SS`` in Beijing time, as the real API shows it."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(created_at + _BEIJING_OFFSET))


def _tunnel_fields(tunnel: Tunnel) -> dict[str, Any]:
    return {
        "VpnConnectionId": tunnel.tunnel_id,
        "VpnConnectionName": tunnel.name,
        "VpcId": tunnel.vpc_id,
        "VpnGatewayId": tunnel.gateway_id,
        "CustomerGatewayId": tunnel.customer_gateway_id,
        "State": tunnel.state.value,
        "NetStatus": "AVAILABLE" if tunnel.state is TunnelState.AVAILABLE else "UNAVAILABLE",
        "CreatedTime": _created_time(tunnel.created_at),
        "TagSet": [{"Key": k, "Value": v} for k, v in tunnel.tags],
    }


# The fields every tunnel shares, encoded once: the hot path only encodes what varies.
_STATIC_JSON = json.dumps(
    {**_TUNNEL_DEFAULTS, "IKEOptionsSpecification": _IKE, "IPSECOptionsSpecification": _IPSEC}
)[1:-1]


def tunnel_json(tunnel: Tunnel) -> str:
    """``json.dumps(render_tunnel(tunnel))``, about five times cheaper."""
    return json.dumps(_tunnel_fields(tunnel))[:-1] + ", " + _STATIC_JSON + "}"


class _Raw(str):
    """Marks a pre-encoded JSON fragment for :meth:`EmulatorApp._answer`."""

    __slots__ = ()


def _require_str(params: dict[str, Any], name: str) -> str:
    if name not in params:
        raise ApiError("MissingParameter", f"The request is missing a required parameter `{name}`.")
    value = params[name]
    if not isinstance(value, str):
        raise ApiError("InvalidParameter", f"The parameter `{name}` must be a string.")
    return value


def _check_known(params: dict[str, Any], known: frozenset[str], where: str = "") -> None:
    for name in params:
        if name not in known:
            raise ApiError("UnknownParameter", f"The parameter `{where}{name}` is not recognized.")


def _optional_int(params: dict[str, Any], name: str, default: int) -> int:
    value = params.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError("InvalidParameter", f"The parameter `{name}` must be an integer.")
    if value < 0:
        raise ApiError("InvalidParameterValue.Range", f"The value of `{name}` must be >= 0.")
    return value


def _string_list(value: Any, name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ApiError("InvalidParameter", f"The parameter `{name}` must be an array of strings.")
    return value


_DELETE_PARAMS = frozenset({"VpnGatewayId", "VpnConnectionId"})
_DESCRIBE_PARAMS = frozenset({"VpnConnectionIds", "Filters", "Offset", "Limit"})
_FILTER_KEYS = frozenset({"Name", "Values"})


class EmulatorApp:
    """Holds one emulator's state and serves it over aiohttp.web."""

    def __init__(self, config: EmulatorConfig, state: VpcState) -> None:
        self.config = config
        self.state = state
        self.verifier = SignatureVerifier({config.secret_id: config.secret_key})
        self.faults = FaultInjector(config.faults, config.seed)
        self.limiter = (
            SlidingWindowLimiter(config.rate_limit) if config.rate_limit is not None else None
        )
        self.stats = Stats(ACTIONS)
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
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    def set_faults(self, faults: FaultConfig) -> None:
        self.faults.config = faults

    def stats_snapshot(self) -> dict[str, object]:
        throttled = self.limiter.rejected if self.limiter is not None else 0
        return self.stats.snapshot(
            throttled=throttled,
            faults=self.faults.counts,
            tunnels=self.state.counts(),
            deleted=self.state.deleted_total,
        )

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

    def _error(self, code: str, message: str, now: float) -> web.Response:
        return self._answer({"Error": {"Code": code, "Message": message}}, now)

    # -- request path ------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.path == STATS_PATH and request.method == "GET":
            return web.Response(
                body=json.dumps(self.stats_snapshot()).encode(),
                headers={"Content-Type": _JSON, "Date": self._date_header(self.server_time())},
            )
        mono = time.monotonic()
        now = time.time() + self.clock_skew_seconds
        headers = request.headers
        action = headers.get("X-TC-Action")
        key = self.stats.key(action)
        self.stats.started(key, mono)
        try:
            secret_id, region, params = await self._checked(request, action, now)
            assert action is not None  # _checked guarantees a known action
            if self.limiter is not None and not self.limiter.admit(
                (secret_id, region, action), mono
            ):
                raise ApiError(
                    "RequestLimitExceeded",
                    f"Your current request times exceeds the limit ({self.limiter.rate:g}/s) "
                    f"of {action}.",
                )
            fault = self.faults.draw(mono)
            if fault is not None:
                return await self._faulty(request, fault, key, params, action, now)
            result = self._run(action, params)
        except ApiError as exc:
            self.stats.answered(key, exc.code)
            return self._error(exc.code, exc.message, now)
        self.stats.answered(key, "OK")
        return self._answer(result, now)

    async def _checked(
        self, request: web.Request, action: str | None, now: float
    ) -> tuple[str, str, dict[str, Any]]:
        """Protocol and signature checks; return (secret id, region, params)."""
        if request.method != "POST" or request.path != "/":
            raise ApiError(
                "UnsupportedProtocol",
                "The emulator serves the API at POST / only (JSON body, TC3-HMAC-SHA256).",
            )
        headers = request.headers
        content_type = headers.get("Content-Type", "")
        if content_type.split(";", 1)[0].strip().lower() != _JSON:
            raise ApiError(
                "InvalidParameter", f"Content-Type `{content_type}` is not supported: send JSON."
            )
        if not action:
            raise ApiError("MissingParameter", "The request is missing `X-TC-Action`.")
        if action not in self._handlers:
            raise ApiError("InvalidAction", f"The action `{action}` is not supported.")
        version = headers.get("X-TC-Version")
        if not version:
            raise ApiError("MissingParameter", "The request is missing `X-TC-Version`.")
        if version != API_VERSION:
            raise ApiError("NoSuchVersion", f"The API version `{version}` does not exist.")
        region = headers.get("X-TC-Region")
        if not region:
            raise ApiError("MissingParameter", "The request is missing `X-TC-Region`.")
        if region not in self._regions:
            raise ApiError("UnsupportedRegion", f"The region `{region}` is not supported.")
        timestamp_text = headers.get("X-TC-Timestamp")
        if not timestamp_text:
            raise ApiError("MissingParameter", "The request is missing `X-TC-Timestamp`.")
        try:
            timestamp = int(timestamp_text)
        except ValueError:
            raise ApiError(
                "InvalidParameter", "`X-TC-Timestamp` must be an integer (Unix seconds)."
            ) from None
        authorization = headers.get("Authorization")
        if not authorization:
            raise ApiError(
                "AuthFailure.InvalidAuthorization", "The request has no `Authorization` header."
            )
        body = await request.read()
        secret_id = self.verifier.verify(
            authorization=authorization,
            timestamp=timestamp,
            method="POST",
            path="/",
            query=request.query_string,
            headers=headers,
            body=body,
            now=now,
        )
        try:
            params = json.loads(body) if body else {}
        except ValueError:
            raise ApiError("InvalidParameter", "The request body is not valid JSON.") from None
        if not isinstance(params, dict):
            raise ApiError("InvalidParameter", "The request body must be a JSON object.")
        return secret_id, region, params

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
    ) -> web.StreamResponse:
        """Answer (or not) as the fault says; see :class:`FaultConfig` for what each kind does."""
        if fault is FaultKind.INTERNAL_ERROR:
            raise ApiError("InternalError", "An internal error has occurred. Retry later.")
        if fault is FaultKind.SERVICE_UNAVAILABLE:
            raise ApiError("ServiceUnavailable", "Service is unavailable now. Retry later.")
        if fault is FaultKind.THROTTLE_BURST:
            raise ApiError("RequestLimitExceeded", "Your current request times exceeds the limit.")
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
        except ApiError as exc:
            payload = {"Error": {"Code": exc.code, "Message": exc.message}}
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
            raise ApiError(
                "InvalidParameter.Coexist",
                "The parameters `VpnConnectionIds` and `Filters` cannot be specified together.",
            )
        if ids is not None and len(ids) > _MAX_IDS:
            raise ApiError(
                "InvalidParameterValue.LimitExceeded",
                f"`VpnConnectionIds` may name at most {_MAX_IDS} tunnels.",
            )
        offset = _optional_int(params, "Offset", 0)
        limit = _optional_int(params, "Limit", 20)
        if limit > _MAX_LIMIT:
            raise ApiError(
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
            raise ApiError("InvalidParameter", "The parameter `Filters` must be an array.")
        if len(value) > _MAX_FILTERS:
            raise ApiError(
                "InvalidParameterValue.LimitExceeded",
                f"`Filters` may hold at most {_MAX_FILTERS} filters.",
            )
        out: dict[str, list[str]] = {}
        for i, item in enumerate(value):
            where = f"Filters.{i}."
            if not isinstance(item, dict):
                raise ApiError("InvalidParameter", f"`{where[:-1]}` must be an object.")
            _check_known(item, _FILTER_KEYS, where)
            if "Name" not in item:
                raise ApiError("MissingParameter", f"The request is missing `{where}Name`.")
            if "Values" not in item:
                raise ApiError("MissingParameter", f"The request is missing `{where}Values`.")
            name = item["Name"]
            if not isinstance(name, str):
                raise ApiError("InvalidParameter", f"`{where}Name` must be a string.")
            values = _string_list(item["Values"], f"{where}Values")
            if len(values) > _MAX_FILTER_VALUES:
                raise ApiError(
                    "InvalidParameterValue.LimitExceeded",
                    f"`{where}Values` may hold at most {_MAX_FILTER_VALUES} values.",
                )
            out.setdefault(name, []).extend(values)
        return out


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
