"""Issue 11, point 2: a journal is bound to what its input holds, line by line."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from tcvpc.cleanup.journal import InputChangedError, Journal
from tcvpc.cleanup.sources import LineDigests, read_items


def ingest(journal: Journal, data: bytes, **kw: int) -> tuple[int, int, int]:
    """Ingest ``data`` bound to its lines; ``(known lines, new lines, new tunnels)``."""
    digests = LineDigests()
    items = read_items(io.BytesIO(data), digests=digests, **kw)
    stats = journal.ingest(items, digests=digests, batch=3)
    return stats.known_lines, stats.new_lines, stats.tunnels


def lines(*ids: int) -> bytes:
    return b"".join(b"vpngw-%08d,vpnx-%08d\n" % (i, i) for i in ids)


HEADER = b"VpnGatewayId,VpnConnectionId\n"


def test_same_input_again_takes_nothing_new(tmp_path: Path) -> None:
    data = HEADER + lines(1, 2, 3) + b"# a comment\n\n"
    with Journal(tmp_path / "j") as j:
        assert ingest(j, data) == (0, 6, 3)
        assert ingest(j, data) == (6, 0, 0)
        assert j.total_tunnels() == 3
        assert j.duplicates() == 0


def test_appended_lines_are_taken_in(tmp_path: Path) -> None:
    with Journal(tmp_path / "j") as j:
        ingest(j, HEADER + lines(1, 2))
        assert ingest(j, HEADER + lines(1, 2, 3, 4) + b"junk\n") == (3, 3, 2)
        assert j.total_tunnels() == 4
        assert j.counts()["invalid"] == 1
        assert [r.line for r in j.rows()] == [2, 3, 4, 5, 6]


def test_a_last_line_gaining_its_newline_is_not_a_change(tmp_path: Path) -> None:
    with Journal(tmp_path / "j") as j:
        ingest(j, lines(1) + b"vpngw-00000002,vpnx-00000002")  # no final newline
        assert ingest(j, lines(1, 2, 3)) == (2, 1, 1)


def test_a_last_line_gaining_text_is_a_change(tmp_path: Path) -> None:
    with Journal(tmp_path / "j") as j:
        ingest(j, lines(1) + b"vpngw-00000002,vpnx-0000000")
        with pytest.raises(InputChangedError, match="line 2 changed"):
            ingest(j, lines(1, 2))


def test_changed_lines_are_refused_and_named(tmp_path: Path) -> None:
    with Journal(tmp_path / "j") as j:
        ingest(j, HEADER + lines(*range(1, 10)))
        edited = HEADER + lines(1, 2, 3, 4, 5) + lines(66, 7, 8, 9) + lines(10)
        with pytest.raises(InputChangedError) as info:
            ingest(j, edited)
        assert info.value.changed == [7]
        assert "line 7 changed" in str(info.value)
        assert j.total_tunnels() == 9  # nothing of the edited input was taken in, not line 11


def test_removed_lines_are_refused_and_counted(tmp_path: Path) -> None:
    with Journal(tmp_path / "j") as j:
        ingest(j, lines(1, 2, 3, 4, 5))
        with pytest.raises(InputChangedError, match="3 lines removed") as info:
            ingest(j, lines(1, 2))
        assert info.value.removed == 3
        assert info.value.changed_count == 0


def test_a_replaced_file_is_refused(tmp_path: Path) -> None:
    with Journal(tmp_path / "j") as j:
        ingest(j, HEADER + lines(*range(1, 11)))
        with pytest.raises(InputChangedError) as info:
            ingest(j, HEADER + lines(*range(21, 31)))
        assert info.value.changed_count == 10
        assert info.value.changed == [2, 3, 4, 5, 6]  # the first few, not all
        assert "lines 2, 3, 4, 5, 6 and 5 more changed" in str(info.value)


def test_an_over_long_line_is_hashed_whole(tmp_path: Path) -> None:
    """A line too long to keep is still bound: a change past the limit is seen."""
    long_a = b"x" * 500 + b"a\n"
    long_b = b"x" * 500 + b"b\n"
    with Journal(tmp_path / "j") as j:
        ingest(j, lines(1) + long_a, max_line_bytes=64)
        assert j.counts()["invalid"] == 1
        assert ingest(j, lines(1) + long_a, max_line_bytes=64) == (2, 0, 0)
        with pytest.raises(InputChangedError, match="line 2 changed"):
            ingest(j, lines(1) + long_b, max_line_bytes=64)


def test_a_crashed_ingest_is_continued(tmp_path: Path) -> None:
    """Digests are committed with their lines: a half-done ingest resumes where it stopped."""
    data = lines(*range(1, 8))
    digests = LineDigests()
    items = read_items(io.BytesIO(data), digests=digests)

    def stop_after_five() -> object:
        for n, item in enumerate(items):
            if n == 5:
                raise KeyboardInterrupt
            yield item

    with Journal(tmp_path / "j") as j:
        with pytest.raises(KeyboardInterrupt):
            j.ingest(stop_after_five(), batch=2, digests=digests)  # type: ignore[arg-type]
        assert 0 < j.known_lines() < 7
        known = j.known_lines()
        assert ingest(j, data) == (known, 7 - known, 7 - known)
        assert j.total_tunnels() == 7


def test_digests_are_taken_in_batches_not_held(tmp_path: Path) -> None:
    """Streaming: the digests waiting to be written never exceed one batch."""

    class Watched(LineDigests):
        most = 0

        def take(self) -> list[tuple[int, bytes]]:
            taken = super().take()
            Watched.most = max(Watched.most, len(taken))
            return taken

    data = lines(*range(1, 2001))
    with Journal(tmp_path / "j") as j:
        digests = Watched()
        j.ingest(read_items(io.BytesIO(data), digests=digests), batch=100, digests=digests)
        assert j.known_lines() == 2000
    assert 0 < Watched.most <= 101
