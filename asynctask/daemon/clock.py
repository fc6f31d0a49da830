"""The daemon's clock: wall-clock seconds that a step of the system clock does not move.

Due times are wall-clock epochs (clients send ``run_at`` that way, and the store keeps them),
so the daemon needs wall-clock time - but if it read ``time.time()`` directly, an NTP step of
the system clock would fire every timer early (a step forward) or stall them all (a step
back). ``SteadyClock`` reads the wall clock once, at start, and from then on advances by the
monotonic clock, which is slewed with NTP's gradual corrections but never stepped. A step thus
shows up only after a restart, as one jump, instead of in the middle of a run.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class SteadyClock:
    __slots__ = ("_mono", "_offset")

    def __init__(
        self,
        wall: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
    ) -> None:
        self._mono = mono
        self._offset = wall() - mono()

    def __call__(self) -> float:
        return self._mono() + self._offset

    def at_monotonic(self, mono: float) -> float:
        """This clock's time at a ``time.monotonic()`` reading (taken in any process)."""
        return mono + self._offset

    def __repr__(self) -> str:
        return f"<SteadyClock now={self():.3f}>"
