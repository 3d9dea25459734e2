"""The adaptive rate as pure functions of time: no event loop, no sleeping."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tcvpc.adaptive import BETA, MIN_RATE, PERSIST, WINDOW, AdaptiveRate, C, cubic_rate


def admit_steadily(state: AdaptiveRate, rate: float, start: float, seconds: float) -> float:
    """``rate`` admitted answers per second from ``start``; returns the time after the last."""
    n = round(rate * seconds)
    for i in range(n):
        state.on_admitted(start + i / rate)
    return start + n / rate


def test_cubic_rate_starts_at_beta_and_reaches_w_max_at_k() -> None:
    w_max = 60.0
    k = math.cbrt(w_max * (1 - BETA) / C)
    assert cubic_rate(0.0, w_max) == pytest.approx(BETA * w_max)
    assert cubic_rate(k, w_max) == pytest.approx(w_max)
    # Flat near W_max, then probing beyond it.
    assert cubic_rate(k + 0.5, w_max) == pytest.approx(w_max + C * 0.125)
    assert cubic_rate(k + 3, w_max) == pytest.approx(w_max + C * 27)
    # botocore's constants give its documented curve: 0.7 x W_max at the throttle.
    assert cubic_rate(0.0, 100.0, beta=0.7, c=0.4) == pytest.approx(70.0)


@given(
    w_max=st.floats(0.5, 1000),
    beta=st.floats(0.3, 0.99),
    c=st.floats(0.05, 4),
    t=st.floats(0, 60),
    dt=st.floats(0.001, 10),
)
def test_cubic_rate_never_decreases(
    w_max: float, beta: float, c: float, t: float, dt: float
) -> None:
    assert cubic_rate(t + dt, w_max, beta=beta, c=c) >= cubic_rate(t, w_max, beta=beta, c=c) - 1e-9


def test_full_rate_until_the_first_throttle() -> None:
    state = AdaptiveRate(99.5)
    assert state.rate(0.0) == 99.5
    admit_steadily(state, 90, 0.0, 2.0)
    assert state.rate(2.0) == 99.5
    assert state.w_max is None


def test_a_throttle_drops_to_beta_times_the_admitted_rate_then_returns_to_it() -> None:
    state = AdaptiveRate(99.5, persist=0)
    now = admit_steadily(state, 60, 0.0, 3.0)
    state.on_throttled(now)
    assert state.w_max == pytest.approx(60, rel=0.02)
    assert state.rate(now) == pytest.approx(BETA * 60, rel=0.02)
    k = math.cbrt(60 * (1 - BETA) / C)
    admit_steadily(state, 58, now, k)
    assert state.rate(now + k) == pytest.approx(60, rel=0.02)


def test_a_burst_of_throttles_cuts_once_per_window() -> None:
    """What the old pacer did (0.7x per throttle) would collapse; one cut per window holds."""
    state = AdaptiveRate(99.5, persist=0)
    now = admit_steadily(state, 60, 0.0, 3.0)
    for i in range(20):
        state.on_throttled(now + i * 0.005)
    # The first throttle measured 60 admitted; the other 19 were counted in the same window.
    assert state.w_max == pytest.approx(60, rel=0.02)
    assert state.rate(now + 0.1) == pytest.approx(BETA * 60, rel=0.05)
    # A window later the server still throttles: a new cut from what it admits now (54/s).
    later = admit_steadily(state, 54, now + 0.1, WINDOW)
    state.on_throttled(later)
    assert state.w_max == pytest.approx(54, rel=0.05)


def test_probing_beyond_w_max_is_capped_at_twice_the_admitted_rate() -> None:
    state = AdaptiveRate(99.5, persist=0)
    now = admit_steadily(state, 40, 0.0, 2.0)
    state.on_throttled(now)
    # Long after, with only 10/s admitted now (little work), the curve would be at full rate.
    later = now + 30
    admit_steadily(state, 10, later - 1.0, 1.0)
    assert state.rate(later) == pytest.approx(40, rel=0.05)  # max(W_max, 2 x 10)
    admit_steadily(state, 35, later, 1.0)
    assert state.rate(later + 1.0) == pytest.approx(70, rel=0.05)  # 2 x 35


def test_recovers_to_the_strict_rate_and_forgets_the_share() -> None:
    state = AdaptiveRate(99.5, persist=0)
    now = admit_steadily(state, 60, 0.0, 2.0)
    state.on_throttled(now)
    end = admit_steadily(state, 60, now, 10.0)
    assert state.rate(end) == 99.5
    assert state.w_max is None


def test_nothing_admitted_halves_once_per_second_down_to_the_floor() -> None:
    state = AdaptiveRate(99.5, persist=0)
    for i in range(50):  # a burst of throttles at a cold start: one halving, not fifty
        state.on_throttled(i * 0.01)
    assert state.w_max == pytest.approx(99.5 / 2)
    assert state.rate(0.0) == pytest.approx(BETA * 99.5 / 2, rel=0.01)
    for i in range(50, 1500):  # the server admits nothing for 15 s
        state.on_throttled(i * 0.01)
    assert state.w_max == MIN_RATE
    assert state.rate(15.0) >= MIN_RATE


def test_a_passing_burst_does_not_cut_the_rate() -> None:
    """Ten throttles within 0.1 s at the full rate, then none: someone else's burst."""
    state = AdaptiveRate(99.5)
    now = admit_steadily(state, 99, 0.0, 3.0)
    for i in range(10):
        state.on_throttled(now + i * 0.01)
    after = admit_steadily(state, 99, now + 0.1, 5.0)
    assert state.w_max is None
    assert state.rate(after) == 99.5
    # Bursts more than a window apart are separate episodes, however many there are.
    for burst in range(5):
        start = after + burst * (WINDOW + 0.2)
        for i in range(10):
            state.on_throttled(start + i * 0.01)
    assert state.w_max is None


