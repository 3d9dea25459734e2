"""Seeded fault and error-code injection: what, if anything, the next admitted request meets.

Each injector has its own ``random.Random`` seeded from the emulator's seed and draws once per
request it may affect (never when every probability is zero), so a client that sends the same
requests in the same order meets the same faults on every run, whatever the tunnel count.
Where they apply is the app's business (``app.py``); what each fault kind does is documented on
:class:`~tcvpc.emulator.config.FaultConfig`.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Mapping
from enum import StrEnum

from tcvpc.emulator.codes import INJECTABLE
from tcvpc.emulator.config import FaultConfig

__all__ = ["CodeInjector", "FaultInjector", "FaultKind"]


class FaultKind(StrEnum):
    INTERNAL_ERROR = "internal_error"
    SERVICE_UNAVAILABLE = "service_unavailable"
    HTTP_502_HTML = "http_502_html"
    DROP_BEFORE_ACTION = "drop_before_action"
    DROP_AFTER_ACTION = "drop_after_action"
    STALL = "stall"
    TRUNCATED_JSON = "truncated_json"
    THROTTLE_BURST = "throttle_burst"


class FaultInjector:
    """Draws faults from a :class:`FaultConfig`; the config can change at run time."""

    def __init__(self, config: FaultConfig, seed: int) -> None:
        self._rng = random.Random(f"tcvpc-emulator-faults:{seed}")
        self._burst_left = 0
        self._burst_until = 0.0
        self.counts: Counter[str] = Counter()
        self._cumulative: tuple[tuple[float, FaultKind], ...] = ()
        self._total = 0.0
        self.config = config

    @property
    def config(self) -> FaultConfig:
        return self._config

    @config.setter
    def config(self, config: FaultConfig) -> None:
        """Swap the probabilities; the RNG goes on (no reseed), a running burst is cut short."""
        self._config = config
        acc = 0.0
        cumulative = []
        for kind, probability in config.probabilities():
            if probability > 0:
                acc += probability
                cumulative.append((acc, FaultKind(kind)))
        self._cumulative = tuple(cumulative)
        self._total = acc
        self._burst_left = 0

    def draw(self, now: float | None = None) -> FaultKind | None:
        """The fault for the next request (arriving at monotonic time ``now``), or ``None``."""
        now = time.monotonic() if now is None else now
        if self._burst_left > 0 and now >= self._burst_until:
            self._burst_left = 0
        if self._burst_left > 0:
            self._burst_left -= 1
            self.counts[FaultKind.THROTTLE_BURST.value] += 1
            return FaultKind.THROTTLE_BURST
        if self._total <= 0.0:
            return None
        u = self._rng.random()
        if u >= self._total:
            return None
        kind = self._cumulative[-1][1]  # float rounding at the top end
        for bound, candidate in self._cumulative:
            if u < bound:
                kind = candidate
                break
        if kind is FaultKind.THROTTLE_BURST:
            self._burst_left = self._config.burst_length - 1
            self._burst_until = now + self._config.burst_seconds
        self.counts[kind.value] += 1
        return kind


class CodeInjector:
    """Draws the documented error code (if any) that answers the next request of an action."""

    def __init__(self, inject: Mapping[str, float], seed: int) -> None:
        self._rng = random.Random(f"tcvpc-emulator-inject:{seed}")
        self.counts: Counter[str] = Counter()
        # Per action: cumulative bounds in sorted code order, so the same config draws the same.
        self._tables: dict[str, tuple[tuple[float, str], ...]] = {}
        for code in sorted(inject):
            probability = inject[code]
            if probability <= 0:
                continue
            for action in INJECTABLE[code][0]:
                table = self._tables.get(action, ())
                bound = (table[-1][0] if table else 0.0) + probability
                self._tables[action] = (*table, (bound, code))

    def draw(self, action: str) -> str | None:
        """The code that answers this request of ``action``, or ``None`` (the usual case)."""
        table = self._tables.get(action)
        if table is None:
            return None
        u = self._rng.random()
        for bound, code in table:
            if u < bound:
                self.counts[code] += 1
                return code
        return None
