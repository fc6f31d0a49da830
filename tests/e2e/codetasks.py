"""Decorated task functions for ``test_code_options.py``: their ``@asynctask.task`` options
must hold however they are submitted (workers import them as ``tests.e2e.codetasks``)."""

from __future__ import annotations

import time

import asynctask


@asynctask.task(retries=0, timeout="1s")
def strict_sleep(seconds: float) -> str:
    """Sleeps past its own timeout: with its options, it times out once and is not retried."""
    time.sleep(seconds)
    return "woke"


@asynctask.task(queue="reports", priority=8, retries=1, ttl="1h")
def report(n: int) -> int:
    return n * 2


@asynctask.task(retries=0)
def tamper() -> str:
    """A hostile tenant's task: it rewrites what ``report`` declares in its own worker, so
    that worker reports bad options for ``report`` (bad values) and others (a queue)."""
    report.__asynctask_defaults__ = {"queue": "hijacked", "priority": 0, "retries": 7}  # type: ignore[attr-defined]
    strict_sleep.__asynctask_defaults__ = {"timeout": -5, "retries": "many"}  # type: ignore[attr-defined]
    return "done"


@asynctask.task(retries=1, memory="64M", retry_limit_kills=True)
def hungry_retried() -> int:
    """Goes over its memory limit; opted in to retrying limit kills, so it gets its retry."""
    return len(bytearray(512 << 20))


@asynctask.task(retries=1, memory="64M")
def hungry() -> int:
    """Goes over its memory limit; a limit kill ends it at once, whatever its retries."""
    return len(bytearray(512 << 20))
