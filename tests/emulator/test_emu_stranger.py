"""The stranger: another program of the same account takes a fixed share of every budget."""

from __future__ import annotations

import aiohttp
import pytest
from click.testing import CliRunner
from emu_helpers import call

from tcvpc.emulator import Emulator, EmulatorConfig
from tcvpc.emulator.command import emulator_command
from tcvpc.emulator.limits import SlidingWindowLimiter

KEY = ("AKID", "ap-guangzhou", "DeleteVpnConnection")


def offer(limiter: SlidingWindowLimiter, start: float, seconds: float, rate: float) -> int:
    """Our requests at ``rate`` per second from ``start``; returns how many were admitted."""
    n = round(seconds * rate)
    return sum(limiter.admit(KEY, start + i / rate) for i in range(n))


def test_the_stranger_leaves_us_the_rest_of_each_second() -> None:
    limiter = SlidingWindowLimiter(100, stranger_rate=40, start=0.0)
    admitted = offer(limiter, 5.0, 10.0, 200)  # we ask 200/s for 10 s
    assert 590 <= admitted <= 610  # 60/s left to us
    snap = limiter.snapshot(15.0)
    delete = snap["by_action"]["DeleteVpnConnection"]  # type: ignore[index]
    assert delete["ours"] == {
        "admitted": admitted,
        "throttled": 2000 - admitted,
        "admitted_last_second": pytest.approx(60, abs=2),
    }
    # 11 s: the stranger's last second before us is in too.
    assert delete["stranger"]["admitted"] == pytest.approx(440, abs=2)
    assert snap["stranger"]["active"] is True  # type: ignore[index]
    per_second = delete["per_second"]
    middle = [row for row in per_second if 6 <= row[0] <= 13]
    assert all(58 <= row[1] <= 62 and 39 <= row[3] <= 41 for row in middle), middle


def test_the_stranger_stops_after_its_seconds() -> None:
    limiter = SlidingWindowLimiter(100, stranger_rate=40, stranger_seconds=3.0, start=0.0)
    assert offer(limiter, 1.0, 2.0, 200) == pytest.approx(120, abs=3)
    # One second later the window holds none of the stranger's: all 100 are ours.
    assert offer(limiter, 4.0, 1.0, 200) == 100
    assert limiter.snapshot(5.5)["stranger"]["active"] is False  # type: ignore[index]


def test_the_stranger_takes_every_budget_and_only_its_share() -> None:
    limiter = SlidingWindowLimiter(10, stranger_rate=4, start=0.0)
    other = ("AKID", "ap-guangzhou", "DescribeVpnConnections")
    # A key first seen after a long idle time: the stranger's last second is in its window.
    assert sum(limiter.admit(other, 1000 + i / 100) for i in range(100)) == 6
    # With our demand below what is left, nobody is throttled.
    assert offer(limiter, 2000.0, 5.0, 5) == 25


def test_a_stranger_at_the_whole_limit_leaves_nothing() -> None:
    limiter = SlidingWindowLimiter(10, stranger_rate=10, start=0.0)
    assert offer(limiter, 5.0, 2.0, 20) <= 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"stranger_rate": 101}, "exceeds rate_limit"),
        ({"stranger_rate": 10, "rate_limit": None}, "needs a rate_limit"),
        ({"stranger_rate": -1}, ">= 0"),
        ({"stranger_rate": 10, "stranger_seconds": 0}, "> 0"),
        ({"stranger_rate": float("nan")}, ">= 0"),
    ],
)
def test_config_rejects_bad_strangers(kwargs: dict[str, float | None], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EmulatorConfig(**kwargs)  # type: ignore[arg-type]


def test_cli_validates_the_stranger() -> None:
    result = CliRunner().invoke(emulator_command, ["--stranger-rate", "150"])
    assert result.exit_code == 2
    assert "exceeds rate_limit" in result.output
    result = CliRunner().invoke(emulator_command, ["--stranger-seconds", "0"])
    assert result.exit_code == 2
    help_text = CliRunner().invoke(emulator_command, ["--help"]).output
    assert "--stranger-rate" in help_text
    assert "--stranger-seconds" in help_text


async def test_stats_report_ours_and_the_strangers(http: aiohttp.ClientSession) -> None:
    config = EmulatorConfig(gateways=1, tunnels_per_gateway=1, rate_limit=10, stranger_rate=6)
    async with Emulator(config) as emu:
        codes = [(await call(http, emu.url, "DescribeVpnConnections", {})).code for _ in range(12)]
        stats = emu.stats()
    rate_limit = stats["rate_limit"]
    describe = rate_limit["by_action"]["DescribeVpnConnections"]
    assert describe["ours"]["admitted"] == codes.count(None)
    assert describe["ours"]["throttled"] == codes.count("RequestLimitExceeded") >= 1
    assert describe["stranger"]["admitted"] >= 1
    assert rate_limit["stranger"]["rate"] == 6
    assert stats["throttled"] == describe["ours"]["throttled"]
