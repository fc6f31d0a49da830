"""Task functions for tests/security/test_sandbox_outcomes.py: each tries one attack from inside
a worker and says what happened ("succeeded", or "denied: <exception>") instead of raising, so a
test can assert the attack failed and show how."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

_PTRACE_ATTACH = 16
_PTRACE_DETACH = 17


def _attempt(action: Callable[[], Any]) -> str:
    try:
        action()
    except Exception as exc:
        return f"denied: {type(exc).__name__}: {exc}"
    return "succeeded"


def open_read_write(path: str) -> str:
    def action() -> None:
        with open(path, "r+b") as handle:
            handle.read(16)

    return _attempt(action)


def read_environ(pid: int) -> str:
    return _attempt(lambda: Path(f"/proc/{pid}/environ").read_bytes())


def send_signal(pid: int, signum: int) -> str:
    return _attempt(lambda: os.kill(pid, signum))


def ptrace_attach(pid: int) -> str:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.restype = ctypes.c_long
    args = (ctypes.c_long(pid), ctypes.c_void_p(0), ctypes.c_void_p(0))
    if libc.ptrace(ctypes.c_long(_PTRACE_ATTACH), *args) == 0:
        libc.ptrace(ctypes.c_long(_PTRACE_DETACH), *args)
        return "succeeded"
    return f"denied: {os.strerror(ctypes.get_errno())}"


def read_memory(pid: int) -> str:
    return _attempt(lambda: Path(f"/proc/{pid}/mem").open("rb").close())


def create_file(path: str) -> str:
    def action() -> None:
        with open(path, "x") as handle:
            handle.write("written by a task\n")

    return _attempt(action)


def write_cgroup_procs() -> dict[str, str]:
    """Move this worker into the top group of every cgroup hierarchy (the escape from its
    memory and pids limits): what each write did."""
    found: dict[str, str] = {}
    for procs in sorted(Path("/sys/fs/cgroup").glob("*/cgroup.procs")) + sorted(
        Path("/sys/fs/cgroup").glob("cgroup.procs")
    ):

        def action(procs: Path = procs) -> None:
            with procs.open("w") as handle:
                handle.write(str(os.getpid()))

        found[str(procs)] = _attempt(action)
    return found


def connect_tcp(port: int) -> str:
    def action() -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass

    return _attempt(action)


def connect_unix(path: str) -> str:
    def action() -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(path)

    return _attempt(action)


def write_and_read(path: str, text: str) -> str:
    Path(path).write_text(text)
    return Path(path).read_text()


def wait_for(path: str, seconds: float = 60.0) -> str:
    """Block (in a function whose name shows on the stack) until ``path`` exists."""
    deadline = time.monotonic() + seconds
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return "gave up"
        time.sleep(0.02)
    return "released"


def kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def read_own_status() -> str:
    return Path("/proc/self/status").read_text()


def read_own_cgroups() -> str:
    return Path("/proc/self/cgroup").read_text()


def escape_and_sleep(namespace_file: str, seconds: float) -> None:
    """A double-forked, setsid grandchild that outlives its parent, then sleep: the worker's
    process group kill misses the grandchild; its pid namespace does not."""
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            time.sleep(seconds)
        os._exit(0)
    Path(namespace_file).write_text(os.readlink("/proc/self/ns/pid"))
    time.sleep(seconds)


def forge_ready(pid: int) -> str:
    """Write a ``ready`` frame naming ``pid`` on the worker's frame socket, as if the worker
    process were that one."""
    import sys

    from asynctask import protocol

    with socket.socket(fileno=os.dup(int(sys.argv[1]))) as frames:
        frames.sendall(protocol.encode_frame({"op": "ready", "pid": pid}))
    return "sent"
