from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from tcvpc.cleanup.journal import Journal
from tcvpc.cleanup.sources import TunnelLine
from tcvpc.models import TunnelRef


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "emulator(**kwargs): EmulatorConfig for the fixture")


@pytest.fixture
def make_journal(tmp_path: Path) -> Iterator[Callable[[Sequence[TunnelRef]], Journal]]:
    """A journal at ``tmp_path/j.sqlite`` with the given tunnels ingested (lines 1..n)."""
    opened: list[Journal] = []

    def make(refs: Sequence[TunnelRef]) -> Journal:
        journal = Journal(tmp_path / "j.sqlite")
        journal.ingest(TunnelLine(i + 1, r) for i, r in enumerate(refs))
        opened.append(journal)
        return journal

    yield make
    for journal in opened:
        journal.close()
