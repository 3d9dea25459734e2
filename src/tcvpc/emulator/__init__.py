"""A local emulator of the Tencent Cloud VPC API (the parts tcvpc uses), like moto for AWS.

Run it in-process (``async with Emulator(EmulatorConfig(...)) as emu: emu.url``), as a pytest
fixture (``tcvpc_emulator``, from the ``tcvpc_emulator`` pytest plugin), or as a process
(``tcvpc emulator``). It verifies TC3-HMAC-SHA256 signatures with its own verifier, keeps a
tunnel state machine with gateway mutexes, enforces a sliding-window rate limit and injects
seeded faults. Module map: ``config`` (value objects), ``auth`` (signature verification),
``state`` (tunnels, pure), ``errors`` (the error answer), ``limits`` (sliding window),
``faults``, ``stats``, ``seed``,
``app`` (HTTP handlers, envelope), ``server`` (the context manager), ``command`` (CLI),
``pytest_plugin``.
"""

from tcvpc.emulator.config import (
    DEMO_REGION,
    DEMO_SECRET_ID,
    DEMO_SECRET_KEY,
    FAULT_KINDS,
    REGIONS,
    EmulatorConfig,
    FaultConfig,
)
from tcvpc.emulator.server import Emulator
from tcvpc.emulator.state import EmuTunnelState

__all__ = [
    "DEMO_REGION",
    "DEMO_SECRET_ID",
    "DEMO_SECRET_KEY",
    "FAULT_KINDS",
    "REGIONS",
    "EmuTunnelState",
    "Emulator",
    "EmulatorConfig",
    "FaultConfig",
]
