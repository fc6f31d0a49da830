"""Task functions whose module registers worker hooks (``tests/executor/test_hooks.py``).

Only the hook tests' workers import it: a worker that did would run these hooks around every
later attempt. Each hook appends to ``EVENTS`` in the worker process, and ``events()`` hands
the list back; a task's labels tell the hooks to misbehave.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import asynctask

EVENTS: list[Any] = []


@asynctask.on_worker_start
def started() -> None:
    EVENTS.append("start")


@asynctask.before_attempt
def before(ctx: asynctask.TaskContext) -> None:
    EVENTS.append(["before", ctx.id, ctx.attempt, threading.get_ident()])
    # current_task() works in a hook as in the task.
    assert asynctask.current_task() is ctx
    action = ctx.labels.get("before")
    if action == "raise":
        raise RuntimeError("no database")
    if action == "fail":
        raise asynctask.Fail("never with these labels")
    if action == "throttle":
        raise asynctask.Throttled("later", retry_after=3)


@asynctask.after_attempt
def after(ctx: asynctask.TaskContext, error: BaseException | None) -> None:
    EVENTS.append(["after", ctx.id, None if error is None else type(error).__name__])
    if ctx.labels.get("after") == "raise":
        raise KeyError("cleanup broke")


@asynctask.after_attempt
def after_second(ctx: asynctask.TaskContext, error: BaseException | None) -> None:
    EVENTS.append(["after_second", ctx.id])


def add(a: int, b: int) -> int:
    EVENTS.append(["task", threading.get_ident()])
    return a + b


async def async_add(a: int, b: int) -> int:
    await asyncio.sleep(0)
    EVENTS.append(["task", threading.get_ident()])
    return a + b


def boom() -> None:
    raise ValueError("boom")


def unencodable() -> object:
    return object()


def events() -> list[Any]:
    """The events so far (this call's own 'before' included), then a fresh list."""
    seen = list(EVENTS)
    EVENTS.clear()
    return seen
