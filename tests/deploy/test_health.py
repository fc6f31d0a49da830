"""``asynctask health``: the probe's verdict against a real daemon that serves, drains, is
stopped and hangs; each reason of ``verdict`` on its own."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from asynctask.cli.probe import verdict
from tests.e2e.conftest import ROOT, poll

SERVING = {
    "pid": 42,
    "version": "0.1.0",
    "accepting": True,
    "stopping": False,
    "loading": False,
    "tasks": {"live": 7},
    "storage": {"ok": True, "error": None, "failing_for": None},
}


def test_a_serving_daemon_is_healthy(daemon) -> None:
    began = time.monotonic()
    done = daemon.cli("health")
    took = time.monotonic() - began
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"serving: pid {daemon.proc.pid}, version {_version()}"
    assert done.stderr == ""
    assert took < 10, f"health took {took:.2f}s"  # the process start; the ping is ~1 ms

    as_json = json.loads(daemon.cli("health", "--json").stdout)
    assert (as_json["ok"], as_json["code"]) == (True, 0)
    assert as_json["daemon"]["pid"] == daemon.proc.pid
    assert as_json["daemon"]["accepting"] is True


#: ``asynctask health`` as typer runs it (the command table), not through the console script's
#: fast path (``cli/entry.py`` -> ``cli/probe.py``); and the fast path, saying whether it
#: imported typer.
_TYPER = "import sys; sys.argv[0] = 'asynctask'; from asynctask.cli.main import main; main()"
_FAST = (
    "import atexit, sys; sys.argv[0] = 'asynctask';"
    "atexit.register(lambda: sys.stderr.write(f'typer loaded: {\"typer\" in sys.modules}\\n'));"
    "from asynctask.cli.entry import main; main()"
)


def _python(daemon, code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True,
        timeout=60, check=False, env={**os.environ, "ASYNCTASK_HOME": str(daemon.home)},
    )  # fmt: skip


@pytest.mark.parametrize("args", [["health"], ["health", "--json"], ["health", "--live"]])
def test_the_fast_path_answers_as_the_command_table_does(daemon, args) -> None:
    """The console script runs ``health`` without typer; typer's command is the same."""
    fast = _python(daemon, _FAST, *args)
    typed = _python(daemon, _TYPER, *args)
    assert fast.returncode == typed.returncode == 0, fast.stderr + typed.stderr
    if "--json" in args:  # the same verdict; the daemon's numbers (uptime) move on
        first, second = json.loads(fast.stdout), json.loads(typed.stdout)
        assert first.pop("daemon")["pid"] == second.pop("daemon")["pid"] == daemon.proc.pid
        assert first == second
    else:
        assert fast.stdout == typed.stdout
    assert fast.stderr == "typer loaded: False\n"


def test_a_bad_timeout_is_a_usage_error_either_way(daemon) -> None:
    for code in (_FAST, _TYPER):
        done = _python(daemon, code, "health", "--timeout", "soon")
        assert done.returncode == 2
        assert "--timeout" in done.stderr


def test_no_daemon_is_exit_3_with_one_line(make_daemon) -> None:
    daemon = make_daemon()  # a home, never started
    done = daemon.cli("health")
    assert done.returncode == 3
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith("asynctask: unhealthy: no daemon answering")
    as_json = json.loads(daemon.cli("health", "--json").stdout)
    assert (as_json["ok"], as_json["code"], as_json["daemon"]) == (False, 3, None)
    assert daemon.cli("health", "--live").returncode == 3


def test_a_draining_daemon_is_alive_but_not_ready(daemon, tmp_path: Path) -> None:
    """During a stop's drain the daemon's socket is gone but its process is there: not ready
    (take it out of service), yet alive (do not kill it while attempts finish)."""
    running = daemon.client().submit("tests.e2e.tasks:sleep", 30)
    poll(lambda: running.status().state.value == "running")
    stopped = daemon.cli("stop", "--drain", "30s", "--no-wait")
    assert stopped.returncode == 0, stopped.stderr
    done = daemon.cli("health")
    assert done.returncode == 3
    assert done.stderr.strip() == (
        f"asynctask: unhealthy: the daemon (pid {daemon.proc.pid}) is not answering: "
        "it is starting or stopping"
    )
    live = daemon.cli("health", "--live")
    assert live.returncode == 0, live.stderr
    daemon.proc.send_signal(signal.SIGKILL)  # the drain would wait for the sleep
    daemon.proc.wait(10)
    assert daemon.cli("health", "--live").returncode == 3  # and once it is gone, not alive


def test_a_daemon_that_does_not_answer_fails_the_probe_in_time(daemon) -> None:
    """A stopped (SIGSTOP) daemon accepts the connection in the kernel but never replies: the
    probe ends at --timeout, not when the daemon wakes."""
    daemon.proc.send_signal(signal.SIGSTOP)
    try:
        began = time.monotonic()
        done = daemon.cli("health", "--timeout", "500ms")
        took = time.monotonic() - began
    finally:
        daemon.proc.send_signal(signal.SIGCONT)
    assert done.returncode == 3
    assert "no answer from the daemon within 0.5s" in done.stderr
    assert took < 8, f"the probe took {took:.2f}s"
    assert daemon.cli("health").returncode == 0  # and it serves again


@pytest.mark.parametrize(
    ("change", "code", "reason"),
    [
        ({}, 0, "serving: pid 42, version 0.1.0"),
        ({"stopping": True}, 2, "stopping: the daemon (pid 42) is draining"),
        ({"accepting": False}, 2, "not accepting tasks yet (pid 42)"),
        ({"loading": True}, 2,
         "loading the stored backlog: nothing is dispatched yet, 7 loaded so far"),
        ({"storage": {"ok": False, "error": "disk full\x1b[2J", "failing_for": 12.3}}, 2,
         "storage failing for 12s: disk full\\x1b[2J"),
    ],
)  # fmt: skip
def test_each_reason(change, code, reason) -> None:
    found = verdict({**SERVING, **change})
    assert (found.ok, found.code, found.reason) == (code == 0, code, reason)


@pytest.mark.parametrize("change", [{"stopping": True}, {"loading": True}])
def test_liveness_asks_only_for_an_answer(change) -> None:
    assert verdict({**SERVING, **change}, live=True).ok


def _version() -> str:
    from asynctask import __version__

    return __version__
