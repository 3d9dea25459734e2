"""Configuration value objects for the emulator.

Both classes are frozen dataclasses validated on construction, so a bad value (a negative
duration, a probability outside [0, 1]) fails loudly where it is written, not deep inside a
request handler minutes later.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from tcvpc.emulator.codes import ACTIONS, INJECTABLE
from tcvpc.regions import KNOWN_REGIONS

__all__ = [
    "DEMO_REGION",
    "DEMO_SECRET_ID",
    "DEMO_SECRET_KEY",
    "FAULT_KINDS",
    "REGIONS",
    "EmulatorConfig",
    "FaultConfig",
]

#: The documented demo credentials. Obviously fake on purpose: the emulator accepts only the
#: configured pair, and this pair must never be mistaken for (or work against) a real account.
DEMO_SECRET_ID = "AKIDtcvpcEMULATOR0000000000000000000"  # noqa: S105 - documented fake id
DEMO_SECRET_KEY = "tcvpc-emulator-demo-key-not-secret"  # noqa: S105 - documented fake key
DEMO_REGION = "ap-guangzhou"

#: Regions accepted by default: Tencent Cloud's public regions, finance regions included.
REGIONS: tuple[str, ...] = KNOWN_REGIONS

#: Fault kinds in the fixed order in which one uniform draw is mapped onto them.
FAULT_KINDS: tuple[str, ...] = (
    "internal_error",
    "service_unavailable",
    "http_502_html",
    "drop_before_action",
    "drop_after_action",
    "stall",
    "truncated_json",
    "throttle_burst",
)


def _check_probability(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")


def _check_non_negative(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if math.isnan(value) or math.isinf(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


@dataclass(frozen=True)
class FaultConfig:
    """Per-request probability of each injected fault.

    One uniform draw per request picks at most one fault, walking the kinds in
    :data:`FAULT_KINDS` order, so the probabilities must sum to at most 1. The draw comes from the
    emulator's seeded RNG, so a sequential client sees the same faults on every run.

    Faults are drawn only for API requests that passed the protocol checks, the signature check
    and the server-side rate limit (see ``app.py``), right before the action runs: a fault never
    hides a real error, and a throttled request never also draws a fault.

    - ``internal_error``: ``InternalError`` envelope; the action is not done.
    - ``service_unavailable``: ``ServiceUnavailable`` envelope; the action is not done.
    - ``http_502_html``: HTTP 502 with an HTML page, as a load balancer gives; not done.
    - ``drop_before_action``: the connection is closed without an answer; not done.
    - ``drop_after_action``: the connection is closed without an answer; the action *is* done.
    - ``stall``: the action is done, the answer comes ``stall_seconds`` later (longer than a
      client's timeout, so the client sees a timeout with an unknown outcome).
    - ``truncated_json``: the action is done; HTTP 200, ``application/json``, the body cut in the
      middle (a well-framed response whose JSON does not parse).
    - ``throttle_burst``: this request and the next ``burst_length - 1`` API requests, but only
      those within ``burst_seconds``, get ``RequestLimitExceeded`` (someone else spending the
      same quota: it lasts until their second is over, however few requests we send); none is
      done.
    """

    internal_error: float = 0.0
    service_unavailable: float = 0.0
    http_502_html: float = 0.0
    drop_before_action: float = 0.0
    drop_after_action: float = 0.0
    stall: float = 0.0
    truncated_json: float = 0.0
    throttle_burst: float = 0.0
    burst_length: int = 10
    burst_seconds: float = 0.5

    def __post_init__(self) -> None:
        for kind in FAULT_KINDS:
            _check_probability(kind, getattr(self, kind))
        if self.total > 1.0 + 1e-9:
            raise ValueError(f"fault probabilities must sum to at most 1, got {self.total:g}")
        if isinstance(self.burst_length, bool) or not isinstance(self.burst_length, int):
            raise TypeError(f"burst_length must be an int, got {self.burst_length!r}")
        if self.burst_length < 1:
            raise ValueError(f"burst_length must be >= 1, got {self.burst_length}")
        if not (isinstance(self.burst_seconds, (int, float)) and self.burst_seconds > 0):
            raise ValueError(f"burst_seconds must be > 0, got {self.burst_seconds!r}")

    @classmethod
    def spread(cls, probability: float, *, burst_length: int = 10) -> FaultConfig:
        """Spread ``probability`` evenly over every fault kind (what ``--fault-rate`` does).

        The chance that a request meets *some* fault is then exactly ``probability``.
        """
        _check_probability("fault rate", probability)
        share = probability / len(FAULT_KINDS)
        return cls(**dict.fromkeys(FAULT_KINDS, share), burst_length=burst_length)

    @classmethod
    def only(cls, kind: str, probability: float = 1.0, **kwargs: int) -> FaultConfig:
        """A config with a single fault kind enabled (handy in tests)."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(FAULT_KINDS)}")
        return cls(**{kind: probability}, **kwargs)  # type: ignore[arg-type]

    @property
    def total(self) -> float:
        """Probability that a request meets any fault."""
        return float(sum(getattr(self, kind) for kind in FAULT_KINDS))

    def probabilities(self) -> tuple[tuple[str, float], ...]:
        """``(kind, probability)`` pairs in draw order."""
        return tuple((kind, float(getattr(self, kind))) for kind in FAULT_KINDS)


