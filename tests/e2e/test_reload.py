"""SIGHUP and ``asynctask reload`` re-read the config file: live keys take effect, other changed
keys are logged as needing a restart, and a broken file changes nothing (docs/contract.md,
"Robustness")."""

from __future__ import annotations

import json
import signal

import pytest

from asynctask.errors import SubmitThrottled
from tests.e2e.conftest import DaemonProcess, poll

CONFIG = "[workers]\nmin_workers = 1\nmax_workers = 2\n[tenants.default]\nmax_backlog = 2\n"


def _hup_and_wait(daemon: DaemonProcess, text: str) -> str:
    """SIGHUP, then the log written since, once it holds ``text``."""
    seen = len(daemon.log.read_text())
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGHUP)
    return poll(lambda: text in daemon.log.read_text()[seen:] and daemon.log.read_text()[seen:])


def _fill(daemon: DaemonProcess, count: int) -> None:
    client = daemon.client()
    for n in range(count):
        client.submit("tests.e2e.tasks:add", n, 1, delay=3600)


def test_sighup_applies_a_changed_live_key(make_daemon) -> None:
    daemon = make_daemon(CONFIG).start()
    _fill(daemon, 2)
    with pytest.raises(SubmitThrottled):
        daemon.client().submit("tests.e2e.tasks:add", 9, 1, delay=3600)
    (daemon.home / "asynctask.toml").write_text(
        CONFIG.replace("max_backlog = 2", "max_backlog = 4")
    )
    log = _hup_and_wait(daemon, "applied")
    assert "applied tenants.default.max_backlog" in log, log
    assert "needs a restart" not in log
    _fill(daemon, 2)  # room for two more now
    with pytest.raises(SubmitThrottled):
        daemon.client().submit("tests.e2e.tasks:add", 9, 1, delay=3600)
    (daemon.home / "asynctask.toml").write_text(
        CONFIG.replace("max_backlog = 2", "max_backlog = 9")
    )
    reloaded = daemon.cli("reload", "--json")  # the command reports the same summary
    assert reloaded.returncode == 0, reloaded.stderr
    reply = json.loads(reloaded.stdout)
    assert reply["applied"] == ["tenants.default.max_backlog"]
    assert reply["restart"] == []
    assert reply["error"] is None
    daemon.client().submit("tests.e2e.tasks:add", 9, 1, delay=3600)
    assert daemon.stop() == 0


def test_a_restart_only_key_is_logged_and_keeps_its_old_value(make_daemon) -> None:
    daemon = make_daemon(CONFIG).start()
    edited = (
        CONFIG.replace("max_workers = 2", "max_workers = 3") + '[daemon]\ndurability = "normal"\n'
    )
    (daemon.home / "asynctask.toml").write_text(edited)
    log = _hup_and_wait(daemon, "needs a restart")
    line = next(line for line in log.splitlines() if "needs a restart" in line)
    assert "daemon.durability" in line
    assert "workers.max_workers" in line
    assert daemon.client().ping()["accepting"]
    text = daemon.cli("reload")
    assert text.returncode == 0, text.stderr
    assert "needs a restart: daemon.durability, workers.max_workers" in text.stdout
    assert daemon.client().submit("tests.e2e.tasks:add", 1, 2).wait(timeout=30).result == 3
    assert daemon.stop() == 0


def test_a_broken_file_keeps_the_daemon_and_its_config(make_daemon) -> None:
    daemon = make_daemon(CONFIG).start()
    _fill(daemon, 2)
    (daemon.home / "asynctask.toml").write_text("[tenants.default]\nmax_backlog = [[[\n")
    log = _hup_and_wait(daemon, "not applied")
    assert "not valid TOML" in log, log
    assert daemon.proc is not None
    assert daemon.proc.poll() is None
    assert daemon.client().ping()["accepting"]
    with pytest.raises(SubmitThrottled):  # the old max_backlog still holds
        daemon.client().submit("tests.e2e.tasks:add", 9, 1, delay=3600)
    (daemon.home / "asynctask.toml").write_text("[tenants.default]\nmax_backlog = -1\n")
    reloaded = daemon.cli("reload")
    assert reloaded.returncode == 2
    assert "config not applied" in reloaded.stderr
    assert "tenants.default.max_backlog" in reloaded.stderr
    assert daemon.proc.poll() is None
    assert daemon.client().ping()["accepting"]
    assert daemon.stop() == 0
