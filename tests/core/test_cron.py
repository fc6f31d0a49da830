"""Cron schedules: parsing, next slots, catch-up after downtime, slot IDs (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asynctask.core.cron import CronSchedule, slot_id


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_five_and_six_fields_and_time_zones():
    assert CronSchedule("*/15 * * * *").next_after(at("2026-01-01T00:07:00")) == at(
        "2026-01-01T00:15:00"
    )
    # Six fields: the first is seconds.
    assert CronSchedule("30 * * * * *").next_after(at("2026-01-01T00:00:31")) == at(
        "2026-01-01T00:01:30"
    )
    # 09:00 in Paris is 08:00 UTC in winter.
    paris = CronSchedule("0 9 * * *", "Europe/Paris")
    assert paris.next_after(at("2026-01-10T12:00:00")) == at("2026-01-11T08:00:00")


@pytest.mark.parametrize(
    ("expr", "tz", "message"),
    [
        ("* * * *", "UTC", "5 fields"),
        ("* * * * * * *", "UTC", "5 fields"),
        ("61 * * * *", "UTC", "not a valid cron expression"),
        ("* * * * mon-xyz", "UTC", "not a valid cron expression"),
        ("* * * * *", "Mars/Olympus", "unknown time zone"),
    ],
)
def test_bad_expressions_are_refused(expr, tz, message):
    with pytest.raises(ValueError, match=message):
        CronSchedule(expr, tz)


def test_missed_slots_fire_once_or_not_at_all():
    hourly = CronSchedule("0 * * * *")
    down, up = at("2026-01-01T00:30:00"), at("2026-01-01T05:10:00")
    assert hourly.missed(down, up, "one") == [at("2026-01-01T05:00:00")]  # only the latest
    assert hourly.missed(down, up, "skip") == []
    assert hourly.missed(down, at("2026-01-01T00:59:00"), "one") == []  # none was missed
    every_second = CronSchedule("* * * * * *")
    assert every_second.missed(0.0, at("2026-01-01T00:00:00"), "one") == [
        at("2026-01-01T00:00:00")
    ]  # more slots than it looks at: still just the latest


@given(st.floats(min_value=0, max_value=4e9), st.sampled_from(["* * * * *", "*/7 3 * * *"]))
def test_next_slot_is_strictly_later_and_ids_are_stable(moment, expr):
    schedule = CronSchedule(expr)
    slot = schedule.next_after(moment)
    assert slot > moment
    assert schedule.next_after(slot) > slot
    assert slot_id("n", slot) == slot_id("n", slot)
    assert slot_id("n", slot).startswith("cron:n:")


@pytest.mark.parametrize(
    "expr",
    [
        "0 3 30 2 *",  # February 30
        "0 0 31 4 *",  # April 31
        "0 0 0 31 11 *",  # November 31, six fields
        "0 0 30,31 2 *",
    ],
)
def test_a_date_that_never_comes_never_fires(expr):
    schedule = CronSchedule(expr)  # valid syntax: only its first slot tells
    with pytest.raises(ValueError, match="never fires"):
        schedule.first_slot(at("2026-12-07T10:00:00"))


def test_first_slot_is_the_next_one_within_the_horizon():
    now = at("2026-12-07T10:00:00")
    assert CronSchedule("0 3 * * *").first_slot(now) == at("2026-12-08T03:00:00")
    # February 29 is up to 8 years away (2096 -> 2104): still fires.
    assert CronSchedule("0 0 29 2 *").first_slot(at("2096-03-01T00:00:00")) == at(
        "2104-02-29T00:00:00"
    )
    # Either the day of month or the weekday (cron's rule): Mondays in February do come.
    assert CronSchedule("0 0 30 2 1").first_slot(now) == at("2027-02-01T00:00:00")
    with pytest.raises(ValueError, match="no slot in the next 1 years"):
        CronSchedule("0 0 29 2 *").first_slot(at("2026-03-01T00:00:00"), within=366 * 86_400)
