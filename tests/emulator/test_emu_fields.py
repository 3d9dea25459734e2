"""Tunnels carry every field of the official SDK's ``VpnConnection`` model, documented values."""

from __future__ import annotations

import warnings
from typing import Any

import aiohttp
from emu_helpers import call
from tencentcloud.vpc.v20170312 import models

from tcvpc.emulator import Emulator, EmulatorConfig

# The model's nested types (the SDK names BgpConfig's type BgpConfigAndAsn).
NESTED = {
    "IKEOptionsSpecification": models.IKEOptionsSpecification,
    "IPSECOptionsSpecification": models.IPSECOptionsSpecification,
    "BgpConfig": models.BgpConfigAndAsn,
    "HealthCheckConfig": models.HealthCheckConfig,
}


def attributes(model: type[Any]) -> set[str]:
    """A model's fields: the SDK keeps each as ``_Name`` on a fresh instance."""
    return {name[1:] for name in vars(model()) if name.startswith("_")}


async def tunnels(http: aiohttp.ClientSession) -> dict[str, dict[str, Any]]:
    config = EmulatorConfig(gateways=0, seed_file=None)
    async with Emulator(config) as emu:
        # ids ending in "0" are shown as BGP tunnels with health checks, "1" as static routes
        emu.add_tunnel("vpnx-aaaaaaa0", "vpngw-aaaaaaaa", tags={"team": "net"})
        emu.add_tunnel("vpnx-aaaaaaa1", "vpngw-aaaaaaaa")
        answer = await call(http, emu.url, "DescribeVpnConnections", {})
        return {t["VpnConnectionId"]: t for t in answer.response["VpnConnectionSet"]}


async def test_every_model_field_is_present(http: aiohttp.ClientSession) -> None:
    found = await tunnels(http)
    bgp, static = found["vpnx-aaaaaaa0"], found["vpnx-aaaaaaa1"]
    model = attributes(models.VpnConnection)
    assert set(bgp) == model
    # documented: HealthCheckStatus is not returned when health checks are off
    assert set(static) == model - {"HealthCheckStatus"}
    for tunnel in (bgp, static):
        for name, nested in NESTED.items():
            assert set(tunnel[name]) == attributes(nested), name
        for spd in tunnel["SecurityPolicyDatabaseSet"]:
            assert set(spd) == attributes(models.SecurityPolicyDatabase)
    assert bgp["TagSet"] == [{"Key": "team", "Value": "net"}]
    assert set(bgp["TagSet"][0]) == attributes(models.Tag)


async def test_documented_values(http: aiohttp.ClientSession) -> None:
    found = await tunnels(http)
    bgp, static = found["vpnx-aaaaaaa0"], found["vpnx-aaaaaaa1"]
    for tunnel in (bgp, static):
        assert tunnel["VpnProto"] == "IPSEC"
        assert tunnel["EncryptProto"] == "IKE"
        assert tunnel["State"] == "AVAILABLE"
        assert tunnel["NegotiationType"] in ("active", "passive", "flowTrigger")
        assert tunnel["DpdEnable"] in (0, 1)
        assert tunnel["DpdAction"] in ("clear", "restart")
        ike = tunnel["IKEOptionsSpecification"]
        assert ike["LocalIdentity"] == ike["RemoteIdentity"] == "ADDRESS"
        assert ike["IKEVersion"] in ("IKEV1", "IKEV2")
        assert 60 <= ike["IKESaLifetimeSeconds"] <= 604800
        assert tunnel["HealthCheckConfig"]["ProbeType"] == "NQA"
        assert 1000 <= tunnel["HealthCheckConfig"]["ProbeInterval"] <= 5000
        assert 3 <= tunnel["HealthCheckConfig"]["ProbeThreshold"] <= 8
        assert 10 <= tunnel["HealthCheckConfig"]["ProbeTimeout"] <= 5000
    assert static["RouteType"] == "StaticRoute"
    assert static["EnableHealthCheck"] is False
    assert bgp["RouteType"] == "Bgp"
    assert bgp["EnableHealthCheck"] is True
    assert bgp["HealthCheckStatus"] == "AVAILABLE"
    assert bgp["BgpConfig"]["LocalBgpIp"]
    assert bgp["BgpConfig"]["RemoteBgpAsn"]


async def test_the_sdk_reads_every_field(http: aiohttp.ClientSession) -> None:
    """The SDK model deserializes our tunnel without leaving a field unset (nor warning)."""
    found = await tunnels(http)
    model = models.VpnConnection()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the SDK warns about fields its model does not know
        model._deserialize(found["vpnx-aaaaaaa0"])
    for name in attributes(models.VpnConnection):
        assert getattr(model, name) is not None, name
    assert model.IKEOptionsSpecification.LocalFqdnName == ""
    assert model.BgpConfig.LocalBgpAsn
