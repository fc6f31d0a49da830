"""History through a real daemon: ``asynctask list`` filters and pages, and retention's cap."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.e2e.conftest import DaemonProcess, poll

ADD = "tests.e2e.tasks:add"
ECHO = "tests.e2e.tasks:echo"


def _pages(daemon: DaemonProcess, *args: str) -> list[list[dict[str, object]]]:
    """Every page of ``list ARGS --json``, following the cursor printed on stderr."""
    pages = []
    cursor: list[str] = []
    for _ in range(100):
        cli = daemon.cli("list", *args, "--json", *cursor)
        assert cli.returncode == 0, cli.stderr
        pages.append(json.loads(cli.stdout))  # stdout stays one JSON array
        found = re.search(r"next page: --cursor (\S+)", cli.stderr)
        if found is None:
            return pages
        cursor = ["--cursor", found.group(1)]
    raise AssertionError("the cursor never ended")


def test_list_filters_and_pages_through_the_cli(make_daemon) -> None:
    daemon = make_daemon().start()
    handles = []
    for n in range(24):
        tenant = ("acme", "globex")[n % 2]
        client = daemon.client(tenant=tenant)
        labels = {"batch": "nightly"} if n % 3 else {}
        func = (ADD, ECHO)[n % 4 == 0]
        handles.append(client.submit(func, n, 1, task_id=f"job-{n:02d}", labels=labels))
    for handle in handles:
        handle.wait(timeout=30)
    everything = daemon.client().list(limit=1000)
    assert len(everything) == 24

    def brute(tenant: str, function: str, label: bool) -> list[str]:
        return [
            t.id
            for t in everything  # newest first, as the daemon sorts
            if t.tenant == tenant
            and t.function == function
            and (not label or t.labels.get("batch") == "nightly")
        ]

    for tenant, function, label in [
        ("acme", ADD, True),
        ("globex", ADD, False),
        ("acme", ECHO, False),
    ]:
        args = ["--tenant", tenant, "--function", function, "--limit", "2"]
        if label:
            args += ["--label", "batch=nightly"]
        pages = _pages(daemon, *args)
        ids = [task["id"] for page in pages for task in page]
        assert ids == brute(tenant, function, label), args
        assert all(len(page) == 2 for page in pages[:-1])
        assert pages[-1] or len(pages) == 1  # no empty page after a full one
    # the whole history, 5 at a time: every task once, newest first
    pages = _pages(daemon, "--limit", "5")
    assert [task["id"] for page in pages for task in page] == [t.id for t in everything]
    assert [len(page) for page in pages] == [5, 5, 5, 5, 4]


def test_a_bad_cursor_is_a_usage_error(daemon: DaemonProcess) -> None:
    cli = daemon.cli("list", "--cursor", "not-a-cursor")
    assert cli.returncode == 2, (cli.stdout, cli.stderr)
    assert "not a list cursor" in cli.stderr
    assert cli.stdout == ""


def test_history_max_keeps_the_newest_finished_and_every_live_task(make_daemon) -> None:
    """The count cap, applied by the pass at start-up: of 12 finished tasks (each with an
    attempt log) the newest 5 stay, the others go with their logs; a waiting task stays."""
    config = "[daemon]\nhistory_days = 0\nhistory_max = 5\n"
    daemon = make_daemon(config).start()
    client = daemon.client()
    client.pause(tenant="waiting")
    waiting = daemon.client(tenant="waiting").submit(ADD, 1, 1, task_id="waits")
    for n in range(12):
        handle = client.submit("tests.e2e.tasks:talk", 1, "/nonexistent", 0, task_id=f"t-{n:02d}")
        handle.wait(timeout=30)
    logs = Path(daemon.home) / "logs" / "attempts"
    poll(lambda: len(list(logs.glob("*.log"))) == 12, timeout=10)
    # the pass at start-up already ran: 12 finished are more than 5, and the next pass is
    # a minute away, so restart to run one now
    assert daemon.stop() == 0
    daemon.start()
    client = daemon.client()  # a new connection to the new daemon
    newest = [f"t-{n:02d}" for n in range(11, 6, -1)]
    poll(lambda: [t.id for t in client.list(tenant="default", limit=100)] == newest, timeout=20)
    assert daemon.client(tenant="waiting").status(waiting.id).state.value == "queued"
    poll(lambda: len(list(logs.glob("*.log"))) == 5, timeout=10)
