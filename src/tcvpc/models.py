"""Typed values the client returns and the cleanup job passes around.

Plain frozen dataclasses with no I/O: they are what callers keep, log and compare, so they are
immutable, hashable and cheap.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypedDict

from tcvpc.frozen import slot_setters

_GATEWAY_ID = re.compile(r"vpngw-[a-z0-9]{8}")
_CONNECTION_ID = re.compile(r"vpnx-[a-z0-9]{8}")


def looks_like_gateway_id(value: str) -> bool:
    """True for IDs shaped like real ones (``vpngw-`` + 8 lowercase letters or digits)."""
    return _GATEWAY_ID.fullmatch(value) is not None


def looks_like_connection_id(value: str) -> bool:
    """True for IDs shaped like real ones (``vpnx-`` + 8 lowercase letters or digits)."""
    return _CONNECTION_ID.fullmatch(value) is not None


def looks_like_tunnel(vpn_gateway_id: str, vpn_connection_id: str) -> bool:
    """Both :func:`looks_like_gateway_id` and :func:`looks_like_connection_id` (one call: every
    delete asks)."""
    return (
        _GATEWAY_ID.fullmatch(vpn_gateway_id) is not None
        and _CONNECTION_ID.fullmatch(vpn_connection_id) is not None
    )


# -- the API's answers, as TypedDicts ------------------------------------------------------------
# Keys are the API's own names. The client checks the envelope, not every field: an answer is
# what the server sent, so the optional fields are ``total=False`` and values deserve a check.


class TagDict(TypedDict, total=False):
    Key: str
    Value: str


class VpnConnectionDict(TypedDict, total=False):
    """One element of ``VpnConnectionSet`` (the fields this library knows; the API has more)."""

    VpnConnectionId: str
    VpnConnectionName: str
    VpcId: str
    VpnGatewayId: str
    CustomerGatewayId: str
    PreShareKey: str
    VpnProto: str
    EncryptProto: str
    RouteType: str
    CreatedTime: str
    State: str
    NetStatus: str
    SecurityPolicyDatabaseSet: list[dict[str, Any]]
    IKEOptionsSpecification: dict[str, Any]
    IPSECOptionsSpecification: dict[str, Any]
    EnableHealthCheck: bool
    HealthCheckLocalIp: str
    HealthCheckRemoteIp: str
    HealthCheckStatus: str
    TagSet: list[TagDict]


class DeleteVpnConnectionResponse(TypedDict):
    """The ``Response`` object of a successful DeleteVpnConnection."""

    RequestId: str


class DescribeVpnConnectionsResponse(TypedDict):
    """The ``Response`` object of a successful DescribeVpnConnections."""

    TotalCount: int
    VpnConnectionSet: list[VpnConnectionDict]
    RequestId: str


@dataclass(frozen=True, slots=True, order=True)
class TunnelRef:
    """One VPN tunnel as the delete action names it: the gateway that owns it and its own ID."""

    vpn_gateway_id: str
    vpn_connection_id: str

    def __init__(self, vpn_gateway_id: str, vpn_connection_id: str) -> None:
        # What dataclass generates, through the slots' own setters (frozen.py: every delete
        # builds one); dataclass keeps an __init__ the class defines.
        _set_gateway(self, vpn_gateway_id)
        _set_connection(self, vpn_connection_id)

    def __str__(self) -> str:
        return f"{self.vpn_gateway_id}/{self.vpn_connection_id}"


_set_gateway, _set_connection = slot_setters(TunnelRef, "vpn_gateway_id", "vpn_connection_id")


class DeleteOutcome(enum.StrEnum):
    """What became of one delete; the values are what reports and the journal store."""

    DELETED = "deleted"
    """The API accepted the delete (the tunnel is ``DELETING`` or gone)."""
    ALREADY_GONE = "already_gone"
    """The tunnel did not exist when we asked (and no attempt of ours had an unknown outcome)."""
    FAILED = "failed"
    """The delete did not happen; the error says why."""
    INVALID = "invalid"
    """The input naming the tunnel was unusable (cleanup job only)."""


@dataclass(frozen=True, slots=True)
class DeleteResult:
    """The result of :meth:`tcvpc.VpcClient.delete_vpn_connection`.

    ``outcome`` is :attr:`DeleteOutcome.DELETED` or :attr:`DeleteOutcome.ALREADY_GONE` (failures
    raise). ``inferred`` is true when an attempt's outcome was unknown (a timeout, a dropped
    connection, or an earlier call of this client that was cancelled or cut by its deadline) and
    a later attempt found the tunnel gone: that attempt most likely deleted it, so it counts as
    deleted, and the flag says that this was inferred, not acknowledged.
    """

    tunnel: TunnelRef
    outcome: DeleteOutcome
    request_id: str
    attempts: int
    inferred: bool = False
    error_code: str | None = None
    """The API code that ended the call (``ResourceNotFound`` for a tunnel already gone)."""

    def __init__(
        self,
        tunnel: TunnelRef,
        outcome: DeleteOutcome,
        request_id: str,
        attempts: int,
        inferred: bool = False,
        error_code: str | None = None,
    ) -> None:
        # As TunnelRef's: the generated __init__, through the slots' own setters.
        _set_tunnel(self, tunnel)
        _set_outcome(self, outcome)
        _set_request_id(self, request_id)
        _set_attempts(self, attempts)
        _set_inferred(self, inferred)
        _set_error_code(self, error_code)

    @property
    def deleted(self) -> bool:
        """True when the tunnel is gone or going, whichever attempt did it."""
        return self.outcome in (DeleteOutcome.DELETED, DeleteOutcome.ALREADY_GONE)


_set_tunnel, _set_outcome, _set_request_id, _set_attempts, _set_inferred, _set_error_code = (
    slot_setters(
        DeleteResult, "tunnel", "outcome", "request_id", "attempts", "inferred", "error_code"
    )
)


class TunnelState(enum.StrEnum):
    """``State`` of a tunnel as DescribeVpnConnections reports it."""

    PENDING = "PENDING"
    AVAILABLE = "AVAILABLE"
    DELETING = "DELETING"
    UNKNOWN = "UNKNOWN"
    """A state this library does not know yet; the raw value is in ``VpnConnection.raw``."""

    @classmethod
    def parse(cls, value: object) -> TunnelState:
        try:
            return cls(str(value))
        except ValueError:
            return cls.UNKNOWN


@dataclass(frozen=True, slots=True)
class Tag:
    key: str
    value: str


@dataclass(frozen=True, slots=True)
class VpnConnection:
    """One tunnel from DescribeVpnConnections; ``raw`` keeps every field the API returned."""

    vpn_connection_id: str
    vpn_gateway_id: str
    name: str
    vpc_id: str
    customer_gateway_id: str
    state: TunnelState
    net_status: str
    created_time: datetime | None
    tags: tuple[Tag, ...] = ()
    raw: VpnConnectionDict = field(
        default_factory=lambda: VpnConnectionDict(), compare=False, hash=False, repr=False
    )
    """Every field the API returned (``PreShareKey`` included: hence out of the repr)."""

    @property
    def ref(self) -> TunnelRef:
        return TunnelRef(self.vpn_gateway_id, self.vpn_connection_id)

    @classmethod
    def from_api(cls, item: VpnConnectionDict) -> VpnConnection:
        """Build from one ``VpnConnectionSet`` element; missing optional fields become empty."""
        created = item.get("CreatedTime")
        created_time: datetime | None = None
        if isinstance(created, str) and created:
            try:
                created_time = datetime.strptime(created, "%Y-%m-%d %H:%M:%S")
            except ValueError:
                created_time = None
        tags = tuple(
            Tag(str(t.get("Key", "")), str(t.get("Value", "")))
            for t in item.get("TagSet") or ()
            if isinstance(t, dict)  # the server's JSON: the TypedDict is a promise, not a check
        )
        return cls(
            vpn_connection_id=str(item.get("VpnConnectionId", "")),
            vpn_gateway_id=str(item.get("VpnGatewayId", "")),
            name=str(item.get("VpnConnectionName", "")),
            vpc_id=str(item.get("VpcId", "")),
            customer_gateway_id=str(item.get("CustomerGatewayId", "")),
            state=TunnelState.parse(item.get("State")),
            net_status=str(item.get("NetStatus", "")),
            created_time=created_time,
            tags=tags,
            raw=item,
        )
