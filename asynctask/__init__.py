"""asynctask: a single-machine asynchronous task daemon.

The names a task author and a submitting program need. Client classes load lazily, so a worker
that imports ``asynctask`` for ``Fail`` or ``current_task`` stays fast to start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from asynctask.decorator import TaskCall, TaskFunction, task
from asynctask.errors import AsynctaskError, Fail, TaskNotSucceeded, Throttled
from asynctask.executor.taskcontext import TaskContext, current_task
from asynctask.hooks import after_attempt, before_attempt, on_worker_start
from asynctask.tasklog import task_logger

__version__ = "0.1.0"

if TYPE_CHECKING:
    from asynctask.client import AsyncClient, AsyncTaskHandle, Client, TaskHandle, TaskStatus

__all__ = [
    "AsyncClient",
    "AsyncTaskHandle",
    "AsynctaskError",
    "Client",
    "Fail",
    "TaskCall",
    "TaskContext",
    "TaskFunction",
    "TaskHandle",
    "TaskNotSucceeded",
    "TaskStatus",
    "Throttled",
    "__version__",
    "after_attempt",
    "before_attempt",
    "current_task",
    "on_worker_start",
    "task",
    "task_logger",
]

_LAZY = {"AsyncClient", "AsyncTaskHandle", "Client", "TaskHandle", "TaskStatus"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from asynctask import client

        return getattr(client, name)
    raise AttributeError(f"module 'asynctask' has no attribute {name!r}")
