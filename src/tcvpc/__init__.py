"""tcvpc: an asyncio client for the Tencent Cloud VPC API (API 3.0, TC3-HMAC-SHA256).

    from tcvpc import VpcClient, Credential

    async with VpcClient(credential=Credential("AKID...", "..."), region="ap-guangzhou") as client:
        result = await client.delete_vpn_connection(
            vpn_gateway_id="vpngw-7lcl5331", vpn_connection_id="vpnx-p0j11j28")

The public surface is re-exported here; the modules behind it are implementation details.
"""

from tcvpc._version import __version__
from tcvpc.chain import default_provider
from tcvpc.client import ClientStats, VpcClient
from tcvpc.credentials import Credential, CredentialProvider, StaticProvider, default_credential
from tcvpc.errors import (
    ApiError,
    AuthError,
    BadRequestError,
    ClientClosedError,
    CredentialsError,
    CredentialsNotFoundError,
    DeadlineExceededError,
    EventLoopError,
    GatewayBusyError,
    InvalidStateError,
    NotFoundError,
    QueueFullError,
    RequestTimeoutError,
    ResourceBusyError,
    ResponseError,
    ResponseTooLargeError,
    RetryKind,
    ServerError,
    SignatureExpiredError,
    TcvpcError,
    ThrottledError,
    TokenExpiredError,
    TransportError,
    UntrustedCertificateError,
)
from tcvpc.lanes import GatewayLanes, HoldEstimator
from tcvpc.metadata import CvmRoleProvider
from tcvpc.models import (
    DeleteOutcome,
    DeleteResult,
    DeleteVpnConnectionResponse,
    DescribeVpnConnectionsResponse,
    Tag,
    TagDict,
    TunnelRef,
    TunnelState,
    VpnConnection,
    VpnConnectionDict,
)
from tcvpc.outcomes import UnknownOutcomes
from tcvpc.ratelimit import (
    AdaptiveLimiter,
    LimiterRegistry,
    Limiters,
    RateLimiter,
    StrictRateLimiter,
    shared_limiters,
)
from tcvpc.refreshing import RefreshableProvider, RefreshingProvider
from tcvpc.retry import Backoff, RetryBudget, RetryPolicy
from tcvpc.sts import StsAssumeRoleProvider, TkeOidcProvider
from tcvpc.telemetry import CallEvent, ClientMetrics, RetryEvent
from tcvpc.transport import (
    DEFAULT_MAX_RESPONSE_BYTES,
    AiohttpTransport,
    AsyncTransport,
    MockTransport,
    Request,
    Response,
)
from tcvpc.verify import Whereabouts, WhereaboutsKind, locate_tunnels

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "AdaptiveLimiter",
    "AiohttpTransport",
    "ApiError",
    "AsyncTransport",
    "AuthError",
    "Backoff",
    "BadRequestError",
    "CallEvent",
    "ClientClosedError",
    "ClientMetrics",
    "ClientStats",
    "Credential",
    "CredentialProvider",
    "CredentialsError",
    "CredentialsNotFoundError",
    "CvmRoleProvider",
    "DeadlineExceededError",
    "DeleteOutcome",
    "DeleteResult",
    "DeleteVpnConnectionResponse",
    "DescribeVpnConnectionsResponse",
    "EventLoopError",
    "GatewayBusyError",
    "GatewayLanes",
    "HoldEstimator",
    "InvalidStateError",
    "LimiterRegistry",
    "Limiters",
    "MockTransport",
    "NotFoundError",
    "QueueFullError",
    "RateLimiter",
    "RefreshableProvider",
    "RefreshingProvider",
    "Request",
    "RequestTimeoutError",
    "ResourceBusyError",
    "Response",
    "ResponseError",
    "ResponseTooLargeError",
    "RetryBudget",
    "RetryEvent",
    "RetryKind",
    "RetryPolicy",
    "ServerError",
    "SignatureExpiredError",
    "StaticProvider",
    "StrictRateLimiter",
    "StsAssumeRoleProvider",
    "Tag",
    "TagDict",
    "TcvpcError",
    "ThrottledError",
    "TkeOidcProvider",
    "TokenExpiredError",
    "TransportError",
    "TunnelRef",
    "TunnelState",
    "UnknownOutcomes",
    "UntrustedCertificateError",
    "VpcClient",
    "VpnConnection",
    "VpnConnectionDict",
    "Whereabouts",
    "WhereaboutsKind",
    "__version__",
    "default_credential",
    "default_provider",
    "locate_tunnels",
    "shared_limiters",
]
