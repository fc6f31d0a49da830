"""What a running task may know about itself: ``current_task()``.

The worker child sets ``CURRENT`` around each call of a task function, so task code (and the
libraries it calls) can ask for its own ID, tenant, attempt number and labels without the
daemon having to pass them as arguments - the function's signature stays the user's.

A ``contextvars.ContextVar`` rather than a module global, because an async task's ``asyncio``
tasks copy the context when they are created: work the task spawns sees the same value, and
nothing leaks into the next task the worker runs. This module is stdlib only: the child imports
it at start-up, and ``asynctask.current_task`` re-exports ``current_task``.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Final


@dataclass(frozen=True, slots=True)
class TaskContext:
    """The running attempt, as docs/contract.md ("Attempts") promises it: ``attempt`` 1 is the
    first attempt."""

    id: str
    tenant: str
    attempt: int
    labels: dict[str, str] = field(default_factory=dict)


CURRENT: Final[ContextVar[TaskContext | None]] = ContextVar("asynctask_current_task", default=None)


def current_task() -> TaskContext:
    """The task this code runs in; ``RuntimeError`` anywhere else (e.g. in the daemon)."""
    context = CURRENT.get()
    if context is None:
        raise RuntimeError("current_task() is only available inside a running task")
    return context