def test_throttles_that_persist_are_a_share_and_cut_the_rate() -> None:
    """A stranger keeps throttling us: after PERSIST seconds of it the curve starts."""
    state = AdaptiveRate(99.5)
    now = admit_steadily(state, 60, 0.0, 3.0)
    t = now
    while t < now + PERSIST - 0.1:  # one throttle every 0.4 s: never a window apart
        state.on_throttled(t)
        assert state.w_max is None
        t = admit_steadily(state, 60, t, 0.4)
    state.on_throttled(now + PERSIST)
    assert state.w_max == pytest.approx(60, rel=0.05)
    assert state.rate(now + PERSIST) == pytest.approx(BETA * 60, rel=0.05)
    # The stranger takes more: its throttles keep coming (the episode goes on), so the first one
    # past the cut's window cuts again, from what the server admits now.
    cut = t = now + PERSIST
    while t < cut + WINDOW:
        state.on_throttled(t)
        assert state.w_max == pytest.approx(60, rel=0.05)
        t = admit_steadily(state, 50, t, 0.4)
    state.on_throttled(t)
    assert state.w_max == pytest.approx(50, rel=0.05)


def test_a_throttle_the_probe_explains_cuts_at_once() -> None:
    """Past W_max, once the curve has sent one request more than W_max allowed, a throttle is
    the edge of our share: cut, no episode needed. Just past W_max it is not (yet)."""
    state = AdaptiveRate(99.5, persist=0)
    t = admit_steadily(state, 60, 0.0, 3.0)
    state.on_throttled(t)
    w_max = state.w_max
    assert w_max == pytest.approx(60, rel=0.05)
    state._persist = PERSIST  # from here on, the rules as shipped
    k = math.cbrt(60 * (1 - BETA) / C)
    one_more = (4 / C) ** 0.25  # C * s**4 / 4 == 1: one request beyond W_max
    admit_steadily(state, 60, t, k + 0.5 * one_more)
    state.on_throttled(t + k + 0.5 * one_more)
    assert state.w_max == w_max  # not cut: the probe explains no throttle yet
    assert state.rate(t + k + 0.5 * one_more) > w_max
    later = t + k + one_more + 0.05
    admit_steadily(state, 61, t + k + 0.5 * one_more, 0.5 * one_more + 0.05)
    state.on_throttled(later)
    assert state.rate(later) == pytest.approx(BETA * 61, rel=0.05)  # cut at once


