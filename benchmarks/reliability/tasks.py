"""Task functions of the reliability battery (workers import them as benchmarks.reliability.tasks).

Each execution appends to a side-effect ledger outside the daemon's home (the workers' sandbox
hides the home but leaves /tmp writable): a ``start`` line when it begins and an ``end`` line
when it returns, each one ``write`` on an O_APPEND file, so lines from concurrent workers never
interleave. The harness reads the ledger to count executions per task ID.
"""

from __future__ import annotations

import os
import time

import asynctask


def _append(ledger: str, event: str) -> None:
    task = asynctask.current_task()
    line = f"{event} {task.id} {task.attempt} {os.getpid()} {time.time():.6f}\n"
    fd = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def ledger(path: str, seconds: float) -> None:
    """A side effect that takes ``seconds``: ``start`` line, sleep, ``end`` line."""
    _append(path, "start")
    time.sleep(seconds)
    _append(path, "end")


def mixed(path: str, kind: str, seconds: float) -> None:
    """The soak's load: ``ok`` sleeps ``seconds``; ``raise`` raises (retried as its retries
    allow); ``hang`` sleeps past any sane timeout; ``exit`` kills its worker with os._exit."""
    _append(path, "start")
    if kind == "raise":
        raise RuntimeError("a task that raises, on purpose")
    if kind == "hang":
        time.sleep(3600)
    if kind == "exit":
        os._exit(7)
    time.sleep(seconds)
    _append(path, "end")
