"""The pure state machine, driven by a fake clock (no sleeps, no timing fragility)."""

from __future__ import annotations

import pytest

from tcvpc.emulator.seed import generate, populate
from tcvpc.emulator.state import EmuStateError, EmuTunnelState, VpcState


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


GW1, GW2 = "vpngw-aaaaaaa1", "vpngw-bbbbbbb2"


def make(delete: float = 5.0, mutex: float | None = None) -> tuple[VpcState, FakeClock]:
    clock = FakeClock()
    state = VpcState(delete_seconds=delete, mutex_seconds=mutex, clock=clock)
    for i in range(3):
        state.add_tunnel(f"vpnx-aaaaaa{i:02d}", GW1, vpc_id="vpc-11111111")
        state.add_tunnel(f"vpnx-bbbbbb{i:02d}", GW2, vpc_id="vpc-22222222")
    return state, clock


def code_of(exc: pytest.ExceptionInfo[EmuStateError]) -> str:
    return exc.value.code


def test_delete_goes_deleting_then_disappears() -> None:
    state, clock = make(delete=5.0)
    state.delete(GW1, "vpnx-aaaaaa00")
    assert state.get("vpnx-aaaaaa00").state is EmuTunnelState.DELETING  # type: ignore[union-attr]
    assert state.counts()["DELETING"] == 1
    clock.now += 4.9
    assert state.get("vpnx-aaaaaa00") is not None
    clock.now += 0.2
    assert state.get("vpnx-aaaaaa00") is None
    assert state.counts() == {"PENDING": 0, "AVAILABLE": 5, "DELETING": 0, "total": 5}
    assert state.deleted_total == 1
    with pytest.raises(EmuStateError) as info:
        state.delete(GW1, "vpnx-aaaaaa00")
    assert code_of(info) == "ResourceNotFound"


def test_deleting_and_pending_are_invalid_state() -> None:
    state, _clock = make(delete=5.0, mutex=0)
    state.delete(GW1, "vpnx-aaaaaa00")
    with pytest.raises(EmuStateError) as info:
        state.delete(GW1, "vpnx-aaaaaa00")
    assert code_of(info) == "UnsupportedOperation.DeleteVpnConnInvalidState"
    state.set_state("vpnx-aaaaaa01", EmuTunnelState.PENDING)
    with pytest.raises(EmuStateError) as info:
        state.delete(GW1, "vpnx-aaaaaa01")
    assert code_of(info) == "UnsupportedOperation.DeleteVpnConnInvalidState"


@pytest.mark.parametrize(
    ("gateway", "tunnel", "code"),
    [
        ("vpngw-XXXXXXXX", "vpnx-aaaaaa00", "InvalidParameterValue.Malformed"),
        (GW1, "vpnx-short", "InvalidParameterValue.Malformed"),
        (GW1, "tunnel-1", "InvalidParameterValue.Malformed"),
        (GW1, "vpnx-zzzzzzzz", "ResourceNotFound"),
        (GW2, "vpnx-aaaaaa00", "ResourceNotFound"),  # exists, but on another gateway
        ("vpngw-cccccccc", "vpnx-aaaaaa00", "ResourceNotFound"),
    ],
)
def test_delete_errors(gateway: str, tunnel: str, code: str) -> None:
    state, _ = make()
    with pytest.raises(EmuStateError) as info:
        state.delete(gateway, tunnel)
    assert code_of(info) == code


def test_mutex_per_gateway() -> None:
    state, clock = make(delete=5.0, mutex=2.0)
    state.delete(GW1, "vpnx-aaaaaa00")
    with pytest.raises(EmuStateError) as info:
        state.delete(GW1, "vpnx-aaaaaa01")
    assert code_of(info) == "UnsupportedOperation.MutexOperationTaskRunning"
    state.delete(GW2, "vpnx-bbbbbb00")  # another gateway is independent
    clock.now += 2.01
    state.delete(GW1, "vpnx-aaaaaa01")


def test_mutex_defaults_to_delete_seconds_and_zero_disables() -> None:
    state, clock = make(delete=3.0)
    assert state.mutex_seconds == 3.0
    state.delete(GW1, "vpnx-aaaaaa00")
    clock.now += 2.9
    with pytest.raises(EmuStateError):
        state.delete(GW1, "vpnx-aaaaaa01")
    state, _ = make(delete=3.0, mutex=0.0)
    state.delete(GW1, "vpnx-aaaaaa00")
    state.delete(GW1, "vpnx-aaaaaa01")


