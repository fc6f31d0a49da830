"""Cron schedules: when a periodic task's slots fall, and which missed ones to fire.

Parsing and the calendar arithmetic (month lengths, day-of-week/day-of-month rules, daylight
saving) are croniter's, a maintained library (pallets-eco); this module only fixes the
conventions the product promises: 5 fields, or 6 with a *leading* seconds field; an optional
IANA time zone (UTC by default); times in and out as epoch seconds.

Every slot is an exact instant, so a slot's task gets the deterministic ID
``cron:<name>:<slot as ISO 8601>``: submitting it twice (a restart in between) finds the first.
After downtime, ``catch_up`` decides what the missed slots become: ``"one"`` (the default)
fires the latest missed slot once, ``"skip"`` fires none and waits for the next.

A valid expression can still name a date that never comes (``0 3 30 2 *``, February 30):
croniter then raises on every ``get_next``. ``first_slot`` is the check for it: a schedule with
no slot within ``FIRES_WITHIN`` is refused when it is added, so the daemon never stores one
(February 29 across 2100 is eight years apart, hence the horizon).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

CATCH_UP: Final = ("one", "skip")
#: Missed slots are looked for at most this far back (a year of per-second slots is too many).
_MAX_LOOKBACK: Final = 10_000
#: A schedule must have a slot this soon after it is added, or it "never fires".
FIRES_WITHIN: Final = 8 * 366 * 86_400.0


@dataclass(frozen=True, slots=True)
class CronSchedule:
    expr: str
    tz: str = "UTC"

    def __post_init__(self) -> None:
        fields = self.expr.split()
        if len(fields) not in (5, 6):
            raise ValueError(
                f"a cron expression has 5 fields (minute hour day month weekday), or 6 with a "
                f"leading seconds field; {self.expr!r} has {len(fields)}"
            )
        if not croniter.is_valid(self.expr, second_at_beginning=True):
            raise ValueError(f"not a valid cron expression: {self.expr!r}")
        try:
            ZoneInfo(self.tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {self.tz!r} (use an IANA name)") from None

    def next_after(self, moment: float) -> float:
        """The first slot strictly after ``moment`` (epoch seconds)."""
        start = datetime.fromtimestamp(moment, ZoneInfo(self.tz))
        return float(croniter(self.expr, start, second_at_beginning=True).get_next(float))

    def first_slot(self, moment: float, within: float = FIRES_WITHIN) -> float:
        """``next_after(moment)``, or ``ValueError`` saying the schedule never fires when it has
        no slot within ``within`` seconds (croniter gives up on such dates with its own error,
        which is reported too; any error of croniter's counts as "never fires")."""
        try:
            slot = self.next_after(moment)
        except Exception as exc:  # croniter's own errors are not part of its documented API
            reason = str(exc) or type(exc).__name__
            raise ValueError(f"cron expression {self.expr!r} never fires ({reason})") from None
        if slot > moment + within:
            years = round(within / (366 * 86_400))
            raise ValueError(
                f"cron expression {self.expr!r} never fires (no slot in the next {years} years)"
            )
        return slot

    def missed(self, after: float, now: float, catch_up: str) -> list[float]:
        """Slots in ``(after, now]`` to fire now: the latest one (``"one"``) or none."""
        if catch_up == "skip":
            return []
        latest = None
        slot = self.next_after(after)
        for _ in range(_MAX_LOOKBACK):
            if slot > now:
                break
            latest = slot
            slot = self.next_after(slot)
        else:  # more slots than we look at: the latest is the one before the next
            latest = self._latest_at_or_before(now)
        return [] if latest is None else [latest]

    def _latest_at_or_before(self, moment: float) -> float:
        # get_prev is strictly before its start; a millisecond later keeps a slot at moment.
        start = datetime.fromtimestamp(moment + 0.001, ZoneInfo(self.tz))
        it = croniter(self.expr, start, second_at_beginning=True)
        return float(it.get_prev(float))


def slot_id(name: str, slot: float) -> str:
    """The task ID of a cron slot: the same on every start, so a slot runs once."""
    stamp = datetime.fromtimestamp(slot, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"cron:{name}:{stamp}"
