"""The command line's rough edges (issue 14): `stop` that returns once the daemon is gone, a
shutdown with the metrics listener, SIGHUP and `reload`, and validation that names the
problem with exit code 2."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from asynctask.client import Client
from asynctask.errors import DaemonUnavailable, UsageError

from .conftest import DaemonProcess, poll

TASKS = "tests.e2e.tasks"
HOLD = "tests.security.tasks_clients:wait_for"  # runs until a file exists

MakeDaemon = Callable[..., DaemonProcess]


# -- stop ---------------------------------------------------------------------------------------


def test_stop_returns_only_once_the_daemon_has_exited(make_daemon: MakeDaemon) -> None:
    daemon = make_daemon().start()
    assert daemon.proc is not None
    for _ in range(2):  # `stop && daemon` works: the second start finds the home free
        handle = daemon.client().submit(f"{TASKS}:sleep", 1.0)  # the drain waits for it
        poll(lambda handle=handle: handle.status().state.value == "running")
        done = daemon.cli("stop")
        assert (done.returncode, done.stderr) == (0, "")
        assert done.stdout.splitlines()[-1] == "stopped"
        assert daemon.proc.poll() is not None, "stop returned while the daemon still ran"
        assert daemon.proc.returncode == 0
        assert not (daemon.home / "daemon.pid").exists()
        daemon.start()
        assert daemon.client().status(handle.id).state.value == "succeeded"


def test_ping_says_the_daemon_is_stopping(make_daemon: MakeDaemon, tmp_path: Path) -> None:
    daemon = make_daemon().start()
    release = tmp_path / "release"
    handle = daemon.client().submit(HOLD, str(release))
    poll(lambda: handle.status().state.value == "running")
    stopping = daemon.cli("stop", "--no-wait", "--drain", "60s")
    assert stopping.returncode == 0, stopping.stderr
    pinged = poll(lambda: (p := daemon.cli("ping")).returncode != 0 and p)
    assert pinged.returncode == 3
    assert "stopping" in pinged.stderr, pinged.stderr
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGHUP)  # while it drains: logged, never fatal
    poll(lambda: "SIGHUP: replacing 0 worker(s)" in daemon.log.read_text())
    release.touch()
    assert daemon.proc.wait(30) == 0  # not SIGTERM again: during the drain it would kill


def test_stop_with_metrics_http_never_ends_in_a_traceback(
    make_daemon: MakeDaemon, tmp_path: Path
) -> None:
    daemon = make_daemon('[metrics]\nhttp = "127.0.0.1:0"\n')
    for run in range(4):
        daemon.start()
        release = tmp_path / f"release-{run}"
        handle = daemon.client().submit(HOLD, str(release))
        poll(lambda handle=handle: handle.status().state.value == "running")
        watcher = daemon.client()  # connected before the stop: answered while it drains
        assert watcher.ping()["metrics_url"]
        assert daemon.client().stop(drain=60)["stopping"]
        answers = []
        while True:  # a ping while the listener closes once raised IndexError in the daemon
            try:
                answers.append(watcher.ping())
            except DaemonUnavailable:
                break
            if len(answers) == 20:
                release.touch()
        assert answers, "no ping was answered while the daemon stopped"
        assert answers[0]["stopping"] is True
        assert all(a["metrics_url"] == answers[0]["metrics_url"] for a in answers)
        release.touch()
        assert daemon.proc is not None
        assert daemon.proc.wait(30) == 0
    log = daemon.log.read_text()
    assert "Traceback" not in log, log
    assert "IndexError" not in log, log


# -- SIGHUP and reload -------------------------------------------------------------------------


def _code_daemon(make_daemon: MakeDaemon, tmp_path: Path) -> tuple[DaemonProcess, Path]:
    code = tmp_path / "code"
    code.mkdir()
    module = code / "edited_e2e.py"
    module.write_text("def version():\n    return 1\n")
    config = f'[workers]\nmin_workers = 1\nmax_workers = 1\npaths = ["{code}"]\n'
    return make_daemon(config).start(), module


def _edit(module: Path) -> None:
    # Longer than before, so a stale .pyc (same size, same second) cannot be taken for it.
    module.write_text("def version():\n    return 2\n\ndef added():\n    return 'added'\n")


def test_sighup_keeps_the_daemon_and_reloads_the_workers(
    make_daemon: MakeDaemon, tmp_path: Path
) -> None:
    daemon, module = _code_daemon(make_daemon, tmp_path)
    client = daemon.client()
    assert client.submit("edited_e2e:version").result(timeout=30) == 1
    _edit(module)
    assert client.submit("edited_e2e:version").result(timeout=30) == 1  # still the old module
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGHUP)
    poll(lambda: "SIGHUP: replacing" in daemon.log.read_text())
    assert daemon.proc.poll() is None
    assert client.ping()["accepting"]
    assert client.submit("edited_e2e:version").result(timeout=30) == 2
    assert client.submit("edited_e2e:added").result(timeout=30) == "added"
    assert daemon.stop() == 0


def test_reload_command_picks_up_edited_code(make_daemon: MakeDaemon, tmp_path: Path) -> None:
    daemon, module = _code_daemon(make_daemon, tmp_path)
    client = daemon.client()
    assert client.submit("edited_e2e:version").result(timeout=30) == 1
    _edit(module)
    reloaded = daemon.cli("reload", "--json")
    assert reloaded.returncode == 0, reloaded.stderr
    assert json.loads(reloaded.stdout)["workers"] == 1
    assert client.submit("edited_e2e:version").result(timeout=30) == 2
    assert client.submit("edited_e2e:added").result(timeout=30) == "added"
    assert "reload" in daemon.cli("--help").stdout


# -- validation and messages ------------------------------------------------------------------


def test_cancel_of_an_unknown_id_is_not_found(daemon: DaemonProcess) -> None:
    done = daemon.cli("cancel", "NO-SUCH-ID")
    assert done.returncode == 2, done
    assert "no task 'NO-SUCH-ID'" in done.stderr
    assert daemon.cli("status", "NO-SUCH-ID").stderr == done.stderr  # as every ID command
    finished = daemon.client().submit(f"{TASKS}:add", 1, 2)
    finished.result(timeout=30)
    known = daemon.cli("cancel", finished.id)  # known, but over: nothing to cancel
    assert (known.returncode, known.stdout.strip()) == (0, "cancelled 0 tasks")


def test_delay_and_at_together_are_refused(daemon: DaemonProcess) -> None:
    done = daemon.cli(
        "submit", f"{TASKS}:add", "[1, 2]", "--delay", "1h", "--at", "2030-01-01T00:00:00Z"
    )
    assert done.returncode == 2, done
    assert "give --delay or --at, not both" in done.stderr
    assert daemon.client().list() == []


def test_arguments_over_the_frame_limit_are_too_large(daemon: DaemonProcess) -> None:
    # The command line cannot carry 16 MiB in argv (and --from-file checks each line first):
    # the client library is where such a request reached the socket.
    client = Client(daemon.socket)
    client.ping()
    with pytest.raises(UsageError, match="too large") as refused:
        client.submit(f"{TASKS}:echo", "x" * (17 * 1024 * 1024))
    assert refused.value.exit_code == 2
    assert "16,777,216" in refused.value.message  # names the limit
    assert client.ping()["accepting"]  # refused before sending: the connection is fine
    assert daemon.client().list() == []


def test_metrics_help_names_the_real_key(daemon: DaemonProcess) -> None:
    text = daemon.cli("metrics", "--help").stdout
    assert "[metrics] http" in text
    assert "[metrics] listen" not in text


def test_an_unwritable_home_is_one_line_and_exit_2(make_daemon: MakeDaemon) -> None:
    daemon = make_daemon()
    (daemon.home / "daemon.pid").mkdir()  # a file the daemon must write, and cannot
    done = daemon.cli("daemon", "--home", str(daemon.home), timeout=60)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("asynctask: ")
    assert "daemon.pid" in done.stderr


# -- a failed task's error where a user looks --------------------------------------------------


def test_status_shows_the_traceback_and_list_an_error_column(daemon: DaemonProcess) -> None:
    handle = daemon.client().submit(f"{TASKS}:boom", "bad\x1b[31m", retries=0)
    handle.wait(timeout=30)
    shown = daemon.cli("status", handle.id)
    assert shown.returncode == 0, shown.stderr
    assert "in boom" in shown.stdout  # a frame of the traceback, not only its last line
    assert "ValueError: bad\\x1b[31m" in shown.stdout  # escaped for the terminal
    assert "\x1b" not in shown.stdout
    listed = daemon.cli("list", "--state", "failed")
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()[:2]
    assert header.split()[-1] == "ERROR"
    assert row.startswith(handle.id)
    assert "ValueError: bad" in row
