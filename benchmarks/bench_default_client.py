"""Per-call time of ``f.submit()``: a new client per call (as it was) against the default
client (``asynctask/client/_default.py``), and threads sharing one connection against a
connection per thread (the default). A real daemon; the tenant is paused so nothing runs and the
figures are the submit path alone (``durability = "normal"``: no fsync per commit, so the
connection's cost is not hidden under the disk's).

Run: ``.venv/bin/python benchmarks/bench_default_client.py``.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from asynctask import Client
from asynctask.client import configure_default, default_client
from benchmarks.reliability.common import Daemon, config_text
from benchmarks.tasks import noop_task

CALLS = 400
THREADS = 8
PER_THREAD = 200


def per_call(submit: Callable[[], object], calls: int = CALLS) -> float:
    """Median seconds per call over ``calls`` calls."""
    times = []
    for _ in range(calls):
        began = time.perf_counter()
        submit()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def threaded(make_submit: Callable[[], Callable[[], object]]) -> float:
    """Submits per second of ``THREADS`` threads, each with the submit ``make_submit`` gives."""
    ready = threading.Barrier(THREADS + 1)

    def work() -> None:
        submit = make_submit()
        submit()  # connected before the clock starts
        ready.wait()
        for _ in range(PER_THREAD):
            submit()

    threads = [threading.Thread(target=work) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    ready.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    return THREADS * PER_THREAD / (time.perf_counter() - began)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        daemon = Daemon(Path(tmp) / "home", config_text("normal")).start()
        try:
            configure_default(socket=daemon.socket)
            daemon.client().pause(tenant="default")  # nothing runs: the submit path alone
            old = per_call(lambda: Client(daemon.socket).submit(noop_task))
            new = per_call(noop_task.submit)
            print(f"f.submit(), a new client per call: {old * 1e6:8.0f} us per call")
            print(f"f.submit(), the default client:    {new * 1e6:8.0f} us per call")
            one = Client(daemon.socket)  # one connection, its lock shared by the threads
            shared = threaded(lambda: lambda: one.submit(noop_task))
            own = threaded(lambda: noop_task.submit)  # the default: a client per thread
            print(f"{THREADS} threads, one shared connection: {shared:8.0f} submits/s")
            print(f"{THREADS} threads, a connection each:     {own:8.0f} submits/s")
            assert default_client() is default_client()
        finally:
            configure_default()
            daemon.stop()


if __name__ == "__main__":
    main()
