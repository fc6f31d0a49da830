"""sd_notify: a real daemon tells a Unix datagram socket the test binds (as systemd's
``NOTIFY_SOCKET`` would be) that it is ready once it serves, and that it is stopping."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import struct
import time
from pathlib import Path

import pytest

from asynctask.config import Config
from asynctask.daemon.notify import STOP_GRACE, Notifier, address_of
from tests.deploy.conftest import WrappedDaemon


class NotifySocket:
    """The receiving end: a datagram socket with ``SO_PASSCRED``, so each message comes with
    the sender's pid (systemd's ``NotifyAccess=main`` takes only the main process's)."""

    def __init__(self, address: str | bytes) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(address)

    def receive(self, timeout: float = 30.0) -> tuple[dict[str, str], int]:
        """The next message as fields, and the sender's pid."""
        self.sock.settimeout(timeout)
        data, ancillary, _flags, _addr = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        pid = -1
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("iII", payload[:12])[0]
        lines = data.decode().split("\n")
        return dict(line.split("=", 1) for line in lines), pid

    def until(self, key: str, timeout: float = 30.0) -> tuple[dict[str, str], int, list[dict]]:
        """Messages until one has ``key``; that one, its sender, and all seen before it."""
        deadline = time.monotonic() + timeout
        seen: list[dict[str, str]] = []
        while True:
            fields, pid = self.receive(max(0.1, deadline - time.monotonic()))
            if key in fields:
                return fields, pid, seen
            seen.append(fields)

    def close(self) -> None:
        self.sock.close()


def _ready_then_stopping(daemon: WrappedDaemon, notify: NotifySocket) -> None:
    ready, sender, before = notify.until("READY")
    assert daemon.proc is not None
    assert sender == daemon.proc.pid  # from the main process, not a worker or a probe
    assert ready["READY"] == "1"
    assert ready["STATUS"].startswith(f"serving on {daemon.socket}")
    assert any(m.get("STATUS", "").startswith("starting") for m in before)
    # Ready means serving: a ping right after READY=1 is answered, and tasks are taken.
    info = daemon.client().ping()
    assert info["accepting"] is True
    assert daemon.client().submit("tests.e2e.tasks:add", 2, 3).result(timeout=30) == 5

    daemon.proc.send_signal(signal.SIGTERM)
    stopping, sender, _ = notify.until("STOPPING")
    assert sender == daemon.proc.pid
    drain = Config().daemon.drain
    assert stopping["STOPPING"] == "1"
    assert int(stopping["EXTEND_TIMEOUT_USEC"]) == int((drain + STOP_GRACE) * 1_000_000)
    assert "draining" in stopping["STATUS"]
    assert daemon.proc.wait(30) == 0


def test_ready_and_stopping_reach_a_path_socket(wrapped_daemon, tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    notify = NotifySocket(str(path))
    try:
        daemon = wrapped_daemon(env={"NOTIFY_SOCKET": str(path)})
        _ready_then_stopping(daemon.start(), notify)
    finally:
        notify.close()


def test_ready_and_stopping_reach_an_abstract_socket(wrapped_daemon) -> None:
    """``NOTIFY_SOCKET=@name``: the abstract namespace, as systemd uses for some services."""
    name = f"asynctask-test-{os.getpid()}-{secrets.token_hex(4)}"
    notify = NotifySocket(b"\0" + name.encode())
    try:
        daemon = wrapped_daemon(env={"NOTIFY_SOCKET": f"@{name}"})
        _ready_then_stopping(daemon.start(), notify)
    finally:
        notify.close()


def test_a_stop_with_a_longer_drain_asks_for_more_time(wrapped_daemon, tmp_path: Path) -> None:
    """``asynctask stop --drain 2m``: systemd's TimeoutStopSec would kill it at 60 s, so the
    daemon asks for the drain plus the grace."""
    path = tmp_path / "notify.sock"
    notify = NotifySocket(str(path))
    try:
        daemon = wrapped_daemon(env={"NOTIFY_SOCKET": str(path)}).start()
        notify.until("READY")
        stopped = daemon.cli("stop", "--drain", "2m")
        assert stopped.returncode == 0, stopped.stderr
        stopping, _, _ = notify.until("STOPPING")
        assert int(stopping["EXTEND_TIMEOUT_USEC"]) == int((120 + STOP_GRACE) * 1_000_000)
    finally:
        notify.close()


def test_workers_do_not_see_the_notify_socket(wrapped_daemon, tmp_path: Path) -> None:
    """Only the daemon may speak for the service: the variable is gone before any worker (or
    the isolation probe's interpreters) starts."""
    path = tmp_path / "notify.sock"
    notify = NotifySocket(str(path))
    try:
        daemon = wrapped_daemon(env={"NOTIFY_SOCKET": str(path)}).start()
        notify.until("READY")
        seen = daemon.client().submit("tests.deploy.tasks:environment").result(timeout=30)
        assert "NOTIFY_SOCKET" not in seen
    finally:
        notify.close()


def test_no_notify_socket_sends_nothing() -> None:
    notifier = Notifier(None)
    assert not notifier.enabled
    assert notifier.notify(READY=1) is False


def test_a_send_that_fails_is_not_an_error(tmp_path: Path) -> None:
    """A supervisor that went away must not stop the daemon."""
    notifier = Notifier(str(tmp_path / "nobody-listens"))
    assert notifier.notify(READY=1) is False
    notifier.close()


@pytest.mark.parametrize(
    ("value", "address"),
    [("", None), ("/run/systemd/notify", "/run/systemd/notify"), ("@abstract", b"\0abstract"),
     ("vsock:2:1234", None), ("relative/path", None)],
)  # fmt: skip
def test_the_addresses_it_understands(value: str, address: str | bytes | None) -> None:
    assert address_of(value) == address


def test_a_value_cannot_forge_another_field(tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    notify = NotifySocket(str(path))
    try:
        notifier = Notifier(str(path))
        assert notifier.notify(STATUS="storage lost\nREADY=1")
        fields, _pid = notify.receive(5)
        assert fields == {"STATUS": "storage lost READY=1"}
        notifier.close()
    finally:
        notify.close()


def test_the_variable_is_taken_out_of_the_environment(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "n.sock"))
    notifier = Notifier.from_environment()
    assert notifier.enabled
    assert "NOTIFY_SOCKET" not in os.environ
