"""The adaptive rate: CUBIC (RFC 8312, as botocore's adaptive retry mode uses it) over the rate the
server admits us. Pure functions and a small state object; no I/O, no clock of its own.

After a throttle the rate drops to ``BETA * W_max``, where ``W_max`` is the rate the server
*admitted* over the last second (not what we sent, not what we were allowed): that is the share
the server gives us while someone else spends the rest. It then follows
``W(t) = C * (t - K)**3 + W_max``: concave back up to ``W_max`` (``K`` seconds), flat near it,
then convex, probing beyond it carefully, capped at twice the admitted rate. Each cut
re-measures ``W_max`` rather than multiplying the last rate, so cuts do not compound into a
collapse; they keep the rate near the share the server admits. Why these constants:
``benchmarks/b6_strangers.py``.

Two rules decide which throttles count (B3 measures what they save, B6 what they cost):

* **A passing burst is not a share.** Throttles come in *episodes* (throttles never more than
  :data:`WINDOW` apart). Someone else's burst throttles the next few requests whatever rate we
  send and is over within a second: a cut for it would only slow us down for seconds after it.
  So a throttle our own rate does not explain cuts only once its episode has lasted
  :data:`PERSIST` seconds: a stranger who keeps spending part of the quota keeps throttling us,
  and is followed. Our rate explains a throttle when the curve is probing beyond ``W_max`` and
  has sent at least one request more than ``W_max`` allowed since it passed it; such a throttle
  cuts at once (the edge of the share, found). At the full rate, and while the curve climbs
  back to ``W_max``, nothing explains one: without this, bursts every second or two after one
  cut each cut again from a rate the last burst had lowered (B3 fell to 79/s for 15 s).
* **One cut per window.** The throttles within :data:`WINDOW` of a cut are answers to requests
  the server counted before the cut could show: they do not cut again (one reduction per round
  trip, as TCP does).

The Redis limiter reimplements :func:`cubic_rate` in Lua; keep it pure and keep both in step.
Its rules for which throttles count are its own (one cut per 0.5 s for the whole fleet; no
persistence filter yet).
"""

from __future__ import annotations

import math
from collections import deque

__all__ = ["BETA", "MIN_RATE", "PERSIST", "WINDOW", "AdaptiveRate", "C", "cubic_rate"]

BETA = 0.95
"""Multiplicative decrease: after a throttle, send at ``BETA`` times the admitted rate.

botocore uses 0.7 over its *sent* rate; over the *admitted* rate a gentle cut is enough, because
the admitted rate already is the share (B6 compares both)."""

C = 1.6
"""CUBIC scaling constant: how fast the curve climbs back and leaves the plateau at ``W_max``.

Above botocore's 0.4 so the full rate returns soon after a stranger leaves; B6's constants table
compares both."""

MIN_RATE = 0.5
"""Requests per second never go below this: one probe every two seconds finds a freed quota."""

WINDOW = 1.0
"""Seconds over which the admitted rate is measured: the server counts per second."""

PERSIST = 2.0
"""Seconds throttles must keep coming (none more than :data:`WINDOW` apart) before one that our
own rate does not explain cuts: two of the server's windows, so one burst, or two in a row, is
not enough."""

_MIN_SPAN = 0.1
"""The shortest span an admitted rate is measured over (two answers 1 ms apart are no rate)."""


def cubic_rate(elapsed: float, w_max: float, *, beta: float = BETA, c: float = C) -> float:
    """The CUBIC rate ``elapsed`` seconds after a throttle that measured ``w_max`` requests/s.

    ``W(t) = c * (t - K)**3 + w_max`` with ``K = cbrt(w_max * (1 - beta) / c)``, so
    ``W(0) = beta * w_max``, ``W(K) = w_max``. Unbounded above: callers cap it.
    """
    return c * (elapsed - _cubic_k(w_max, beta, c)) ** 3 + w_max


def _cubic_k(w_max: float, beta: float, c: float) -> float:
    """Seconds the curve takes from ``beta * w_max`` back to ``w_max``."""
    return math.cbrt(w_max * (1.0 - beta) / c)


