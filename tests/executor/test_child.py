"""The worker main on its own: started by hand over a socketpair, and orphaned by its daemon."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from asynctask import protocol

from .conftest import REPO, TASKS, alive


class Child:
    """``python -m asynctask.executor.child FD`` with this test holding the other end."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.decoder = protocol.FrameDecoder()
        self.pending: list[dict[str, Any]] = []
        self.declared: list[dict[str, Any]] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "asynctask.executor.child", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            cwd=REPO,
            env={**os.environ, "ASYNCTASK_PARENT_PID": str(os.getpid()), **(env or {})},
            stdin=subprocess.DEVNULL,
        )
        theirs.close()

    def receive(self) -> dict[str, Any]:
        """The next frame but ``declare`` ones, which are kept in ``declared``."""
        while True:
            while not self.pending:
                data = self.sock.recv(65536)
                assert data, "the worker closed its socket"
                self.pending.extend(self.decoder.feed(data))
            message = self.pending.pop(0)
            if message.get("op") != "declare":
                return message
            self.declared.append(message)

    def send(self, message: dict[str, Any]) -> None:
        self.sock.sendall(protocol.encode_frame(message))

    def close(self) -> None:
        self.sock.close()
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


@pytest.fixture
def child() -> Any:
    started = Child()
    yield started
    started.close()


def test_ready_run_and_exit(child: Child) -> None:
    assert child.receive() == {"op": "ready", "pid": child.process.pid}
    child.send(
        {
            "op": "run",
            "aid": 7,
            "func": f"{TASKS}:add",
            "payload": protocol.pack([[1], {"b": 2}]),
            "ctx": {"id": "t", "tenant": "x", "attempt": 1, "labels": {}},
        }
    )
    done = child.receive()
    assert (done["op"], done["aid"], done["ok"]) == ("done", 7, True)
    assert protocol.unpack(done["result"]) == 3
    # before its first attempt, the worker said what the function declares (plain: nothing)
    assert child.declared == [{"op": "declare", "aid": 7, "options": {}}]
    child.send({"op": "exit"})
    assert child.process.wait(10) == 0


def test_eof_exits_cleanly(child: Child) -> None:
    assert child.receive()["op"] == "ready"
    child.sock.shutdown(socket.SHUT_WR)
    assert child.process.wait(10) == 0


def test_configured_paths_come_first_on_sys_path(tmp_path: Path) -> None:
    (tmp_path / "only_in_extra_path.py").write_text("def where():\n    return __file__\n")
    child = Child(env={"ASYNCTASK_PATHS": f"{tmp_path}{os.pathsep}/nonexistent"})
    try:
        child.receive()
        child.send({"op": "run", "aid": 1, "func": "only_in_extra_path:where", "ctx": {},
                    "payload": protocol.pack([[], {}])})  # fmt: skip
        done = child.receive()
        assert protocol.unpack(done["result"]) == str(tmp_path / "only_in_extra_path.py")
    finally:
        child.close()


def test_a_worker_whose_daemon_is_gone_exits() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "asynctask.executor.child", "999"],
        env={**os.environ, "ASYNCTASK_PARENT_PID": "1"},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert result.returncode == 1
    assert "the daemon is gone" in result.stderr


# Both workers are busy sleeping, so they will not notice EOF on their sockets: only
# PR_SET_PDEATHSIG can end them when this "daemon" is killed.
DAEMON = """
import asyncio
from asynctask import protocol
from asynctask.executor.pool import Job, PoolConfig, WorkerPool

async def main():
    pool = WorkerPool(PoolConfig(workers=2), print, lambda: None)
    await pool.start()
    for aid in (1, 2):
        payload = protocol.pack([[60], {}])
        pool.run(Job(aid, "tests.executor.tasks_for_tests:sleep", payload, {}, None))
    await asyncio.sleep(0.2)
    print(*pool.pids, flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


def test_workers_die_with_a_killed_daemon() -> None:
    daemon = subprocess.Popen(
        [sys.executable, "-c", DAEMON], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert daemon.stdout is not None
        workers = [int(pid) for pid in daemon.stdout.readline().split()]
        assert len(workers) == 2
        assert all(alive(pid) for pid in workers)
    finally:
        daemon.send_signal(signal.SIGKILL)
        daemon.wait()
        if daemon.stdout is not None:
            daemon.stdout.close()
    deadline = time.monotonic() + 10
    try:
        while any(alive(pid) for pid in workers):
            assert time.monotonic() < deadline, "workers outlived their daemon"
            time.sleep(0.01)
    finally:
        for pid in workers:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
