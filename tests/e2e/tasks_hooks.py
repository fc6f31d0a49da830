"""A task module that registers worker hooks (``tests/e2e/test_values.py``): each hook appends
to a file named by the task's ``trace`` label, so the test reads the order they ran in."""

from __future__ import annotations

import asyncio
import os

import asynctask

_STARTED: list[int] = []


def _note(ctx: asynctask.TaskContext | None, text: str) -> None:
    path = (ctx or asynctask.current_task()).labels.get("trace")
    if path:
        with open(path, "a") as handle:
            handle.write(text + "\n")


@asynctask.on_worker_start
def setup() -> None:
    _STARTED.append(os.getpid())


@asynctask.before_attempt
def before(ctx: asynctask.TaskContext) -> None:
    _note(ctx, f"before {ctx.attempt} started={len(_STARTED)}")
    if ctx.labels.get("before") == "raise" and ctx.attempt == 1:
        raise ConnectionError("no database on the first attempt")


@asynctask.after_attempt
def after(ctx: asynctask.TaskContext, error: BaseException | None) -> None:
    _note(ctx, f"after {ctx.attempt} {type(error).__name__ if error else 'ok'}")


async def work(n: int) -> int:
    await asyncio.sleep(0)
    _note(None, "task")
    return n * 2
