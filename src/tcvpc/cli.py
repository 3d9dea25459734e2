"""The ``tcvpc`` command line: thin click commands over the library.

Business rules live in the library modules; this file only parses arguments, wires objects
together and maps outcomes to exit codes.
"""

from __future__ import annotations

import click

from tcvpc._version import __version__
from tcvpc.cleanup.command import cleanup_command
from tcvpc.cleanup.demo import demo_command
from tcvpc.emulator.command import emulator_command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tcvpc")
def main() -> None:
    """Tencent Cloud VPC tools: bulk VPN tunnel cleanup and a local API emulator."""


main.add_command(cleanup_command)
main.add_command(demo_command)
main.add_command(emulator_command)
