"""A long queue's tail stays in the store (``daemon/coldqueue.py``): it costs little memory,
answers status and de-duplication from the store, is cancelled, held and waited for like any
queued task, runs in FIFO order exactly once, and comes back after a restart."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from asynctask.daemon.coldqueue import WINDOW
from asynctask.daemon.recovery import BEFORE_SERVING
from asynctask.errors import WaitTimeout
from tests.e2e.conftest import poll

ONE_WORKER = "[workers]\nmin_workers = 1\nmax_workers = 1\n"
TAIL = 5_000  # WINDOW in memory, the rest in the store
assert TAIL > 2 * WINDOW


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _fill(client, ledger: Path, count: int, start: int = 0) -> None:
    for first in range(start, start + count, 1_000):
        client.submit_many(
            {"func": "tests.e2e.tasks:ledgered", "args": [str(ledger), 0], "task_id": f"t{n:06d}"}
            for n in range(first, min(first + 1_000, start + count))
        )


def test_a_queue_tail_is_served_from_the_store_and_runs_in_order_once(
    make_daemon, tmp_path: Path
) -> None:
    daemon = make_daemon(ONE_WORKER).start()
    client = daemon.client(tenant="bulk")
    ledger = tmp_path / "ledger"
    client.pause(tenant="bulk")
    _fill(client, ledger, TAIL)
    assert client.ping()["tasks"]["live"] == TAIL
    queue = next(q for q in client.queues()["queues"] if q["tenant"] == "bulk")
    assert (queue["backlog"], queue["queued"]) == (TAIL, TAIL)

    tail_id = f"t{TAIL - 100:06d}"  # beyond the window: in the store only
    assert client.status(tail_id).state.value == "queued"
    again = client.submit("tests.e2e.tasks:add", 1, 2, task_id=tail_id)  # de-duplicated
    assert (again.id, client.ping()["tasks"]["live"]) == (tail_id, TAIL)
    with pytest.raises(WaitTimeout):
        client.wait(f"t{TAIL - 90:06d}", timeout=0.2)  # waits: it is not finished
    assert client.cancel(task_id=f"t{TAIL - 50:06d}") == 1
    assert client.status(f"t{TAIL - 50:06d}").state.value == "cancelled"
    assert client.ping()["tasks"]["live"] == TAIL - 1

    waited: list[str] = []  # a wait for a task of the tail (it runs seconds after the resume)
    waiting = threading.Thread(
        target=lambda: waited.append(daemon.client("bulk").wait(tail_id, timeout=120).state.value)
    )
    waiting.start()
    client.resume(tenant="bulk")
    poll(lambda: client.ping()["tasks"]["live"] == 0, timeout=120)
    waiting.join(120)
    assert waited == ["succeeded"]
    ran = [line.split()[0] for line in ledger.read_text().splitlines()]
    expected = [f"t{n:06d}" for n in range(TAIL) if n != TAIL - 50]
    assert ran == expected  # FIFO across the window and the tail, each once
    assert client.status(tail_id).state.value == "succeeded"


def test_a_stored_tail_comes_back_after_a_restart_and_a_selector_reaches_it(
    make_daemon, tmp_path: Path
) -> None:
    daemon = make_daemon(ONE_WORKER).start()
    client = daemon.client(tenant="bulk")
    client.pause(tenant="bulk")
    _fill(client, tmp_path / "ledger", TAIL)
    assert daemon.stop() == 0
    daemon.start()
    client = daemon.client(tenant="bulk")
    assert client.ping()["tasks"]["live"] == TAIL
    assert client.status(f"t{TAIL - 1:06d}").state.value == "queued"
    assert client.cancel(tenant="bulk") == TAIL  # the window and the whole tail
    assert client.ping()["tasks"]["live"] == 0
    assert client.status(f"t{TAIL - 1:06d}").state.value == "cancelled"
    assert not (tmp_path / "ledger").exists()


def test_a_long_paused_backlog_costs_little_memory(make_daemon, tmp_path: Path) -> None:
    """30,000 more queued tasks: about 13 MiB as task objects (~430 bytes each), well under
    4 MiB as a stored tail (16 bytes each, plus the allocator's slack)."""
    daemon = make_daemon().start()
    assert daemon.proc is not None
    client = daemon.client(tenant="bulk")
    client.pause(tenant="bulk")
    ledger = tmp_path / "ledger"
    _fill(client, ledger, 3_000)  # the window, and the requests' own buffers, are made
    before = _rss_kib(daemon.proc.pid)
    _fill(client, ledger, 30_000, start=3_000)
    grown = _rss_kib(daemon.proc.pid) - before
    assert client.ping()["tasks"]["live"] == 33_000
    assert grown < 4 * 1024, f"RSS grew {grown} KiB for 30,000 queued tasks"


def test_requests_are_answered_while_a_long_backlog_loads(make_daemon, tmp_path: Path) -> None:
    """Past ``BEFORE_SERVING`` stored tasks the daemon serves while the rest loads: ping says
    so, status and de-duplication answer from the store, a submit is stored at once (and runs
    once the load is over, after the backlog it must not overtake), a cancel waits for it."""
    count = BEFORE_SERVING + 30_000
    daemon = make_daemon().start()
    client = daemon.client(tenant="bulk")
    client.pause(tenant="bulk")
    for _ in range(count // 5_000):
        client.submit_many({"func": "tests.e2e.tasks:add", "args": [1, 2]} for _n in range(5_000))
    last = client.submit("tests.e2e.tasks:add", 1, 2, task_id="last")  # loaded last
    assert daemon.stop() == 0

    daemon.start()  # answered ping: serving
    client = daemon.client(tenant="bulk")
    assert client.ping()["loading"] is True  # the rest of the backlog still loads
    assert client.status("last").state.value == "queued"  # from the store
    again = client.submit("tests.e2e.tasks:add", 3, 4, task_id="last")
    assert (again.id, again.status().state.value) == ("last", "queued")  # the stored one
    other = daemon.client(tenant="other").submit("tests.e2e.tasks:add", 2, 3)
    assert other.status().state.value == "queued"  # stored at once, found by status
    assert client.cancel(task_id="last") == 1  # waits for the load, then finds it
    assert client.ping()["loading"] is False
    assert other.result(timeout=60) == 5
    assert client.ping()["tasks"]["live"] == count
    assert last.status().state.value == "cancelled"