def _checked_inject(inject: object) -> Mapping[str, float]:
    """``inject`` as a read-only ``{code: probability}``, or ``ValueError``/``TypeError``."""
    if not isinstance(inject, Mapping):
        raise TypeError(f"inject must be a mapping of error code to probability, got {inject!r}")
    out: dict[str, float] = {}
    for code, probability in inject.items():
        if code not in INJECTABLE:
            raise ValueError(
                f"cannot inject {code!r}; injectable codes: {', '.join(sorted(INJECTABLE))}"
            )
        _check_probability(f"inject[{code!r}]", probability)
        out[code] = float(probability)
    for action in ACTIONS:
        total = sum(p for code, p in out.items() if action in INJECTABLE[code][0])
        if total > 1.0 + 1e-9:
            raise ValueError(
                f"injected probabilities for {action} sum to {total:g}; they must sum to at most 1"
            )
    return MappingProxyType(out)


@dataclass(frozen=True)
class EmulatorConfig:
    """Everything that shapes one emulator instance.

    - ``gateways`` x ``tunnels_per_gateway`` tunnels are seeded with reproducible IDs from
      ``seed``; when ``seed_file`` is given, the file is the seed instead (CSV with a header
      ``VpnGatewayId,VpnConnectionId[,VpcId,VpnConnectionName,State]``, or JSON lines with the
      same keys).
    - Only the ``secret_id``/``secret_key`` pair is accepted; only ``regions`` are served.
    - ``rate_limit``: at most this many requests are *admitted* per (secret id, region, action)
      in any sliding second; the rest get ``RequestLimitExceeded``. ``None`` disables it.
    - ``delete_seconds``: how long a deleted tunnel stays ``DELETING`` before it disappears.
    - ``mutex_seconds``: how long a gateway's mutex is held after a mutating call
      (``None``: ``delete_seconds``; ``0``: no mutex).
    - ``stall_seconds``: the delay of a ``stall`` fault.
    - ``clock_skew_seconds``: the server's clock runs this far ahead (or behind, if negative) of
      the machine's; beyond 300 s every request fails with ``AuthFailure.SignatureExpire`` until
      the client corrects its clock from the ``Date`` header.
    - ``token_seconds``: the longest lifetime of a temporary key the emulator issues (STS
      ``AssumeRole*`` and the metadata endpoint); requests signed with it after that get
      ``AuthFailure.TokenFailure``.
    - ``metadata``: also serve a CVM metadata endpoint under ``/latest/meta-data/`` naming the
      role ``metadata_role``.
    - ``stranger_rate``: another program spends this many requests per second of every budget
      (so at most ``rate_limit - stranger_rate`` are left to us), for ``stranger_seconds`` after
      the emulator starts (``None``: for ever).
    - ``strict_describe_ids``: ``DescribeVpnConnections`` with ``VpnConnectionIds`` that name an
      unknown tunnel answers ``ResourceNotFound`` (as the real VPC API does for explicit IDs);
      ``False`` silently omits unknown IDs instead.
    - ``inject``: ``{error code: probability}``; each request of an action the code belongs to
      (see :data:`~tcvpc.emulator.codes.INJECTABLE`) is answered with it at that probability,
      drawn from a seeded RNG of its own, after the rate limit and before ``faults``; the action
      is not done. Per action the probabilities must sum to at most 1.
    - ``tls``: serve HTTPS with a certificate from a throwaway CA made for this run (needs the
      ``trustme`` package); the CA's PEM file is ``Emulator.ca_path``.
    """

    host: str = "127.0.0.1"
    port: int = 0
    gateways: int = 4
    tunnels_per_gateway: int = 25
    seed_file: Path | None = None
    secret_id: str = DEMO_SECRET_ID
    secret_key: str = field(default=DEMO_SECRET_KEY, repr=False)
    regions: tuple[str, ...] = REGIONS
    rate_limit: float | None = 100.0
    delete_seconds: float = 1.0
    mutex_seconds: float | None = None
    faults: FaultConfig = FaultConfig()
    seed: int = 0
    stall_seconds: float = 20.0
    clock_skew_seconds: float = 0.0
    strict_describe_ids: bool = True
    inject: Mapping[str, float] = field(default_factory=dict, hash=False)
    tls: bool = False
    token_seconds: float = 7200.0
    metadata: bool = False
    metadata_role: str = "tcvpc-demo-role"
    stranger_rate: float = 0.0
    stranger_seconds: float | None = None

    def __post_init__(self) -> None:
        if not self.host:
            raise ValueError("host must not be empty")
        for name in ("port", "gateways", "tunnels_per_gateway", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, got {value!r}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in [0, 65535], got {self.port}")
        if self.gateways < 0:
            raise ValueError(f"gateways must be >= 0, got {self.gateways}")
        if self.tunnels_per_gateway < 0:
            raise ValueError(f"tunnels_per_gateway must be >= 0, got {self.tunnels_per_gateway}")
        if self.seed_file is not None and not isinstance(self.seed_file, Path):
            object.__setattr__(self, "seed_file", Path(self.seed_file))
        if not self.secret_id or not self.secret_key:
            raise ValueError("secret_id and secret_key must not be empty")
        if isinstance(self.regions, str):
            raise TypeError("regions must be a sequence of region names, not one string")
        object.__setattr__(self, "regions", tuple(self.regions))
        if not self.regions:
            raise ValueError("regions must not be empty")
        if self.rate_limit is not None:
            _check_non_negative("rate_limit", self.rate_limit)
            if self.rate_limit <= 0:
                raise ValueError(f"rate_limit must be > 0 or None, got {self.rate_limit!r}")
        _check_non_negative("delete_seconds", self.delete_seconds)
        if self.mutex_seconds is not None:
            _check_non_negative("mutex_seconds", self.mutex_seconds)
        _check_non_negative("stall_seconds", self.stall_seconds)
        if (
            isinstance(self.clock_skew_seconds, bool)
            or not isinstance(self.clock_skew_seconds, int | float)
            or not math.isfinite(self.clock_skew_seconds)
        ):
            raise ValueError(
                f"clock_skew_seconds must be a finite number, got {self.clock_skew_seconds!r}"
            )
        _check_non_negative("token_seconds", self.token_seconds)
        if not 1 <= self.token_seconds <= 43200:
            raise ValueError(f"token_seconds must be in [1, 43200], got {self.token_seconds!r}")
        if not re.fullmatch(r"[\w+=,.@-]{1,128}", self.metadata_role):
            raise ValueError(f"metadata_role {self.metadata_role!r} is not a CAM role name")
        _check_non_negative("stranger_rate", self.stranger_rate)
        if self.stranger_rate > 0:
            if self.rate_limit is None:
                raise ValueError("stranger_rate needs a rate_limit to take its share of")
            if self.stranger_rate > self.rate_limit:
                raise ValueError(
                    f"stranger_rate {self.stranger_rate:g} exceeds rate_limit {self.rate_limit:g}"
                )
        if self.stranger_seconds is not None:
            _check_non_negative("stranger_seconds", self.stranger_seconds)
            if self.stranger_seconds <= 0:
                raise ValueError(
                    f"stranger_seconds must be > 0 or None, got {self.stranger_seconds!r}"
                )
        if not isinstance(self.faults, FaultConfig):
            raise TypeError(f"faults must be a FaultConfig, got {self.faults!r}")
        object.__setattr__(self, "inject", _checked_inject(self.inject))
        if not isinstance(self.tls, bool):
            raise TypeError(f"tls must be a bool, got {self.tls!r}")

    @property
    def effective_mutex_seconds(self) -> float:
        """The gateway mutex's hold time, ``delete_seconds`` unless set."""
        return self.delete_seconds if self.mutex_seconds is None else self.mutex_seconds