def test_bursts_after_a_cut_do_not_ratchet_the_rate_down() -> None:
    """B3's emulator: bursts of ten throttles whatever we send. Three 0.9 s apart persist and
    cut; the next ones, 1.6 s apart (as in B3), each start an episode of their own and the probe
    explains none of them, so the curve climbs back to the full rate through them. (When each
    burst past a cut's window cut again, this fell below 45/s.)"""
    state = AdaptiveRate(99.5)
    t = admit_steadily(state, 99, 0.0, 2.0)
    lowest, cuts = 99.5, 0
    for gap in [0.9] * 3 + [1.6] * 12:
        before = state.w_max
        for i in range(10):
            state.on_throttled(t + i * 0.01)
        cuts += state.w_max != before
        t = admit_steadily(state, state.rate(t), t + 0.1, gap - 0.1)  # the burst's 0.1 s: none
        lowest = min(lowest, state.rate(t))
    assert cuts == 1
    assert lowest > BETA * 0.85 * 99  # one cut, from a second the bursts had thinned
    assert state.rate(t) > 0.95 * 99.5  # climbing back through the bursts


def test_a_gap_longer_than_a_window_starts_a_new_episode() -> None:
    state = AdaptiveRate(99.5)
    now = admit_steadily(state, 60, 0.0, 3.0)
    state.on_throttled(now)
    state.on_throttled(now + 0.9)
    state.on_throttled(now + 1.8)  # 1.8 s of throttles, none more than a window apart
    state.on_throttled(now + 1.8 + WINDOW + 0.1)  # too late: a new episode starts here
    assert state.w_max is None


def test_a_cold_start_is_not_a_slow_rate() -> None:
    """30 answers in the first 0.3 s is 100/s, not 30/s."""
    state = AdaptiveRate(99.5, persist=0)
    now = admit_steadily(state, 100, 0.0, 0.3)
    state.on_throttled(now)
    assert state.w_max == pytest.approx(99.5, rel=0.05)


def test_never_above_the_strict_rate() -> None:
    state = AdaptiveRate(20, persist=0)
    now = admit_steadily(state, 200, 0.0, 1.0)
    state.on_throttled(now)
    assert state.w_max == 20
    assert all(state.rate(now + t / 10) <= 20 for t in range(200))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_rate": 0},
        {"max_rate": 10, "beta": 1.0},
        {"max_rate": 10, "beta": 0},
        {"max_rate": 10, "c": 0},
        {"max_rate": 10, "persist": -1},
    ],
)
def test_rejects_bad_parameters(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        AdaptiveRate(**kwargs)


def test_once_adapting_throttles_that_last_a_window_cut() -> None:
    """After a cut the share is known to be contended: throttles the probe does not explain cut
    once they have kept coming for one window (not PERSIST), so a stranger who takes more is
    followed sooner, while a lone burst (shorter than a window) still is not."""
    state = AdaptiveRate(99.5, persist=0)
    t = admit_steadily(state, 90, 0.0, 3.0)
    state.on_throttled(t)
    w_max = state.w_max
    assert w_max == pytest.approx(90, rel=0.05)
    state._persist = PERSIST
    cut = t
    for after in (1.1, 1.5, 1.9):  # an episode 0.8 s long, the probe explains none of it
        t = admit_steadily(state, 80, t, cut + after - t)
        state.on_throttled(cut + after)
        assert state.w_max == w_max
    t = admit_steadily(state, 80, t, cut + 2.15 - t)
    state.on_throttled(cut + 2.15)  # 1.05 s of throttles
    assert state.w_max == pytest.approx(80, rel=0.05)


@given(gaps=st.lists(st.floats(0.0005, 2.5), min_size=1, max_size=300))
def test_admitted_rate_counts_the_last_window_exactly_with_at_most_two_windows_kept(
    gaps: list[float],
) -> None:
    """The record is trimmed in batches, yet every reading is the exact count of the last
    window over the span since the answers (re)started, and memory stays bounded."""
    state = AdaptiveRate(1000.0)
    times: list[float] = []
    now = 0.0
    since = 0.0
    for step, gap in enumerate(gaps):
        now += gap
        if not times or times[-1] <= now - WINDOW:
            since = now  # a window without answers: they start again
        times.append(now)
        state.on_admitted(now)
        assert all(t > now - 2 * WINDOW for t in state._admitted)
        if step % 7 == 6 or step == len(gaps) - 1:  # reading trims: read now and then only
            in_window = sum(1 for t in times if t > now - WINDOW)
            span = min(WINDOW, max(0.1, now - since))
            assert state.admitted_rate(now) == pytest.approx(in_window / span)
