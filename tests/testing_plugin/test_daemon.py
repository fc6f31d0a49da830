"""``asynctask.testing.daemon``: a real daemon in a temporary home, started, used, stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from asynctask.errors import DaemonUnavailable
from asynctask.executor.cgroups import detect_cgroups, sweep_stale
from asynctask.testing.daemon import DaemonProcess, DaemonProcessError, run_daemon


def test_run_daemon_serves_tasks_from_cwd_and_cleans_up(tmp_path: Path) -> None:
    (tmp_path / "jobs_here.py").write_text("def double(x):\n    return 2 * x\n")

    with run_daemon(cwd=tmp_path) as daemon:
        home, socket = daemon.home, daemon.socket
        assert oct(home.stat().st_mode & 0o777) == "0o700"
        with daemon.client() as client:
            assert client.submit("jobs_here:double", 21).result(timeout=20) == 42
        # the environment it hands out reaches it from a subprocess's `asynctask` command
        pinged = subprocess.run(
            [sys.executable, "-m", "asynctask", "ping"],
            env={**os.environ, **daemon.env},
            capture_output=True,
            timeout=60,
        )
        assert pinged.returncode == 0, pinged.stderr
        pid = daemon.pid

    assert daemon.proc is not None
    assert daemon.proc.returncode == 0
    assert not home.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(DaemonUnavailable), DaemonProcess(home).client() as client:
        client.ping()
    assert not socket.exists()


async def test_the_async_client_reaches_it(tmp_path: Path) -> None:
    (tmp_path / "jobs_async.py").write_text("async def echo(x):\n    return x\n")
    with run_daemon(cwd=tmp_path) as daemon:
        async with daemon.async_client() as client:
            handle = await client.submit("jobs_async:echo", "hi")
            assert await handle.result(timeout=20) == "hi"


def test_a_daemon_that_cannot_start_fails_with_its_log(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with (
        pytest.raises(DaemonProcessError) as failed,
        run_daemon(home, config="[workers]\nbogus = 1\n"),
    ):
        pass  # pragma: no cover - never reached
    message = str(failed.value)
    assert "exited at start-up" in message
    assert "bogus" in message  # the daemon's own words, from its log
    assert home.exists()  # a home that was given is left for the reader


def test_a_given_home_is_kept_and_a_second_start_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "kept"
    with run_daemon(home) as daemon:
        with pytest.raises(DaemonProcessError, match="started already"):
            daemon.start()
        assert "pid" in repr(daemon)
    assert (home / "daemon-output.log").exists()


def test_a_daemon_that_dies_during_the_test_fails_it(tmp_path: Path) -> None:
    """A test whose input killed the daemon must not pass quietly."""

    def killing_test() -> None:
        with run_daemon(tmp_path / "home") as daemon:
            os.kill(daemon.pid, signal.SIGKILL)
            assert daemon.proc is not None
            daemon.proc.wait(10)

    with pytest.raises(DaemonProcessError) as failed:
        killing_test()
    sweep_stale(detect_cgroups())  # the worker groups the kill -9 left behind
    assert "died during the test" in str(failed.value)
    assert "serving on" in str(failed.value)  # its log's end is in the message


def test_a_daemon_that_does_not_stop_in_time_is_killed_and_says_so(tmp_path: Path) -> None:
    """A running attempt holds the stop for up to ``drain``: past the deadline, the error."""
    (tmp_path / "jobs_slow.py").write_text("import time\n\ndef nap():\n    time.sleep(60)\n")
    daemon = DaemonProcess(tmp_path / "home", config='[daemon]\ndrain = "1m"\n', cwd=tmp_path)
    daemon.start()
    with daemon.client() as client:
        handle = client.submit("jobs_slow:nap")
        poll_until(lambda: client.status(handle.id).state.value == "running")

    with pytest.raises(DaemonProcessError, match="did not stop within 1s") as failed:
        daemon.stop(timeout=1)

    assert "--- its threads ---" in str(failed.value)
    assert daemon.proc is not None
    assert daemon.proc.returncode == -signal.SIGKILL
    sweep_stale(detect_cgroups())  # the worker groups the kill left behind


def poll_until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not true within {timeout}s"
        time.sleep(0.05)
