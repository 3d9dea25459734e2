"""A local emulator of the Tencent Cloud VPC API (the parts tcvpc uses), like moto for AWS.

Run it in-process (``async with Emulator(EmulatorConfig(...)) as emu: emu.url``), as the pytest
fixture ``tcvpc_emulator`` or as a process (``tcvpc emulator``). It verifies signatures with its
own verifier, keeps a tunnel state machine with gateway mutexes, enforces a sliding-window rate
limit and injects seeded faults and documented error codes, over HTTP or HTTPS.
"""

from tcvpc.emulator.codes import INJECTABLE
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
    "INJECTABLE",
    "REGIONS",
    "EmuTunnelState",
    "Emulator",
    "EmulatorConfig",
    "FaultConfig",
]
