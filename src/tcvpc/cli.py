"""The ``tcvpc`` command line: thin click commands over the library.

Business rules live in the library modules; this file only parses arguments, wires objects
together and maps outcomes to exit codes.
"""

from __future__ import annotations

import importlib

import click

from tcvpc._version import __version__
from tcvpc.cleanup.command import cleanup_command

_LAZY = {
    "demo": "tcvpc.cleanup.demo:demo_command",
    "emulator": "tcvpc.emulator.command:emulator_command",
}
"""Commands imported when used: ``tcvpc cleanup`` does not load the emulator's web server."""


class _LazyGroup(click.Group):
    """click's documented lazy-loading group: :data:`_LAZY` names are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *_LAZY])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _LAZY.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module, attribute = target.split(":")
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tcvpc")
def main() -> None:
    """Tencent Cloud VPC tools: bulk VPN tunnel cleanup and a local API emulator."""


main.add_command(cleanup_command)