def test_zero_delete_seconds_removes_at_once() -> None:
    state, _ = make(delete=0.0)
    state.delete(GW1, "vpnx-aaaaaa00")
    assert state.get("vpnx-aaaaaa00") is None


def test_describe_filters_and_paging() -> None:
    state, _ = make()
    total, page = state.describe(offset=0, limit=4)
    assert total == 6
    assert [t.tunnel_id for t in page] == [
        "vpnx-aaaaaa00",
        "vpnx-bbbbbb00",
        "vpnx-aaaaaa01",
        "vpnx-bbbbbb01",
    ]
    total, page = state.describe(filters={"vpn-gateway-id": [GW2]}, offset=1, limit=5)
    assert total == 3
    assert [t.tunnel_id for t in page] == ["vpnx-bbbbbb01", "vpnx-bbbbbb02"]
    total, page = state.describe(filters={"vpc-id": ["vpc-11111111"]})
    assert total == 3
    total, _ = state.describe(
        filters={
            "vpn-gateway-id": [GW1, GW2],
            "vpn-connection-id": ["vpnx-aaaaaa00", "vpnx-bbbbbb01"],
        }
    )
    assert total == 2
    total, _ = state.describe(filters={"vpn-gateway-id": [GW1], "vpc-id": ["vpc-22222222"]})
    assert total == 0
    total, _ = state.describe(filters={"vpn-connection-name": ["vpnx-aaaaaa02"]})
    assert total == 1
    with pytest.raises(EmuStateError) as info:
        state.describe(filters={"state": ["AVAILABLE"]})
    assert code_of(info) == "InvalidParameter.FilterInvalidKey"


def test_describe_ids() -> None:
    state, _ = make()
    total, page = state.describe(ids=["vpnx-bbbbbb02", "vpnx-aaaaaa00", "vpnx-aaaaaa00"])
    assert total == 2
    assert [t.tunnel_id for t in page] == ["vpnx-bbbbbb02", "vpnx-aaaaaa00"]
    with pytest.raises(EmuStateError) as info:
        state.describe(ids=["vpnx-aaaaaa00", "vpnx-zzzzzzzz"])
    assert code_of(info) == "ResourceNotFound"
    total, _ = state.describe(ids=["vpnx-aaaaaa00", "vpnx-zzzzzzzz"], strict_ids=False)
    assert total == 1
    with pytest.raises(EmuStateError) as info:
        state.describe(ids=["bad"])
    assert code_of(info) == "InvalidParameterValue.Malformed"


def test_paging_is_consistent_through_deletions_at_scale() -> None:
    clock = FakeClock()
    state = VpcState(delete_seconds=1.0, mutex_seconds=0.0, clock=clock)
    populate(state, generate(50, 400, seed=7))  # 20,000 tunnels
    ids = [t.tunnel_id for t in state.tunnels()]
    assert len(ids) == len(set(ids)) == 20_000
    # delete three quarters (forces compaction of the indices), then let them expire
    for t in state.tunnels():
        if t.seq % 4:
            state.delete(t.gateway_id, t.tunnel_id)
    clock.now += 1.5
    survivors = [i for n, i in enumerate(ids) if n % 4 == 0]
    assert len(state) == 5_000
    paged: list[str] = []
    offset = 0
    while True:
        total, page = state.describe(offset=offset, limit=100)
        assert total == 5_000
        if not page:
            break
        paged.extend(t.tunnel_id for t in page)
        offset += len(page)
    assert paged == survivors
    gateway = state.tunnels()[0].gateway_id
    total, page = state.describe(filters={"vpn-gateway-id": [gateway]}, offset=90, limit=100)
    assert total == 100
    assert len(page) == 10


def test_add_tunnel_validation() -> None:
    state, _ = make()
    with pytest.raises(ValueError, match="already exists"):
        state.add_tunnel("vpnx-aaaaaa00", GW1, vpc_id="vpc-1")
    with pytest.raises(ValueError, match="malformed"):
        state.add_tunnel("vpnx-AAAAAAAA", GW1, vpc_id="vpc-1")
    with pytest.raises(ValueError, match="malformed"):
        state.add_tunnel("vpnx-aaaaaa99", "gw-1", vpc_id="vpc-1")
