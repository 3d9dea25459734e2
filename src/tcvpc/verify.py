"""Verify "gone" before claiming it: look tunnels up by ID, whatever gateway they are on.

The delete action answers not-found for a tunnel named with the wrong gateway, so a not-found
alone does not prove the tunnel is gone. A destructive bulk job checks first: one batched
DescribeVpnConnections (on Describe's own budget) for many not-founds.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from tcvpc.models import TunnelRef, TunnelState, VpnConnection
from tcvpc.retry import RetryPolicy

__all__ = ["Whereabouts", "WhereaboutsKind", "locate_tunnels"]


class _Describer(Protocol):
    def describe_vpn_connections(
        self,
        *,
        vpn_connection_ids: Sequence[str] | None = None,
        filters: Mapping[str, Sequence[str]] | None = None,
        retry_policy: RetryPolicy | None = None,
    ) -> AsyncIterator[VpnConnection]: ...


class WhereaboutsKind(enum.StrEnum):
    """Where a tunnel named by (gateway, connection) really is."""

    GONE = "gone"
    """No tunnel with this ID exists (on any gateway)."""
    DELETING = "deleting"
    """It exists under the named gateway and is being deleted."""
    PRESENT = "present"
    """It exists under the named gateway and is not being deleted."""
    ON_ANOTHER_GATEWAY = "on_another_gateway"
    """A tunnel with this ID exists, but under a different gateway than the one named."""


@dataclass(frozen=True, slots=True)
class Whereabouts:
    """What the lookup found for one tunnel; ``found`` is the API's view (None when gone)."""

    tunnel: TunnelRef
    found: VpnConnection | None

    @property
    def kind(self) -> WhereaboutsKind:
        if self.found is None:
            return WhereaboutsKind.GONE
        if self.found.vpn_gateway_id != self.tunnel.vpn_gateway_id:
            return WhereaboutsKind.ON_ANOTHER_GATEWAY
        if self.found.state is TunnelState.DELETING:
            return WhereaboutsKind.DELETING
        return WhereaboutsKind.PRESENT

    @property
    def gone(self) -> bool:
        return self.kind is WhereaboutsKind.GONE


async def locate_tunnels(
    client: _Describer,
    tunnels: Iterable[TunnelRef],
    *,
    retry_policy: RetryPolicy | None = None,
) -> list[Whereabouts]:
    """Look ``tunnels`` up by connection ID alone and say where each one really is.

    Uses the ``vpn-connection-id`` filter rather than ``VpnConnectionIds``: the API answers
    not-found for a whole ID list when one ID in it is unknown. The client splits the filter
    into API-sized queries. Errors (throttling beyond retries, auth) propagate: a lookup that
    did not happen proves nothing. ``retry_policy`` is passed to the Describe calls (default:
    the client's).
    """
    refs = list(dict.fromkeys(tunnels))  # keep order, drop duplicates
    ids = list(dict.fromkeys(ref.vpn_connection_id for ref in refs))
    found: dict[str, VpnConnection] = {}
    if ids:
        listing = client.describe_vpn_connections(
            filters={"vpn-connection-id": ids}, retry_policy=retry_policy
        )
        async for tunnel in listing:
            found[tunnel.vpn_connection_id] = tunnel
    return [Whereabouts(ref, found.get(ref.vpn_connection_id)) for ref in refs]
