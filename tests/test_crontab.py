"""The daemon's cron table: stored entries that cannot be used are set aside, never fatal."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from asynctask import protocol
from asynctask.core.cron import CronSchedule
from asynctask.daemon.crontab import CronEntry, CronTable, UnusableCron, describe


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


NOW = at("2026-12-07T10:00:00")
TASK = {"function": "app:job", "payload": b"\x92\x90\x80"}


def entry(name: str, expr: str) -> CronEntry:
    return CronEntry("acme", name, CronSchedule(expr), "one", TASK, created_at=NOW - 60)


def test_stored_entries_that_cannot_be_used_are_set_aside_and_listed() -> None:
    table = CronTable()
    assert table.load_stored("acme", "daily", entry("daily", "0 3 * * *").definition(), NOW) == []
    with pytest.raises(UnusableCron, match="never fires"):
        table.load_stored("acme", "feb30", entry("feb30", "0 3 30 2 *").definition(), NOW)
    with pytest.raises(UnusableCron, match=r"^FormatError$"):  # never an empty reason
        table.load_stored("acme", "junk", b"\xc1", NOW)
    bad_expr = protocol.pack({**protocol.unpack(entry("x", "* * * * *").definition()),
                              "expr": "61 * * * *"})  # fmt: skip
    with pytest.raises(UnusableCron, match="not a valid cron expression"):
        table.load_stored("acme", "old", bad_expr, NOW)
    assert len(table) == 1  # only the usable one is scheduled
    assert table.next_at() == at("2026-12-08T03:00:00")
    views = {view["name"]: view for view in table.entries(None)}
    assert list(views) == ["daily", "feb30", "junk", "old"]
    assert views["feb30"]["next_at"] is None
    assert views["feb30"]["function"] == "app:job"
    assert views["junk"]["expr"] == "?"
    assert "error" not in views["daily"]
    assert table.entries(frozenset({"other"})) == []
    assert table.due(at("2027-01-01T00:00:00"))  # the usable one still fires
    for name in ("feb30", "junk", "old"):
        assert table.remove("acme", name)
    assert not table.remove("acme", "junk")
    assert [view["name"] for view in table.entries(None)] == ["daily"]


def test_adding_an_entry_replaces_one_set_aside() -> None:
    table = CronTable()
    with pytest.raises(UnusableCron):
        table.load_stored("acme", "x", entry("x", "0 3 30 2 *").definition(), NOW)
    table.add(entry("x", "0 3 * * *"), NOW)
    (view,) = table.entries(None)
    assert view["next_at"] == at("2026-12-08T03:00:00")
    assert "error" not in view


def test_add_changes_nothing_when_the_schedule_has_no_slot() -> None:
    table = CronTable()
    with pytest.raises(ValueError, match="failed to find next date"):
        table.add(entry("feb30", "0 3 30 2 *"), NOW)
    assert table.entries(None) == []
    assert table.next_at() is None


def test_describe_is_never_empty() -> None:
    assert describe(ValueError("")) == "ValueError"
    assert describe(KeyError("expr")) == "KeyError: 'expr'"
    assert describe(ValueError("bad")) == "bad"