class AdaptiveRate:
    """The state behind the adaptive rate of one budget; every method takes the current time.

    ``max_rate`` is the strict limit: the rate never exceeds it. Until the first throttle (and
    again once the curve has climbed back above ``max_rate``), the rate is ``max_rate``.
    """

    __slots__ = (
        "_admitted",
        "_beta",
        "_c",
        "_episode_start",
        "_last_throttle",
        "_min_rate",
        "_persist",
        "_since",
        "_w_max",
        "max_rate",
        "throttled_at",
    )

    def __init__(
        self,
        max_rate: float,
        *,
        beta: float = BETA,
        c: float = C,
        min_rate: float = MIN_RATE,
        persist: float = PERSIST,
    ) -> None:
        if not max_rate > 0:
            raise ValueError(f"max_rate must be > 0, not {max_rate!r}")
        if not 0 < beta < 1:
            raise ValueError(f"beta must be in (0, 1), not {beta!r}")
        if not c > 0:
            raise ValueError(f"c must be > 0, not {c!r}")
        if not persist >= 0:
            raise ValueError(f"persist must be >= 0 seconds, not {persist!r}")
        self.max_rate = float(max_rate)
        self._beta = beta
        self._c = c
        self._min_rate = min(min_rate, self.max_rate)
        self._admitted: deque[float] = deque()
        self._since = 0.0  # when the answers now in the window started coming
        self._w_max = self.max_rate
        self.throttled_at: float | None = None
        """When the last cut came; ``None`` while not adapting (the rate is ``max_rate``)."""
        self._persist = float(persist)
        self._last_throttle = -math.inf
        self._episode_start = -math.inf

    @property
    def w_max(self) -> float | None:
        """The admitted rate measured at the last throttle (``None``: not adapting)."""
        return None if self.throttled_at is None else self._w_max

    def admitted_rate(self, now: float) -> float:
        """Answers admitted (not throttled) per second over the last :data:`WINDOW` seconds.

        Over a shorter span when the answers started less than a window ago (a cold start is
        not a slow rate); 0 when nothing was admitted in the window.
        """
        edge = now - WINDOW
        admitted = self._admitted
        while admitted and admitted[0] <= edge:
            admitted.popleft()
        if not admitted:
            return 0.0
        span = min(WINDOW, max(_MIN_SPAN, now - self._since))
        return len(admitted) / span

    def on_admitted(self, now: float) -> None:
        """The server processed one of our requests (any answer but a throttle)."""
        admitted = self._admitted
        if not admitted or admitted[-1] <= now - WINDOW:
            admitted.clear()  # none in the window: the answers start coming again now
            self._since = now
        elif admitted[0] <= now - 2 * WINDOW:
            # Trimmed in batches, not one answer per call: the deque holds at most two windows
            # of answers (admitted_rate trims exactly when it is asked).
            self.admitted_rate(now)
        admitted.append(now)

    def on_throttled(self, now: float) -> None:
        """The server throttled one of our requests: restart the curve from what it admits.

        Unless it is part of a passing burst, or of the window after the last cut (see the
        module's rules).
        """
        if now - self._last_throttle > WINDOW:
            self._episode_start = now  # a new episode of throttles
        self._last_throttle = now
        if self.throttled_at is not None and now - self.throttled_at < WINDOW:
            return  # counted in the same server window as the throttle that cut
        if not self._probe_explains(now) and now - self._episode_start < self._persisting():
            return  # maybe a passing burst, not yet a share
        admitted = self.admitted_rate(now)
        # Nothing admitted lately tells us no share: halve what we were allowed (once per
        # window, like every cut).
        w_max = admitted if admitted > 0 else self.rate(now) / 2
        self._w_max = min(self.max_rate, max(self._min_rate, w_max))
        self.throttled_at = now

    def _persisting(self) -> float:
        """How long an episode our rate does not explain must last to cut: PERSIST at the full
        rate; once adapting, one window (the share is known to be contended: a burst alone is
        shorter than that, a stranger who takes more is followed sooner)."""
        if self.throttled_at is None:
            return self._persist
        return min(self._persist, WINDOW)

    def _probe_explains(self, now: float) -> bool:
        """Whether the curve, probing beyond ``W_max``, has sent at least one request more than
        ``W_max`` allows since it passed it (``c * (t - K)**4 / 4``, the integral of the excess)."""
        if self.throttled_at is None:
            return False
        beyond = now - self.throttled_at - _cubic_k(self._w_max, self._beta, self._c)
        return beyond > 0 and self._c * beyond**4 / 4 >= 1.0

    def rate(self, now: float) -> float:
        """Requests per second allowed now, in ``[min_rate, max_rate]``."""
        if self.throttled_at is None:
            return self.max_rate
        w = cubic_rate(max(0.0, now - self.throttled_at), self._w_max, beta=self._beta, c=self._c)
        if w > self._w_max:
            # Probing beyond the share: no faster than twice what the server admits now (a
            # client with little work must not earn a rate it never tried).
            w = min(w, max(self._w_max, 2.0 * self.admitted_rate(now)))
        if w >= self.max_rate:
            self.throttled_at = None  # fully recovered: forget the share
            return self.max_rate
        return max(self._min_rate, w)
