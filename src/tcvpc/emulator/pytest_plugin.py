"""pytest plugin (entry point ``tcvpc_emulator``): a running emulator as a fixture.

Override ``tcvpc_emulator_config`` in a ``conftest.py`` to change the seed, limits, faults,
injected codes or TLS. The plugin loads into every pytest run where tcvpc is installed, so it
imports nothing heavy at import time and, without pytest-asyncio, explains what is missing
instead of breaking collection.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tcvpc.emulator import Emulator, EmulatorConfig

try:
    import pytest_asyncio

    _async_fixture: Callable[..., Any] = pytest_asyncio.fixture
except ImportError:  # pragma: no cover - depends on the user's environment
    _async_fixture = pytest.fixture


@pytest.fixture
def tcvpc_emulator_config() -> EmulatorConfig:
    """A small account: 2 gateways x 5 tunnels, demo credentials, fast deletes."""
    from tcvpc.emulator import EmulatorConfig

    return EmulatorConfig(gateways=2, tunnels_per_gateway=5, delete_seconds=0.2, seed=0)


@_async_fixture
async def tcvpc_emulator(tcvpc_emulator_config: EmulatorConfig) -> AsyncIterator[Emulator]:
    """A running emulator on a free loopback port (``.url``), stopped after the test."""
    from tcvpc.emulator import Emulator

    async with Emulator(tcvpc_emulator_config) as emulator:
        yield emulator
