"""Cron end to end: slots submit tasks with stable IDs, once each, across a restart."""

from __future__ import annotations

import json
import time
from datetime import datetime

from tests.e2e.conftest import poll


def _slots(client, name: str) -> list[float]:
    tasks = client.list(labels={"cron": name}, limit=1000)
    stamps = [t.id.removeprefix(f"cron:{name}:") for t in tasks]
    return sorted(datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp() for s in stamps)


def test_cron_fires_each_slot_once_across_a_restart(make_daemon) -> None:
    daemon = make_daemon().start()
    cli = daemon.cli("cron", "add", "tick", "* * * * * *", "tests.e2e.tasks:add", "[1, 2]",
                     "--json")  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    entry = json.loads(cli.stdout)
    assert (entry["name"], entry["expr"], entry["tz"]) == ("tick", "* * * * * *", "UTC")
    client = daemon.client()
    poll(lambda: len(_slots(client, "tick")) >= 3, timeout=30)
    for task in client.list(labels={"cron": "tick"}):
        assert client.wait(task.id, timeout=30).state.value == "succeeded"
    assert daemon.stop() == 0
    stopped_at = time.time()
    # Downtime long enough to miss a few one-second slots; nothing can be polled meanwhile.
    time.sleep(2.5)
    daemon.start()
    client = daemon.client()
    poll(lambda: _slots(client, "tick")[-1] > stopped_at + 3.5, timeout=30)
    slots = _slots(client, "tick")
    assert len(slots) == len(set(slots))  # one task per slot
    assert all(s == int(s) for s in slots)  # whole seconds, as "* * * * * *" says
    missed = [s for s in slots if stopped_at < s < stopped_at + 2.5]
    assert len(missed) <= 1  # catch_up "one": of the slots missed while down, only the latest
    listed = json.loads(daemon.cli("cron", "list", "--json").stdout)
    assert [e["name"] for e in listed] == ["tick"]
    assert daemon.cli("cron", "remove", "tick").returncode == 0
    assert json.loads(daemon.cli("cron", "list", "--json").stdout) == []
    count = len(_slots(client, "tick"))
    poll(lambda: client.ping()["tasks"]["live"] == 0)
    assert daemon.stop() == 0
    daemon.start()  # a removed entry stays removed
    assert json.loads(daemon.cli("cron", "list", "--json").stdout) == []
    assert len(_slots(daemon.client(), "tick")) == count


def test_bad_cron_requests_change_nothing(make_daemon) -> None:
    daemon = make_daemon().start()
    for args, message in [
        (("x", "61 * * * *", "tests.e2e.tasks:add"), "not a valid cron expression"),
        (("x", "* * *", "tests.e2e.tasks:add"), "5 fields"),
        (("x", "* * * * *", "tests.e2e.tasks:add", "--tz", "Nowhere/City"), "unknown time zone"),
        (("x", "* * * * *", "tests.e2e.tasks:add", "--catch-up", "all"), "catch_up"),
        (("bad name", "* * * * *", "tests.e2e.tasks:add"), "not a cron entry name"),
        (("x", "* * * * *", "not-a-function"), "package.module:function"),
    ]:
        cli = daemon.cli("cron", "add", *args)
        assert cli.returncode == 2, (args, cli.stdout, cli.stderr)
        assert message in cli.stderr, (args, cli.stderr)
    remove = daemon.cli("cron", "remove", "nope")
    assert remove.returncode == 2
    assert "no cron entry" in remove.stderr
    assert json.loads(daemon.cli("cron", "list", "--json").stdout) == []
