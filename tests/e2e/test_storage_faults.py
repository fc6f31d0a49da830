"""Storage faults with a real disk: the daemon's home on a small tmpfs that a test fills up.

Disk full is the fault a real disk gives most (a write fails with ENOSPC, SQLite rolls the
transaction back). The promises (docs/contract.md, "Robustness"): the affected requests fail
with the code ``storage``, nothing is acknowledged that was not committed, reads keep working,
``ping`` says storage is failing, and service resumes without a restart once there is space
again.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from asynctask.errors import StorageError
from benchmarks.reliability import diskfull
from tests.e2e.conftest import DaemonProcess, poll

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="mounts a small tmpfs to fill up, which needs root"
)

CONFIG = "[workers]\nmin_workers = 1\nmax_workers = 2\n"


class SmallDisk:
    """A tmpfs (``benchmarks.reliability.diskfull.tmpfs``); ``fill`` leaves it full, ``free``
    gives the space back."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._filler = root / "filler"

    def fill(self) -> None:
        diskfull.fill(self._filler)

    def free(self) -> None:
        self._filler.unlink(missing_ok=True)


@pytest.fixture
def disk() -> Iterator[SmallDisk]:
    with contextlib.ExitStack() as stack:
        try:
            root = stack.enter_context(diskfull.tmpfs("32m"))
        except diskfull.MountUnavailable as exc:
            pytest.skip(f"cannot mount a tmpfs here: {exc}")
        yield SmallDisk(root)


@pytest.fixture
def on_disk(
    make_daemon: Callable[..., DaemonProcess], disk: SmallDisk, tmp_path: Path
) -> DaemonProcess:
    daemon = make_daemon(CONFIG, home=disk.root / "home")
    daemon.log = tmp_path / "daemon.log"  # not on the disk that fills up
    return daemon.start()


def _stored_state(daemon: DaemonProcess, task_id: str) -> tuple[str, int]:
    with contextlib.closing(sqlite3.connect(daemon.home / "asynctask.db")) as db:
        row = db.execute("SELECT state, attempts FROM tasks WHERE id = ?", (task_id,)).fetchone()
    assert row is not None, task_id
    return row[0], row[1]


def test_submits_fail_with_the_storage_code_and_service_resumes_without_a_restart(
    on_disk: DaemonProcess, disk: SmallDisk
) -> None:
    client = on_disk.client()
    before = client.submit("tests.e2e.tasks:add", 1, 2)
    assert before.result(timeout=30) == 3
    disk.fill()
    with pytest.raises(StorageError, match="nothing of it was stored"):
        client.submit("tests.e2e.tasks:add", 2, 3, task_id="while-full")
    storage = poll(lambda: (s := client.ping()["storage"])["ok"] is False and s)
    assert "SQLITE_FULL" in storage["error"]
    assert client.status(before.id).state.value == "succeeded"  # reads keep working
    cli = on_disk.cli("submit", "tests.e2e.tasks:add", "[1, 1]", "--json")
    assert cli.returncode == 2, cli.stdout + cli.stderr
    assert '"storage"' in cli.stdout + cli.stderr
    pinged = on_disk.cli("ping")  # a readiness check fails while nothing can be stored
    assert pinged.returncode == 2
    assert "storage failing" in pinged.stderr
    disk.free()
    poll(lambda: client.ping()["storage"]["ok"], timeout=20)  # a probe finds the space
    assert on_disk.cli("ping").returncode == 0
    after = client.submit("tests.e2e.tasks:add", 2, 3, task_id="while-full")
    assert after.result(timeout=30) == 5
    assert on_disk.proc is not None
    assert on_disk.proc.poll() is None


def test_an_attempt_whose_end_cannot_be_stored_is_held_until_it_is(
    on_disk: DaemonProcess, disk: SmallDisk, tmp_path: Path
) -> None:
    """It stays live in its end state (``wait`` does not answer), and once space returns it
    is stored as it ended: not re-run, not stuck in ``running``."""
    go, ledger = tmp_path / "go", tmp_path / "ledger"
    client = on_disk.client()
    handle = client.submit("tests.e2e.tasks:run_when", str(go), str(ledger), task_id="held")
    poll(lambda: ledger.exists() and ledger.read_text())
    assert _stored_state(on_disk, "held") == ("running", 1)  # stored before it started
    disk.fill()
    go.touch()
    poll(lambda: client.ping()["storage"]["unstored"] == 1)
    with pytest.raises(Exception, match="did not finish"):
        client.wait(handle.id, timeout=0.5)  # not answered with a state it does not have
    with pytest.raises(StorageError):
        client.submit("tests.e2e.tasks:add", 1, 1, task_id="held")  # its ID is not free
    assert _stored_state(on_disk, "held") == ("running", 1)
    disk.free()
    assert handle.result(timeout=20) == 1
    assert _stored_state(on_disk, "held") == ("succeeded", 1)
    assert ledger.read_text() == "1\n"  # ran once
    assert client.ping()["storage"] == {**client.ping()["storage"], "ok": True, "unstored": 0}


