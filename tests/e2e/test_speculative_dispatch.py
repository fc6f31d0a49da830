"""Speculative dispatch (docs/contract.md, "Durable submit"): a one-task submit may start while its
insert commits, but the reply, any status and any listing wait for the commit. On a slow disk (the
fault shim delays every fsync), the task's side effect happens before the submit returns, and the
task is not listed until the commit; if the commit fails, the submit is refused and the daemon holds
nothing of the task."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from asynctask.errors import StorageError
from benchmarks.reliability import shim
from tests.e2e.conftest import DaemonProcess, poll

CONFIG = "[workers]\nmin_workers = 1\nmax_workers = 1\n"
#: Every fsync of the daemon's files takes this long: the window in which the task runs.
FSYNC_DELAY_MS = 800


def _on_shim(
    make_daemon: Callable[..., DaemonProcess],
    shim_lib: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[DaemonProcess, Path]:
    home, control = tmp_path / "home", tmp_path / "faults"
    env = shim.shim_env(shim_lib, home, control=control, report=tmp_path / "faults.log")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    daemon = make_daemon(CONFIG, home=home)
    daemon.log = tmp_path / "daemon.log"  # its stderr: not a file the shim delays or fails
    daemon.start()
    warm = daemon.client().submit("tests.e2e.tasks:add", 1, 2)
    assert warm.result(timeout=30) == 3  # a worker is up and idle
    return daemon, control


def test_a_task_runs_while_its_submit_commits_and_shows_only_after_the_commit(
    make_daemon: Callable[..., DaemonProcess],
    shim_lib: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    daemon, control = _on_shim(make_daemon, shim_lib, tmp_path, monkeypatch)
    marker = tmp_path / "ran"
    replied = threading.Event()
    seen: dict[str, object] = {}

    def watch() -> None:
        """Once the task has run: was the submit answered yet, and does a listing show it?"""
        deadline = time.monotonic() + 20
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.005)
        seen["ran_before_reply"] = marker.exists() and not replied.is_set()
        seen["listed"] = [
            s.function for s in daemon.client().list(function="tests.e2e.tasks:touch")
        ]
        seen["replied_after_list"] = not replied.is_set()

    watcher = threading.Thread(target=watch)
    shim.set_faults(control, f"fsync:1:delay{FSYNC_DELAY_MS}:always")
    try:
        watcher.start()
        began = time.monotonic()
        handle = daemon.client().submit("tests.e2e.tasks:touch", str(marker))
        took = time.monotonic() - began
        replied.set()
        watcher.join(30)
    finally:
        shim.set_faults(control, "off")
    assert took >= FSYNC_DELAY_MS / 1000 * 0.9, took  # the reply waited for the commit
    assert seen["ran_before_reply"] is True, seen  # ... while the task had already run
    if seen["replied_after_list"]:  # the listing was answered before the commit
        assert seen["listed"] == [], seen
    assert handle.result(timeout=30) == str(marker)
    assert marker.read_text() == "1\n"  # one attempt, counted as the first
    assert [s.id for s in daemon.client().list(function="tests.e2e.tasks:touch")] == [handle.id]


def test_a_submit_whose_commit_fails_leaves_nothing_in_the_daemon(
    make_daemon: Callable[..., DaemonProcess],
    shim_lib: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    daemon, control = _on_shim(make_daemon, shim_lib, tmp_path, monkeypatch)
    client = daemon.client()
    shim.set_faults(control, "write:1:ENOSPC:always")
    try:
        with pytest.raises(StorageError):
            client.submit("tests.e2e.tasks:nap", 5)
    finally:
        shim.set_faults(control, "off")
    tasks = client.ping()["tasks"]  # let go before the refusal was sent, not later
    assert (tasks["live"], tasks["running"]) == (0, 0), tasks
    poll(lambda: client.ping()["storage"]["ok"], timeout=20)
    began = time.monotonic()
    assert client.submit("tests.e2e.tasks:add", 2, 3).result(timeout=30) == 5
    assert time.monotonic() - began < 4  # the one worker was not left napping for 5 s
