"""An in-memory stand-in for the VPC API with the rules the scheduler must respect.

Deletes are asynchronous (``DELETING`` for ``delete_seconds``, then gone), a gateway's mutex is
held meanwhile (``MutexOperationTaskRunning``), Describe with the ``vpn-connection-id`` filter omits
gone tunnels. Every call is logged so tests can check what the engine did.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from tcvpc.errors import (
    AuthError,
    GatewayBusyError,
    InvalidStateError,
    NotFoundError,
    ServerError,
)
from tcvpc.models import DeleteOutcome, DeleteResult, TunnelRef, TunnelState, VpnConnection
from tcvpc.retry import RetryPolicy


def make_refs(gateways: int, per_gateway: int) -> list[TunnelRef]:
    return [
        TunnelRef(f"vpngw-{g:08d}", f"vpnx-{g:03d}{t:05d}")
        for g in range(gateways)
        for t in range(per_gateway)
    ]


@dataclass
class FakeStats:
    requests_sent: int = 0
    throttled: int = 0
    retries_by_code: Counter[str] = field(default_factory=Counter)


@dataclass
class _Tunnel:
    gateway: str
    state: TunnelState = TunnelState.AVAILABLE
    gone_at: float | None = None


class FakeVpc:
    def __init__(
        self,
        refs: Iterable[TunnelRef],
        *,
        delete_seconds: float = 0.02,
        latency: float = 0.001,
        auth_error: bool = False,
        invalid_state: Mapping[str, int] | None = None,
        fail: Mapping[str, int] | None = None,
        block: asyncio.Event | None = None,
        describe_block: asyncio.Event | None = None,
        fail_message: str = "boom",
        not_found: Mapping[str, int] | None = None,
    ) -> None:
        self.tunnels = {r.vpn_connection_id: _Tunnel(r.vpn_gateway_id) for r in refs}
        self.delete_seconds = delete_seconds
        self.latency = latency
        self.auth_error = auth_error
        self.invalid_state = dict(invalid_state or {})
        self.fail = dict(fail or {})
        self.block = block
        self.describe_block = describe_block
        self.fail_message = fail_message
        self.not_found = dict(not_found or {})  # answer not-found this many times, tunnel or not
        self.mutex_until: dict[str, float] = {}
        self.in_flight: Counter[str] = Counter()
        self.max_in_flight_per_gateway = 0
        self.deletes: list[tuple[float, str, str]] = []
        self.describes = 0
        self.mutex_errors = 0
        self.stats = FakeStats()
        self.policies: list[RetryPolicy | None] = []

    def _expire(self) -> None:
        now = time.monotonic()
        for conn, t in list(self.tunnels.items()):
            if t.gone_at is not None and t.gone_at <= now:
                del self.tunnels[conn]

    @property
    def remaining(self) -> int:
        self._expire()
        return sum(1 for t in self.tunnels.values() if t.state is not TunnelState.DELETING)

    async def delete_vpn_connection(
        self,
        *,
        vpn_gateway_id: str,
        vpn_connection_id: str,
        missing_ok: bool = False,
        retry_policy: RetryPolicy | None = None,
    ) -> DeleteResult:
        self.policies.append(retry_policy)
        self.stats.requests_sent += 1
        self.deletes.append((time.monotonic(), vpn_gateway_id, vpn_connection_id))
        self.in_flight[vpn_gateway_id] += 1
        self.max_in_flight_per_gateway = max(
            self.max_in_flight_per_gateway, self.in_flight[vpn_gateway_id]
        )
        try:
            if self.block is not None:
                await self.block.wait()
            await asyncio.sleep(self.latency)
            return self._delete(vpn_gateway_id, vpn_connection_id, missing_ok)
        finally:
            self.in_flight[vpn_gateway_id] -= 1

    def _delete(self, gw: str, conn: str, missing_ok: bool) -> DeleteResult:
        ref = TunnelRef(gw, conn)
        rid = f"req-{len(self.deletes)}"
        if self.auth_error:
            raise AuthError(
                "AuthFailure.SecretIdNotFound",
                "no such key",
                request_id=rid,
                action="DeleteVpnConnection",
            )
        if self.fail.get(conn, 0) > 0:
            self.fail[conn] -= 1
            raise ServerError(
                "InternalError", self.fail_message, request_id=rid, action="DeleteVpnConnection"
            )
        self._expire()
        tunnel = self.tunnels.get(conn)
        stale = self.not_found.get(conn, 0) > 0
        if stale:
            self.not_found[conn] -= 1
        if tunnel is None or tunnel.gateway != gw or stale:
            if missing_ok:
                return DeleteResult(
                    ref, DeleteOutcome.ALREADY_GONE, rid, 1, error_code="ResourceNotFound"
                )
            raise NotFoundError(
                "ResourceNotFound", "gone", request_id=rid, action="DeleteVpnConnection"
            )
        if self.invalid_state.get(conn, 0) > 0 or tunnel.state is not TunnelState.AVAILABLE:
            self.invalid_state[conn] = self.invalid_state.get(conn, 0) - 1
            raise InvalidStateError(
                "UnsupportedOperation.DeleteVpnConnInvalidState",
                "mid-task",
                request_id=rid,
                action="DeleteVpnConnection",
            )
        now = time.monotonic()
        if self.mutex_until.get(gw, 0.0) > now:
            self.mutex_errors += 1
            raise GatewayBusyError(
                "UnsupportedOperation.MutexOperationTaskRunning",
                "busy",
                request_id=rid,
                action="DeleteVpnConnection",
            )
        tunnel.state = TunnelState.DELETING
        tunnel.gone_at = now + self.delete_seconds
        self.mutex_until[gw] = now + self.delete_seconds
        return DeleteResult(ref, DeleteOutcome.DELETED, rid, 1)

    async def describe_vpn_connections(
        self,
        *,
        vpn_connection_ids: Sequence[str] | None = None,
        filters: Mapping[str, Sequence[str]] | None = None,
        retry_policy: RetryPolicy | None = None,
    ) -> AsyncIterator[VpnConnection]:
        self.describes += 1
        self.stats.requests_sent += 1
        if self.describe_block is not None:
            await self.describe_block.wait()
        await asyncio.sleep(self.latency)
        self._expire()
        wanted_ids = set((filters or {}).get("vpn-connection-id", vpn_connection_ids or ()))
        wanted_gws = set((filters or {}).get("vpn-gateway-id", ()))
        for conn, t in list(self.tunnels.items()):
            if wanted_ids and conn not in wanted_ids:
                continue
            if wanted_gws and t.gateway not in wanted_gws:
                continue
            yield VpnConnection.from_api(
                {
                    "VpnConnectionId": conn,
                    "VpnGatewayId": t.gateway,
                    "VpnConnectionName": f"name-{conn}",
                    "State": str(t.state),
                }
            )