def test_a_submit_many_is_stored_whole_or_not_at_all(
    on_disk: DaemonProcess, disk: SmallDisk
) -> None:
    """10,000 tasks are more than one write batch (5,000 ops); the space left takes about half.
    Before, the first batch committed and the client was told the request failed."""
    client = on_disk.client()
    disk.fill()
    disk.free()  # measure: a fresh fill leaves room for ~half of the batch
    filler = disk.root / "filler"
    free = os.statvfs(disk.root).f_bavail * os.statvfs(disk.root).f_frsize
    payload = "x" * 1500
    with open(filler, "wb") as handle:
        handle.write(b"\0" * max(0, free - 9 * 1024 * 1024))
    with pytest.raises(StorageError):
        client.submit_many(
            {"func": "tests.e2e.tasks:add", "args": [payload, ""], "task_id": f"bulk-{n}"}
            for n in range(10_000)
        )
    with contextlib.closing(sqlite3.connect(on_disk.home / "asynctask.db")) as db:
        (stored,) = db.execute("SELECT count(*) FROM tasks WHERE id LIKE 'bulk-%'").fetchone()
    assert stored == 0
    assert client.ping()["tasks"]["live"] == 0


def test_output_on_a_full_disk_is_dropped_with_a_few_log_lines(
    on_disk: DaemonProcess, disk: SmallDisk, tmp_path: Path
) -> None:
    """Before, every line a task printed logged an error with a traceback."""
    go, ledger = tmp_path / "go", tmp_path / "ledger"
    client = on_disk.client()
    handle = client.submit("tests.e2e.tasks:talk_when", str(go), str(ledger), 2000)
    poll(lambda: ledger.exists() and ledger.read_text())
    disk.fill()
    go.touch()
    poll(lambda: client.ping()["storage"]["unstored"] == 1)
    disk.free()
    assert handle.result(timeout=20) == 1
    log = on_disk.log.read_text()
    assert "Traceback" not in log
    assert 1 <= log.count("its log cannot be written") <= 3


@pytest.mark.parametrize("rule", ["fsync:1:EIO:always", "write:1:EIO:always"])
def test_an_io_error_stops_the_daemon_for_a_restart_from_what_is_on_disk(
    make_daemon: Callable[..., DaemonProcess],
    shim_lib: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    rule: str,
) -> None:
    """After a failed write or fsync the page cache cannot be trusted (fsyncgate): the daemon
    must not go on committing on top of it. Before, it kept writing to the same files and a
    submit it had reported as rolled back came back after a crash."""
    from benchmarks.reliability import shim

    home, control = tmp_path / "home", tmp_path / "faults"
    env = shim.shim_env(shim_lib, home, control=control, report=tmp_path / "faults.log")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    daemon = make_daemon(CONFIG, home=home)
    daemon.log = tmp_path / "daemon.log"  # its stderr: not a file the shim fails
    daemon.start()
    client = daemon.client()
    kept = client.submit("tests.e2e.tasks:add", 1, 2, task_id="kept")
    assert kept.result(timeout=30) == 3
    shim.set_faults(control, rule)
    with pytest.raises(StorageError, match="unknown"):
        client.submit("tests.e2e.tasks:add", 2, 3, task_id="in-doubt")
    assert daemon.proc is not None
    assert daemon.proc.wait(30) == 75  # EX_TEMPFAIL: start me again
    assert "re-opens the database from what is on disk" in daemon.log.read_text()
    assert shim.injected(tmp_path / "faults.log")
    shim.set_faults(control, "off")
    again = make_daemon(CONFIG, home=home).start()
    assert again.client().status("kept").state.value == "succeeded"


def test_a_daemon_starts_and_serves_on_a_full_disk(
    make_daemon: Callable[..., DaemonProcess], disk: SmallDisk, tmp_path: Path
) -> None:
    """With a task that was running at a kill -9 (so start-up has a write to make)."""
    go, ledger = tmp_path / "go", tmp_path / "ledger"
    first = make_daemon(CONFIG, home=disk.root / "home")
    first.log = tmp_path / "first.log"
    client = first.start().client()
    done = client.submit("tests.e2e.tasks:add", 1, 2, task_id="done")
    assert done.result(timeout=30) == 3
    client.submit("tests.e2e.tasks:run_when", str(go), str(ledger), task_id="cut")
    poll(lambda: ledger.exists() and ledger.read_text())
    first.kill9()
    disk.fill()
    second = make_daemon(CONFIG, home=disk.root / "home")
    second.log = tmp_path / "second.log"
    client = second.start().client()
    assert client.status("done").state.value == "succeeded"
    go.touch()
    disk.free()
    assert client.result("cut", timeout=30) == 2  # the cut attempt counted
    assert ledger.read_text() == "1\n2\n"
