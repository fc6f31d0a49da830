"""Task functions of the containment and environment tests (workers import them from the repo
root, the daemon's working directory, as ``tests.security.tasks_containment``)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import asynctask

#: Run by a program the task starts in a session of its own: it forks the grandchild, which
#: starts yet another session, writes its pid and sleeps; the middle process exits at once, so
#: the grandchild is an orphan - the shape of a daemonising program.
_DOUBLE_FORK = """
import os, sys, time
if os.fork() == 0:
    os.setsid()
    path = sys.argv[1]
    with open(path + ".tmp", "w") as handle:
        handle.write(str(os.getpid()))
    os.rename(path + ".tmp", path)
    time.sleep(600)
os._exit(0)
"""

#: A busy loop for a number of seconds of wall time.
_SPIN = """
import sys, time
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    pass
"""


def leave_grandchild(
    pid_file: str, then_sleep: float = 0.0, then_exit: int | None = None, unreap: bool = False
) -> int:
    """Double-fork a ``setsid`` grandchild that writes its pid to ``pid_file`` and sleeps; then
    sleep ``then_sleep`` seconds and return its pid (or end the worker with ``then_exit``).
    ``unreap`` first turns the worker's child-subreaper flag off, as hostile code could."""
    if unreap:
        import ctypes

        assert ctypes.CDLL(None).prctl(36, 0, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    subprocess.run(
        [sys.executable, "-c", _DOUBLE_FORK, pid_file],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
    )
    path = Path(pid_file)
    deadline = time.monotonic() + 20
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError("the grandchild never wrote its pid")
        time.sleep(0.01)
    if then_exit is not None:
        os._exit(then_exit)
    time.sleep(then_sleep)
    return int(path.read_text())


def busy_children(count: int, seconds: float) -> int:
    """Start ``count`` programs that spin for ``seconds`` of wall time; wait for them all."""
    children = [
        subprocess.Popen([sys.executable, "-c", _SPIN, str(seconds)], stdin=subprocess.DEVNULL)
        for _ in range(count)
    ]
    return sum(child.wait() for child in children)


def environment() -> dict[str, str]:
    return dict(os.environ)


def ping_own_daemon() -> dict[str, object]:
    """What ``asynctask.Client()`` with no arguments reaches from inside a task."""
    client = asynctask.Client(connect_timeout=5)
    try:
        return {"pid": client.ping()["pid"], "socket": str(client.socket_path)}
    finally:
        client.close()
