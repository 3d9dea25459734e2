"""``python -m benchmarks [--quick] [b0 ... b7]``: run them (all when none is named)."""

from __future__ import annotations

import time
from collections.abc import Callable

import click

from benchmarks import (
    b0_emulator,
    b1_overhead,
    b2_rate,
    b3_cleanup,
    b4_scale,
    b5_fleet,
    b6_strangers,
    b7_gather,
    soak,
)
from benchmarks.common import Report, save_results

BENCHMARKS: dict[str, Callable[[bool], Report]] = {
    "b0": lambda quick: b0_emulator.run(quick=quick),
    "b1": lambda quick: b1_overhead.run(quick=quick),
    "b2": lambda quick: b2_rate.run(quick=quick),
    "b3": lambda quick: b3_cleanup.run(quick=quick),
    "b4": lambda quick: b4_scale.run(quick=quick),
    "b5": lambda quick: b5_fleet.run(quick=quick),
    "b6": lambda quick: b6_strangers.run(quick=quick),
    "b7": lambda quick: b7_gather.run(quick=quick),
    "soak": lambda quick: soak.run(quick=quick),
}


@click.command()
@click.argument("names", nargs=-1, type=click.Choice(list(BENCHMARKS)))
@click.option("--quick", is_flag=True, help="A short version of each (about five minutes in all).")
def main(names: tuple[str, ...], quick: bool) -> None:
    """Run B0 (emulator), B1 (overhead), B2 (rate), B3 (cleanup), B4 (scale), B5 (fleet),
    B6 (a stranger spends part of the quota),
    B7 (a gather of deletes, gateway lanes on and off).

    Tables are printed as markdown and saved with machine info under benchmarks/results/.
    """
    t0 = time.monotonic()
    for name in names or tuple(BENCHMARKS):
        click.echo(f"== {name} {'(quick)' if quick else ''}", err=True)
        save_results(BENCHMARKS[name](quick))
    click.echo(f"== done in {time.monotonic() - t0:.0f} s", err=True)


if __name__ == "__main__":
    main()
