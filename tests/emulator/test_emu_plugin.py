"""The pytest plugin: the fixture works here, and users can override its config."""

from __future__ import annotations

import aiohttp
import pytest
from emu_helpers import call

from tcvpc.emulator import Emulator

pytest_plugins = ["pytester"]


async def test_fixture_serves(tcvpc_emulator: Emulator, http: aiohttp.ClientSession) -> None:
    assert tcvpc_emulator.url.startswith("http://127.0.0.1:")
    answer = await call(http, tcvpc_emulator.url, "DescribeVpnConnections", {})
    assert answer.response["TotalCount"] == 10


@pytest.mark.slow
def test_users_can_override_the_config(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import pytest
        from tcvpc.emulator import EmulatorConfig

        @pytest.fixture
        def tcvpc_emulator_config():
            return EmulatorConfig(gateways=1, tunnels_per_gateway=2)
        """
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.asyncio  # needed in strict mode, harmless in auto mode
        async def test_it(tcvpc_emulator):
            assert len(tcvpc_emulator.tunnels()) == 2
            assert tcvpc_emulator.url.startswith("http://")
        """
    )
    for mode in ("auto", "strict"):
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--asyncio-mode={mode}")
        result.assert_outcomes(passed=1)
