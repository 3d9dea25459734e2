"""The two client calls the cleanup job needs, as a structural type.

The engine depends on this :class:`CleanupClient` protocol, not on ``VpcClient``: tests drive the
scheduler with small fakes (no HTTP, fake timing), and the real client satisfies it without
inheriting anything. Counters the summary shows are optional (:class:`HasClientStats`), so a fake
does not have to imitate them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Protocol, runtime_checkable

from tcvpc.models import DeleteResult, VpnConnection
from tcvpc.retry import RetryPolicy

__all__ = ["CleanupClient", "ClientStatsLike", "HasClientStats"]


class CleanupClient(Protocol):
    """What the job calls: one delete, and the paged listing (to discover and to watch)."""

    async def delete_vpn_connection(
        self,
        *,
        vpn_gateway_id: str,
        vpn_connection_id: str,
        missing_ok: bool = False,
        retry_policy: RetryPolicy | None = None,
    ) -> DeleteResult: ...

    def describe_vpn_connections(
        self,
        *,
        vpn_connection_ids: Sequence[str] | None = None,
        filters: Mapping[str, Sequence[str]] | None = None,
        retry_policy: RetryPolicy | None = None,
    ) -> AsyncIterator[VpnConnection]: ...


class ClientStatsLike(Protocol):
    """The counters of ``tcvpc.client.ClientStats`` that the summary reports."""

    @property
    def requests_sent(self) -> int: ...

    @property
    def retries_by_code(self) -> Mapping[str, int]: ...

    @property
    def throttled(self) -> int: ...


@runtime_checkable
class HasClientStats(Protocol):
    """A client that counts its requests (the real one does; fakes may not)."""

    @property
    def stats(self) -> ClientStatsLike: ...
