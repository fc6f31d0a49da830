"""The executor: a pool of pre-started worker processes that run task functions.

``pool`` is the daemon's side, ``child`` the worker's main, ``taskcontext`` what task code sees.
The pool's names are exported lazily: ``python -m asynctask.executor.child`` imports this
package first, and a worker must not pay for importing ``asyncio`` before it has a reason to.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from asynctask.executor.taskcontext import TaskContext, current_task

if TYPE_CHECKING:
    from asynctask.executor.pool import Job, Outcome, PoolConfig, WorkerPool

__all__ = ["Job", "Outcome", "PoolConfig", "TaskContext", "WorkerPool", "current_task"]

_FROM_POOL = frozenset({"Job", "Outcome", "PoolConfig", "WorkerPool"})


def __getattr__(name: str) -> Any:
    if name in _FROM_POOL:
        from asynctask.executor import pool

        return getattr(pool, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
