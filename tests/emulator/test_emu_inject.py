"""Injected documented error codes: validation, which actions they hit, seeding, CLI parsing."""

from __future__ import annotations

from typing import Any

import aiohttp
import click
import pytest
from click.testing import CliRunner
from emu_helpers import call

from tcvpc.emulator import Emulator, EmulatorConfig
from tcvpc.emulator.codes import INJECTABLE
from tcvpc.emulator.command import emulator_command, parse_injections
from tcvpc.emulator.faults import CodeInjector


def delete_params(emu: Emulator, n: int = 0) -> dict[str, str]:
    t = emu.tunnels()[n]
    return {"VpnGatewayId": t["gateway"], "VpnConnectionId": t["id"]}


def test_the_documented_codes_are_injectable_into_their_actions() -> None:
    delete_only = {"UnsupportedOperation.RecordNotExists", "UnsupportedOperation.InvalidState"}
    describe_only = {"InternalError.ModuleError", "UnsupportedOperation"}
    for code in delete_only:
        assert INJECTABLE[code][0] == {"DeleteVpnConnection"}
    for code in describe_only:
        assert INJECTABLE[code][0] == {"DescribeVpnConnections"}
    assert INJECTABLE["LimitExceeded.ActionLimited"][0] == {
        "DeleteVpnConnection",
        "DescribeVpnConnections",
    }


@pytest.mark.parametrize(
    ("inject", "error"),
    [
        ({"NoSuchCode": 0.1}, ValueError),
        ({"InternalError": 1.5}, ValueError),
        ({"InternalError": -0.1}, ValueError),
        ({"InternalError": float("nan")}, ValueError),
        ({"InternalError": "0.1"}, TypeError),
        ({"InternalError": 0.6, "UnsupportedOperation.InvalidState": 0.6}, ValueError),
        ([("InternalError", 0.1)], TypeError),
    ],
)
def test_config_rejects_bad_injections(inject: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        EmulatorConfig(inject=inject)


def test_config_accepts_a_full_share_per_action() -> None:
    # 0.6 + 0.4 on each action: codes of different actions do not add up
    config = EmulatorConfig(
        inject={
            "UnsupportedOperation.InvalidState": 0.6,
            "UnsupportedOperation": 0.6,
            "InternalError": 0.4,
        }
    )
    assert dict(config.inject)["InternalError"] == 0.4
    with pytest.raises(TypeError):
        config.inject["InternalError"] = 1.0  # type: ignore[index]
    # still a value object: equal configs hash alike
    again = EmulatorConfig(inject=dict(config.inject))
    assert again == config
    assert hash(again) == hash(config)


async def test_injected_code_answers_its_action_only(http: aiohttp.ClientSession) -> None:
    config = EmulatorConfig(
        gateways=1,
        tunnels_per_gateway=3,
        delete_seconds=30,
        inject={"UnsupportedOperation.RecordNotExists": 1.0},
    )
    async with Emulator(config) as emu:
        params = delete_params(emu)
        answer = await call(http, emu.url, "DeleteVpnConnection", params)
        assert answer.code == "UnsupportedOperation.RecordNotExists"
        assert emu.tunnel(params["VpnConnectionId"])["state"] == "AVAILABLE"  # type: ignore[index]
        answer = await call(http, emu.url, "DescribeVpnConnections", {})
        assert answer.code is None
        assert answer.response["TotalCount"] == 3
        stats = emu.stats()
        assert stats["faults"] == {"UnsupportedOperation.RecordNotExists": 1}


async def test_real_errors_come_first(http: aiohttp.ClientSession) -> None:
    """An injected code never hides a bad signature; the rate limit answers before it too."""
    config = EmulatorConfig(gateways=1, tunnels_per_gateway=1, inject={"InternalError": 1.0})
    async with Emulator(config) as emu:
        answer = await call(http, emu.url, "DescribeVpnConnections", {}, secret_key="wrong")
        assert answer.code == "AuthFailure.SignatureFailure"
        answer = await call(http, emu.url, "DescribeVpnConnections", {})
        assert answer.code == "InternalError"


async def test_injection_is_seeded(http: aiohttp.ClientSession) -> None:
    async def codes(seed: int) -> list[str | None]:
        config = EmulatorConfig(
            gateways=1,
            tunnels_per_gateway=1,
            seed=seed,
            rate_limit=None,
            inject={"LimitExceeded.ActionLimited": 0.3, "InternalError.ModuleError": 0.2},
        )
        async with Emulator(config) as emu:
            return [
                (await call(http, emu.url, "DescribeVpnConnections", {})).code for _ in range(40)
            ]

    first = await codes(7)
    assert first == await codes(7)
    assert first != await codes(8)
    assert {"LimitExceeded.ActionLimited", "InternalError.ModuleError", None} == set(first)


def test_injector_frequencies_follow_the_probabilities() -> None:
    injector = CodeInjector({"InternalError": 0.25, "UnsupportedOperation.InvalidState": 0.5}, 1)
    draws = [injector.draw("DeleteVpnConnection") for _ in range(4000)]
    # binomial standard deviations are ~27 and ~32: these bounds are over 5 of them
    assert 850 < draws.count("InternalError") < 1150
    assert 1800 < draws.count("UnsupportedOperation.InvalidState") < 2200
    assert all(
        injector.draw("DescribeVpnConnections") != "UnsupportedOperation.InvalidState"
        for _ in range(200)
    )


def test_injector_without_codes_draws_nothing() -> None:
    injector = CodeInjector({"InternalError": 0.0}, 1)
    assert all(injector.draw(a) is None for a in ("DeleteVpnConnection", "X") for _ in range(50))


def test_cli_parses_injections() -> None:
    assert parse_injections(["InternalError=0.5", " ResourceNotFound =1"]) == {
        "InternalError": 0.5,
        "ResourceNotFound": 1.0,
    }
    for bad, hint in [
        ("InternalError", "CODE=P"),
        ("=0.5", "CODE=P"),
        ("Nope=0.5", "not injectable"),
        ("InternalError=x", "between 0 and 1"),
        ("InternalError=1.01", "between 0 and 1"),
        ("InternalError=nan", "between 0 and 1"),
    ]:
        with pytest.raises(click.BadParameter, match=hint):
            parse_injections([bad])
    with pytest.raises(click.BadParameter, match="twice"):
        parse_injections(["InternalError=0.1", "InternalError=0.2"])


def test_cli_reports_bad_injections_clearly() -> None:
    result = CliRunner().invoke(emulator_command, ["--inject", "Bogus.Code=0.5"])
    assert result.exit_code == 2
    assert "--inject" in result.output
    assert "LimitExceeded.ActionLimited" in result.output  # the choices are listed
    result = CliRunner().invoke(
        emulator_command, ["--inject", "InternalError=0.7", "--inject", "InternalServerError=0.7"]
    )
    assert result.exit_code == 2
    assert "sum to" in result.output
