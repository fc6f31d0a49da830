"""AimdLimit: how many attempts of one function may run at once, learned from ``Throttled``.

Algorithm: additive increase, multiplicative decrease, as in TCP congestion avoidance (RFC 5681
§3.1, after Jacobson 1988) and Netflix's ``concurrency-limits`` ``AIMDLimit``. The limit is a
float ``L`` in ``[1, max_limit]``; the dispatcher sees ``floor(L)``.

* Increase: each success while the function still has backlog adds ``increase / L``, so ``L``
  grows by ``increase`` per ``L`` successes, one "round trip" of the current limit (TCP's
  ``cwnd += 1/cwnd``). Without backlog nothing is learned: the limit was not the bottleneck.
* Decrease: a throttle cuts ``L`` to ``max(1, L * decrease)`` when, over the sliding window,
  throttles >= ``min_throttles`` *and* throttles / attempts >= ``throttle_ratio``, and no cut
  happened in the last ``cooldown`` seconds (default ``window / 4``). The count threshold keeps
  one stray throttle from halving the limit; the ratio keeps a busy function from being cut by
  a steady trickle; the cooldown keeps the throttles of attempts dispatched *before* a cut from
  cutting again (TCP cuts at most once per round trip for the same reason). Unlike Netflix's
  limit, which cuts on every drop, one cut needs a pattern.
* Idle reset (our design): once the function reports no backlog for ``idle_decay`` seconds in a
  row, with no throttle in between, ``L`` returns to ``initial`` in one step and the idle clock
  starts over. A function with no work has nothing to learn from, and an old cut should not
  starve tomorrow's burst. Backlog is reported by ``on_success`` and ``tick``.

Every attempt that ends (success, throttle, error, timeout) counts once in the window. The
window is a ring of 10 slots of ``window / 10`` seconds each, with running totals: O(1) per event
(a jump of many slots clears at most 10), fixed memory, and an event leaves the window between
0.9 x ``window`` and ``window`` seconds after it happened. A ``now`` earlier than one already
seen is treated as the latest one (the clock never runs backwards here).

Invariants (checked by ``tests/core/test_aimd.py`` with Hypothesis):

(a) under any sequence of events and times, ``1 <= limit <= max_limit``;
(b) against a simulated downstream that throttles every attempt beyond ``C`` running at once
    (``1 <= C <= 40``, ``C < max_limit <= 4C + 10``, ``increase`` in [0.5, 1], ``decrease`` in
    [0.3, 0.5], the other settings default; always backlog; each tick of ``window / 10`` the
    function starts ``limit`` attempts, the first ``C`` succeed and the rest are throttled;
    300 ticks), counting from the first tick that runs at most ``C`` (the warm-up is the descent
    from ``max_limit``): the limit never drops below ``(C + 1) * decrease - 1`` (a cut happens
    only while more than ``C`` run, so from ``L >= C + 1``); its time-average lies within
    ``[C * decrease - 1, C + 1]``; at least half of the ticks run at most ``C + 1`` attempts. If
    no tick ever runs at most ``C``, the throttle share at ``max_limit`` must be below
    ``throttle_ratio`` (then, by design, nothing is cut);
(c) with only successes and backlog the limit climbs to ``max_limit``; throttles meeting both
    thresholds cut it; throttles below either threshold (count or ratio) do not.

The whole limit the dispatcher reads is kept computed, and every event that moves it says why
(``CUT``, ``INCREASE``, ``RESET``): the dispatcher reads it for every queue it considers, and
the daemon logs each move without keeping a copy to compare against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

_SLOTS = 10  # the sliding window's resolution: window / _SLOTS seconds

#: Why the whole limit moved: a throttle pattern, successes with backlog, an idle spell.
CUT: Final = "cut"
INCREASE: Final = "increase"
RESET: Final = "reset"


@dataclass(frozen=True, slots=True)
class AimdConfig:
    max_limit: int  # the function's configured concurrency, or the pool size
    initial: int | None = None  # start value, and the value an idle function returns to
    increase: float = 1.0  # added per `limit` successes with backlog
    decrease: float = 0.5  # factor applied on a cut
    window: float = 10.0  # seconds of throttle statistics
    min_throttles: int = 3  # a cut needs at least this many throttles in the window ...
    throttle_ratio: float = 0.1  # ... and at least this share of the window's attempts
    cooldown: float | None = None  # seconds after a cut with no second cut (None: window / 4)
    idle_decay: float = 30.0  # seconds without backlog after which the limit resets to initial

    def __post_init__(self) -> None:
        if self.max_limit < 1:
            raise ValueError("max_limit must be at least 1")
        if self.initial is not None and not 1 <= self.initial <= self.max_limit:
            raise ValueError("initial must be within [1, max_limit]")
        if not (self.increase > 0 and math.isfinite(self.increase)):
            raise ValueError("increase must be a positive number")
        if not 0 < self.decrease < 1:
            raise ValueError("decrease must be within (0, 1)")
        if not (self.window > 0 and math.isfinite(self.window)):
            raise ValueError("window must be a positive number of seconds")
        if self.min_throttles < 1:
            raise ValueError("min_throttles must be at least 1")
        if not 0 <= self.throttle_ratio <= 1:
            raise ValueError("throttle_ratio must be within [0, 1]")
        if self.cooldown is not None and not self.cooldown >= 0:
            raise ValueError("cooldown cannot be negative")
        if not self.idle_decay > 0:
            raise ValueError("idle_decay must be a positive number of seconds")

    @property
    def start(self) -> int:
        return self.max_limit if self.initial is None else self.initial

    @property
    def cut_cooldown(self) -> float:
        return self.window / 4 if self.cooldown is None else self.cooldown


class AimdLimit:
    __slots__ = (
        "_attempts",
        "_config",
        "_cooldown",
        "_head",
        "_idle_since",
        "_last",
        "_last_cut",
        "_level",
        "_limit",
        "_slot_attempts",
        "_slot_throttles",
        "_slot_width",
        "_throttles",
    )

    def __init__(self, config: AimdConfig, now: float) -> None:
        self._config = config
        self._limit = float(config.start)
        self._level = config.start
        self._cooldown = config.cut_cooldown
        self._last = now
        self._last_cut: float | None = None
        self._idle_since: float | None = None
        self._slot_width = config.window / _SLOTS
        self._head = self._slot_of(now)
        self._slot_attempts = [0] * _SLOTS
        self._slot_throttles = [0] * _SLOTS
        self._attempts = 0  # totals over the ring
        self._throttles = 0

    def __repr__(self) -> str:
        return (
            f"<AimdLimit limit={self.limit}/{self._config.max_limit} "
            f"window: {self._attempts} attempts, {self._throttles} throttled>"
        )

    @property
    def config(self) -> AimdConfig:
        return self._config

    @property
    def limit(self) -> int:
        """The number of attempts that may run at once, within ``[1, max_limit]``."""
        return self._level

    @property
    def window_counts(self) -> tuple[int, int]:
        """``(attempts, throttles)`` in the sliding window, as of the last event."""
        return self._attempts, self._throttles

    def on_success(self, now: float, backlog: bool) -> str | None:
        """Count a success; returns why ``limit`` moved (``INCREASE``, ``RESET``), or None."""
        now = self._advance(now)
        self._record(throttled=False)
        moved = self._note_backlog(now, backlog)
        if backlog:
            config = self._config
            limit = self._limit
            if limit < config.max_limit:  # at the ceiling an increase changes nothing
                self._limit = min(float(config.max_limit), limit + config.increase / limit)
                return self._moved(INCREASE)
        return moved

    def on_throttle(self, now: float) -> str | None:
        """Count a throttle; returns ``CUT`` if it cut ``limit``, else None."""
        now = self._advance(now)
        self._record(throttled=True)
        if self._idle_since is not None:  # a throttle is news: the idle period starts over
            self._idle_since = now
        config = self._config
        if (
            self._throttles >= config.min_throttles
            and self._throttles >= config.throttle_ratio * self._attempts
            and (self._last_cut is None or now - self._last_cut >= self._cooldown)
        ):
            self._limit = max(1.0, self._limit * config.decrease)
            self._last_cut = now
            return self._moved(CUT)
        return None

    def on_other_end(self, now: float) -> None:
        """An attempt ended with an error or a timeout: an attempt, neither success nor throttle."""
        self._advance(now)
        self._record(throttled=False)

    def tick(self, now: float, backlog: bool) -> str | None:
        """Let time pass without an event: ages the window and applies the idle reset (then
        returns ``RESET`` if ``limit`` moved)."""
        now = self._advance(now)
        return self._note_backlog(now, backlog)

    def _note_backlog(self, now: float, backlog: bool) -> str | None:
        if backlog:
            self._idle_since = None
        elif self._idle_since is None:
            self._idle_since = now
        elif now - self._idle_since >= self._config.idle_decay:
            self._limit = float(self._config.start)
            self._idle_since = now
            return self._moved(RESET)
        return None

    def _moved(self, reason: str) -> str | None:
        """Recompute the whole limit after ``_limit`` changed; ``reason`` if it moved."""
        # The epsilon keeps 2.9999999999 (a sum of increase / L steps) from reading as 2.
        level = max(1, min(self._config.max_limit, math.floor(self._limit + 1e-9)))
        if level == self._level:
            return None
        self._level = level
        return reason

    def _record(self, *, throttled: bool) -> None:
        slot = self._head % _SLOTS
        self._slot_attempts[slot] += 1
        self._attempts += 1
        if throttled:
            self._slot_throttles[slot] += 1
            self._throttles += 1

    def _advance(self, now: float) -> float:
        """Move the ring to ``now`` (never backwards); returns the effective time."""
        if now <= self._last:
            return self._last
        self._last = now
        head = self._slot_of(now)
        if head - self._head >= _SLOTS:
            self._slot_attempts = [0] * _SLOTS
            self._slot_throttles = [0] * _SLOTS
            self._attempts = self._throttles = 0
        else:
            for index in range(self._head + 1, head + 1):
                slot = index % _SLOTS
                self._attempts -= self._slot_attempts[slot]
                self._throttles -= self._slot_throttles[slot]
                self._slot_attempts[slot] = self._slot_throttles[slot] = 0
        self._head = head
        return now

    def _slot_of(self, now: float) -> int:
        return math.floor(now / self._slot_width)
