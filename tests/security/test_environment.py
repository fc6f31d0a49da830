"""A clean environment: workers get a minimal environment plus what the configuration names,
never the daemon's whole one; and they are told their daemon's socket.

Attacks from issue 13: "Tasks inherit the daemon's whole environment" and "Tasks started as
clients reach the wrong daemon".
"""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from asynctask.client import Client
from asynctask.config import parse_config
from asynctask.errors import ConfigError, DaemonUnavailable
from tests.e2e.conftest import ROOT, make_daemon, poll

__all__ = ["make_daemon"]  # the fixture, shared with tests/e2e

TASKS = "tests.security.tasks_containment"
SECRET = "ASYNCTASK_TEST_SECRET"


def test_a_task_does_not_see_the_daemons_secrets(
    make_daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET, "hunter2")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "also-a-secret")
    monkeypatch.setenv("LANG", "C.UTF-8")
    monkeypatch.setenv("TZ", "Europe/Paris")
    daemon = make_daemon().start()
    env = daemon.client().submit(f"{TASKS}:environment").result(timeout=30)
    assert SECRET not in env
    assert "AWS_SECRET_ACCESS_KEY" not in env
    assert "hunter2" not in repr(env)
    assert env["PATH"] == os.environ["PATH"]
    assert env["LANG"] == "C.UTF-8"
    assert env["TZ"] == "Europe/Paris"
    assert env["HOME"] == pwd.getpwuid(os.getuid()).pw_dir
    assert env["ASYNCTASK_SOCKET"] == str(daemon.socket)
    # Nothing but the minimal set and asynctask's own variables.
    extra = {name for name in env if not name.startswith("ASYNCTASK_")}
    assert extra <= {"PATH", "LANG", "TZ", "HOME", "PYTHONPATH"}, extra


def test_env_pass_and_workers_env_add_to_the_minimal_set(
    make_daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET, "hunter2")
    monkeypatch.setenv("AT_TEST_PASSED", "from the daemon")
    monkeypatch.delenv("AT_TEST_UNSET", raising=False)
    daemon = make_daemon(
        "[workers]\n"
        'env_pass = ["AT_TEST_PASSED", "AT_TEST_UNSET"]\n'
        "[workers.env]\n"
        'AT_TEST_GREETING = "hello"\n'
        'LANG = "en_US.UTF-8"\n'
    ).start()
    env = daemon.client().submit(f"{TASKS}:environment").result(timeout=30)
    assert env["AT_TEST_PASSED"] == "from the daemon"
    assert "AT_TEST_UNSET" not in env  # named but not set in the daemon: left out
    assert env["AT_TEST_GREETING"] == "hello"
    assert env["LANG"] == "en_US.UTF-8"  # [workers.env] wins over the default
    assert SECRET not in env


@pytest.mark.parametrize(
    ("config", "says"),
    [
        ('env_pass = ["1BAD"]', "not a valid environment variable name"),
        ('env_pass = ["A=B"]', "not a valid environment variable name"),
        ('env_pass = ["ASYNCTASK_PARENT_PID"]', "reserved"),
        ('env_pass = "PATH"', "expected a list"),
        ('[workers.env]\nASYNCTASK_SOCKET = "/tmp/x"', "reserved"),
        ('[workers.env]\n"BAD NAME" = "x"', "not a valid environment variable name"),
        ("[workers.env]\nCOUNT = 3", "must be a string"),
        ('[workers.env]\nNUL = "a\\u0000b"', "NUL"),
    ],
)
def test_bad_environment_configuration_is_refused(config: str, says: str) -> None:
    import tomllib

    text = config if config.startswith("[") else f"[workers]\n{config}"
    with pytest.raises(ConfigError, match=says):
        parse_config(tomllib.loads(text))


@pytest.fixture
def daemon_on_own_socket(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """A daemon with a non-default ``--home`` and ``--socket``, started with neither
    ``ASYNCTASK_HOME`` nor ``ASYNCTASK_SOCKET`` in its environment."""
    home = tmp_path / "elsewhere"
    sock = tmp_path / "own.sock"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASYNCTASK_")}
    env["PYTHONPATH"] = str(ROOT)
    env["HOME"] = str(tmp_path / "user")  # the default home would be under here: none there
    log = open(tmp_path / "daemon.log", "ab")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "asynctask", "daemon", "--home", str(home), "--socket", str(sock)],
        cwd=ROOT,
        stdout=log,
        stderr=log,
        env=env,
    )

    def answers() -> bool:
        assert proc.poll() is None, (tmp_path / "daemon.log").read_text()
        try:
            return bool(Client(sock, connect_timeout=0.5).ping()["accepting"])
        except DaemonUnavailable:
            return False

    try:
        poll(answers, timeout=30)
        yield proc, sock
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        log.close()


def test_a_task_calling_client_reaches_its_own_daemon(
    daemon_on_own_socket: tuple[subprocess.Popen[bytes], Path],
) -> None:
    proc, sock = daemon_on_own_socket
    with Client(sock) as client:
        seen = client.submit(f"{TASKS}:ping_own_daemon", retries=0).result(timeout=30)
    assert seen == {"pid": proc.pid, "socket": str(sock)}


def test_the_minimal_environment_is_built_from_named_parts_only() -> None:
    from asynctask.executor.workerenv import SAFE_PATH, minimal_environment

    daemon_env = {"PATH": "/opt/py/bin:/usr/bin", "TOKEN": "s3cret", "LC_ALL": "C", "TZ": "UTC"}
    env = minimal_environment(
        daemon_env,
        user="nobody",
        socket_path="/run/at.sock",
        passed=("LC_ALL", "MISSING"),
        extra={"LANG": "de_DE.UTF-8", "EXTRA": "1"},
    )
    assert env == {
        "PATH": "/opt/py/bin:/usr/bin",
        "LANG": "de_DE.UTF-8",
        "TZ": "UTC",
        "HOME": pwd.getpwnam("nobody").pw_dir,
        "ASYNCTASK_SOCKET": "/run/at.sock",
        "LC_ALL": "C",
        "EXTRA": "1",
    }
    bare = minimal_environment({}, user=None, socket_path=None)
    assert bare == {"PATH": SAFE_PATH, "LANG": "C.UTF-8", "HOME": pwd.getpwuid(os.getuid()).pw_dir}
