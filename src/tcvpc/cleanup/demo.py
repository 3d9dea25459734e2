"""``tcvpc demo``: the cleanup job against an emulator in this process (no credentials, no network).

It is the README's first command: it shows the job at full speed with faults on, then checks
with the emulator that nothing was left behind.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

import click
from rich.console import Console

from tcvpc.cleanup.command import EXIT_INTERRUPTED, CleanupOptions, cleanup, verbose_option
from tcvpc.cleanup.progress import configure_logging
from tcvpc.credentials import Credential
from tcvpc.ratelimit import DEFAULT_RATE

__all__ = ["demo_command", "run_demo"]


@click.command("demo")
@click.option("--gateways", default=60, show_default=True, type=click.IntRange(1, 1000))
@click.option("--tunnels-per-gateway", default=50, show_default=True, type=click.IntRange(1, 1000))
@click.option(
    "--delete-seconds",
    default=0.5,
    show_default=True,
    type=click.FloatRange(0.0, 60.0),
    help="How long a deleted tunnel stays DELETING (and holds its gateway's mutex).",
)
@click.option(
    "--fault-rate",
    default=0.02,
    show_default=True,
    type=click.FloatRange(0.0, 0.5),
    help="Share of requests that meet an injected fault.",
)
@click.option("--seed", default=1, show_default=True, type=int)
@click.option("--report", metavar="PATH", help="Also write the per-tunnel report.")
@verbose_option
def demo_command(
    gateways: int,
    tunnels_per_gateway: int,
    delete_seconds: float,
    fault_rate: float,
    seed: int,
    report: str | None,
    verbose: int,
) -> None:
    """Run a cleanup against a local emulator: no credentials, no network.

    Starts the emulator in this process with gateways x tunnels-per-gateway tunnels, realistic
    delete and mutex times and some injected faults, deletes them all, prints the summary and
    stops everything.
    """
    configure_logging(verbose)
    sys.exit(run_demo(gateways, tunnels_per_gateway, delete_seconds, fault_rate, seed, report))


def run_demo(
    gateways: int,
    tunnels_per_gateway: int,
    delete_seconds: float,
    fault_rate: float,
    seed: int,
    report: str | None,
    *,
    console: Console | None = None,
) -> int:
    out = console or Console()
    try:
        return asyncio.run(
            _demo(gateways, tunnels_per_gateway, delete_seconds, fault_rate, seed, report, out)
        )
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


async def _demo(
    gateways: int,
    tunnels_per_gateway: int,
    delete_seconds: float,
    fault_rate: float,
    seed: int,
    report: str | None,
    out: Console,
) -> int:
    from tcvpc.emulator import (
        DEMO_REGION,
        DEMO_SECRET_ID,
        DEMO_SECRET_KEY,
        Emulator,
        EmulatorConfig,
        FaultConfig,
    )

    config = EmulatorConfig(
        gateways=gateways,
        tunnels_per_gateway=tunnels_per_gateway,
        delete_seconds=delete_seconds,
        faults=FaultConfig.spread(fault_rate),
        stall_seconds=3.0,
        seed=seed,
    )
    total = gateways * tunnels_per_gateway
    bound = max(total / DEFAULT_RATE, tunnels_per_gateway * delete_seconds)
    async with Emulator(config) as emulator:
        out.print(
            f"[bold]tcvpc demo[/]: emulator at {emulator.url} with {total} tunnels on {gateways} "
            f"gateways; delete/mutex {delete_seconds:g} s; {fault_rate:.0%} of requests faulty. "
            f"Lower bound on the time: {bound:.1f} s.",
            highlight=False,
        )
        with tempfile.TemporaryDirectory(prefix="tcvpc-demo-") as tmp:
            tunnel_file = Path(tmp) / "tunnels.csv"
            with tunnel_file.open("w", encoding="utf-8") as f:
                f.write("VpnGatewayId,VpnConnectionId\n")
                for t in emulator.tunnels():
                    f.write(f"{t['gateway']},{t['id']}\n")
            options = CleanupOptions(
                input=str(tunnel_file),
                region=DEMO_REGION,
                endpoint=emulator.url,
                journal=str(Path(tmp) / "demo.journal.sqlite"),
                report=report,
                default_report=False,  # it would be deleted with the temporary journal
                credential=Credential(DEMO_SECRET_ID, DEMO_SECRET_KEY),
                timeout=2.0,
            )
            status = await cleanup(options, out, Console(stderr=True, soft_wrap=True))
        # The last deletes were accepted moments ago: give them their delete time to finish.
        for _ in range(int((delete_seconds + 2.0) / 0.05)):
            if not emulator.state.counts()["DELETING"]:
                break
            await asyncio.sleep(0.05)  # the emulator expires lazily: nothing to wait on
        left = emulator.state.counts()
        out.print(
            f"emulator: {left['total']} tunnel(s) left "
            f"({left.get('DELETING', 0)} still DELETING, {left.get('AVAILABLE', 0)} available)",
            highlight=False,
        )
    return status
