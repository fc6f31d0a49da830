"""kill -9, SIGTERM and dying workers: nothing acknowledged is lost."""

from __future__ import annotations

import os
from pathlib import Path

from tests.e2e.conftest import DaemonProcess, poll

ONE_WORKER = '[workers]\nmin_workers = 1\nmax_workers = 1\n[retry]\nbackoff_base = "10ms"\n'


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    return state != "Z"


def test_kill9_after_ack_then_restart_runs_the_task(make_daemon, tmp_path: Path) -> None:
    daemon = make_daemon(ONE_WORKER).start()
    client = daemon.client()
    blocker_marker = tmp_path / "blocker.pid"
    client.submit("tests.e2e.tasks:sleep_first_attempt", 60, str(blocker_marker))
    poll(blocker_marker.exists)
    marker = tmp_path / "runs"
    queued = client.submit("tests.e2e.tasks:touch", str(marker))
    delayed = client.submit("tests.e2e.tasks:touch", str(marker), delay=0.5)
    daemon.kill9()
    assert not marker.exists()
    daemon.start()
    client = daemon.client()
    assert client.wait(queued.id, timeout=30).state.value == "succeeded"
    assert client.wait(delayed.id, timeout=30).state.value == "succeeded"
    assert marker.read_text() == "1\n1\n"


def test_kill9_while_running_counts_the_attempt(make_daemon, tmp_path: Path) -> None:
    daemon = make_daemon(ONE_WORKER).start()
    marker = tmp_path / "worker.pid"
    handle = daemon.client().submit("tests.e2e.tasks:sleep_first_attempt", 60, str(marker))
    poll(marker.exists)
    poll(lambda: daemon.client().status(handle.id).state.value == "running")
    worker = int(marker.read_text())
    daemon.kill9()
    poll(lambda: not _alive(worker), timeout=10)  # the worker died with its daemon
    daemon.start()
    final = daemon.client().wait(handle.id, timeout=30)
    assert final.state.value == "succeeded"
    assert final.attempts == 2
    assert final.result == 2


def test_worker_that_kills_itself_is_replaced_and_the_task_retried(daemon: DaemonProcess) -> None:
    client = daemon.client()
    final = client.submit("tests.e2e.tasks:die_first_attempt").wait(timeout=30)
    assert final.state.value == "succeeded"
    assert final.attempts == 2
    assert client.submit("tests.e2e.tasks:add", 1, 2).result(timeout=20) == 3


def test_sigterm_drains_running_attempts(make_daemon, tmp_path: Path) -> None:
    daemon = make_daemon('[daemon]\ndrain = "20s"\n').start()
    handle = daemon.client().submit("tests.e2e.tasks:sleep", 1.0)
    poll(lambda: daemon.client().status(handle.id).state.value == "running")
    assert daemon.stop() == 0
    assert not (daemon.home / "asynctask.sock").exists()
    daemon.start()
    final = daemon.client().status(handle.id)
    assert (final.state.value, final.attempts, final.result) == ("succeeded", 1, 1.0)


def test_sigterm_requeues_what_does_not_finish_in_time(make_daemon, tmp_path: Path) -> None:
    daemon = make_daemon('[daemon]\ndrain = "200ms"\n').start()
    marker = tmp_path / "pid"
    handle = daemon.client().submit("tests.e2e.tasks:sleep_first_attempt", 60, str(marker))
    poll(marker.exists)
    assert daemon.stop() == 0
    assert not _alive(int(marker.read_text()))
    daemon.start()
    final = daemon.client().wait(handle.id, timeout=30)
    assert (final.state.value, final.attempts) == ("succeeded", 2)


def test_second_daemon_on_the_same_home_is_refused(daemon: DaemonProcess) -> None:
    result = daemon.cli("daemon")
    assert result.returncode == 2
    assert "another daemon is already running" in result.stderr
    assert daemon.client().ping()["pid"] == daemon.proc.pid
