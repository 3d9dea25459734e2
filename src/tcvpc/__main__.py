"""``python -m tcvpc``: the ``tcvpc`` command without the installed script."""

from tcvpc.cli import main

main(prog_name="tcvpc")
