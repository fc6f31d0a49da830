"""Workers that run several attempts at once (``[workers] concurrency``) with many tenants.

Replacing another tenant's idle worker retires all of that worker's free slots for the one
job that waits on the replacement, so the pool can have fewer free slots than the scheduler
was told at the start of a step. That used to raise "no idle worker" out of the step and
leave the dispatched task counted as running for ever (the drain stalled); the daemon now
takes such a dispatch back (``Scheduler.undispatch``) and starts it once a worker is free.
"""

from __future__ import annotations

from collections.abc import Callable

from tests.e2e.conftest import DaemonProcess

CONFIG = "[workers]\nmin_workers = 4\nmax_workers = 4\nconcurrency = 2\n"


def test_many_tenants_on_workers_of_two_slots_all_finish(
    make_daemon: Callable[..., DaemonProcess],
) -> None:
    daemon = make_daemon(CONFIG).start()
    handles = []
    for tenant in range(24):
        client = daemon.client(f"t{tenant}")
        handles += client.submit_many(
            [{"func": "tests.e2e.tasks:sleep", "args": (0.02,)} for _ in range(10)]
        )
    for handle in handles:
        assert handle.wait(timeout=60).state.value == "succeeded"
    log = daemon.log.read_text()
    assert "no idle worker" not in log
    assert "Traceback" not in log
