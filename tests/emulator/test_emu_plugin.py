"""The pytest plugin: the fixture works here, and users can override its config."""

from __future__ import annotations

import ssl

import aiohttp
import pytest
from emu_helpers import call

from tcvpc.emulator import Emulator, EmulatorConfig

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


class TestInjectionAndTlsThroughTheFixture:
    """``inject`` and ``tls`` reach the running emulator through ``tcvpc_emulator_config``."""

    @pytest.fixture
    def tcvpc_emulator_config(self) -> EmulatorConfig:
        return EmulatorConfig(
            gateways=1, tunnels_per_gateway=1, tls=True, inject={"InternalError.ModuleError": 1.0}
        )

    async def test_it(self, tcvpc_emulator: Emulator) -> None:
        context = ssl.create_default_context(cafile=str(tcvpc_emulator.ca_path))
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as http:
            answer = await call(http, tcvpc_emulator.url, "DescribeVpnConnections", {})
        assert answer.code == "InternalError.ModuleError"
