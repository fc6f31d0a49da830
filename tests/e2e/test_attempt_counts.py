"""The interrupted attempt counts, even when the daemon dies before "running" is committed.

The finding: with the writer busy, 3 of 5 re-runs after a kill -9 repeated attempt 1, because
the attempt started before its "running" write committed. The start journal
(``store/starts.py``) puts the attempt's number on disk before the attempt starts.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from pathlib import Path

from asynctask.client import Client
from asynctask.errors import DaemonUnavailable
from tests.e2e.conftest import DaemonProcess, poll

CONFIG = "[workers]\nmin_workers = 1\nmax_workers = 1\n"


def _flood(client: Client) -> None:
    with contextlib.suppress(DaemonUnavailable):  # killed under it: that is the test
        client.submit_many(
            {"func": "tests.e2e.tasks:add", "args": [1, 2], "delay": 3600} for _ in range(10_000)
        )


def test_an_attempt_cut_by_a_kill_while_the_writer_is_busy_counts(
    make_daemon: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    home = tmp_path / "home"
    for round_ in range(3):
        go, ledger = tmp_path / f"go{round_}", tmp_path / f"ledger{round_}"
        first_go, first_ledger = tmp_path / f"first-go{round_}", tmp_path / f"first{round_}"
        daemon = make_daemon(CONFIG, home=home).start()
        client = daemon.client()
        # The one worker is busy with the first task while the second waits its turn.
        client.submit("tests.e2e.tasks:run_when", str(first_go), str(first_ledger))
        poll(lambda: first_ledger.exists())  # noqa: B023
        client.submit("tests.e2e.tasks:run_when", str(go), str(ledger), task_id=f"cut{round_}")
        busy = threading.Thread(target=_flood, args=(daemon.client(),), daemon=True)
        busy.start()
        # The writer is committing the flood when the first task ends and the second starts.
        poll(lambda: client.ping()["store"]["pending"] >= 10_000, interval=0.001)  # noqa: B023
        first_go.touch()
        poll(lambda: ledger.exists() and ledger.read_text(), interval=0.001)  # noqa: B023
        daemon.kill9()
        busy.join(30)
        go.touch()
        again = make_daemon(CONFIG, home=home).start()
        assert again.client().result(f"cut{round_}", timeout=30) == 2
        assert ledger.read_text() == "1\n2\n"
        again.stop()
