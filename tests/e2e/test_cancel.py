"""Bulk cancel: by ID or selector, running attempts stopped, one transaction, kept on restart."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from tests.e2e.conftest import poll

ONE_WORKER = "[workers]\nmin_workers = 1\nmax_workers = 1\n"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_cancelling_a_running_task_stops_its_worker(make_daemon, tmp_path: Path) -> None:
    daemon = make_daemon(ONE_WORKER).start()
    client = daemon.client()
    marker = tmp_path / "pid"
    handle = client.submit("tests.e2e.tasks:sleep_first_attempt", 60, str(marker))
    poll(marker.exists)
    pid = int(marker.read_text())
    started = time.monotonic()
    cli = daemon.cli("cancel", handle.id)
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.strip() == "cancelled 1 task"
    poll(lambda: not _alive(pid), timeout=5)
    stopped_after = time.monotonic() - started
    assert stopped_after < 3.0, stopped_after  # TERM first; KILL only after the grace
    status = handle.wait(timeout=10)
    assert status.state.value == "cancelled"
    assert status.attempts == 1
    # The replacement worker runs the next task; the cancelled one never runs again.
    assert client.submit("tests.e2e.tasks:add", 2, 3).result(timeout=20) == 5
    assert client.status(handle.id).state.value == "cancelled"


def test_cancel_by_selector_is_one_transaction_and_kept_across_a_restart(make_daemon) -> None:
    daemon = make_daemon().start()
    client = daemon.client(tenant="acme")
    client.pause(tenant="acme")
    client.submit_many(
        {"func": "tests.e2e.tasks:add", "args": [i, 0], "labels": {"batch": "a"}}
        for i in range(6000)
    )
    keep = client.submit_many(
        {"func": "tests.e2e.tasks:add", "args": [i, 0], "labels": {"batch": "b"}} for i in range(50)
    )
    before = client.ping()["store"]["transactions"]
    assert client.cancel(tenant="acme", labels={"batch": "a"}) == 6000
    # More than the writer's batch cap of 5,000, and still one transaction.
    poll(lambda: client.ping()["store"]["transactions"] > before)
    assert client.ping()["store"]["transactions"] == before + 1
    assert client.cancel(tenant="acme", labels={"batch": "a"}) == 0  # nothing live is left
    assert daemon.stop() == 0
    daemon.start()
    client = daemon.client(tenant="acme")
    cancelled = client.list(state="cancelled", labels={"batch": "a"}, limit=10_000)
    assert len(cancelled) == 6000
    assert {client.status(h.id).state.value for h in keep} == {"queued"}
    client.resume(tenant="acme")
    assert all(client.wait(h.id, timeout=30).state.value == "succeeded" for h in keep)


def test_bad_cancel_requests_change_nothing(make_daemon) -> None:
    daemon = make_daemon().start()
    client = daemon.client()
    client.pause(tenant="default")
    client.submit_many({"func": "tests.e2e.tasks:add", "args": [1, 1]} for _ in range(5))
    other = daemon.client(tenant="other")
    other.pause(tenant="other")
    other.submit_many({"func": "tests.e2e.tasks:add", "args": [1, 1]} for _ in range(2))
    for args, message in [
        ((), "needs a task ID or a selector"),
        (("--state", "succeeded"), "only live tasks"),
        (("--state", "bogus"), "unknown state"),
        (("--since", "yesterday"), "--since"),
        (("not a valid id!",), "not a task ID"),
    ]:
        cli = daemon.cli("cancel", *args)
        assert cli.returncode == 2, (args, cli.stdout, cli.stderr)
        assert message in cli.stderr, (args, cli.stderr)
    assert client.ping()["tasks"]["live"] == 7
    cli = daemon.cli("cancel", "--state", "queued", "--json")  # --tenant defaults to default
    assert json.loads(cli.stdout) == {"cancelled": 5}
    poll(lambda: client.ping()["tasks"]["live"] == 2)  # the other tenant's are untouched
    assert other.cancel() == 2  # a client cancels in its own tenant unless told otherwise
    poll(lambda: client.ping()["tasks"]["live"] == 0)
    assert {t.state.value for t in other.list(tenant="other")} == {"cancelled"}
