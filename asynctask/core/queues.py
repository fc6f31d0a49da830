"""Ready queues: tasks that are due and wait for a worker.

One FIFO per priority level (0-9), so push and pop are O(1) and the highest non-empty level is
found in at most ten steps. Removal is lazy, as in ``timers``: a task that left ``queued``
(cancelled, expired) stays in its deque until it reaches the front and is skipped there.

Ordering promise (tests/core/test_scheduler.py): among queued tasks, a higher priority is taken
first, and within one priority the task queued earlier is taken first.
"""

from __future__ import annotations

from collections import deque

from asynctask.model import PRIORITY_MAX, PRIORITY_MIN, LiveTask, TaskState

_LEVELS = range(PRIORITY_MAX, PRIORITY_MIN - 1, -1)


class ReadyQueues:
    __slots__ = ("_by_priority", "_live")

    def __init__(self) -> None:
        self._by_priority: list[deque[LiveTask]] = [
            deque() for _ in range(PRIORITY_MAX - PRIORITY_MIN + 1)
        ]
        self._live = 0

    def __len__(self) -> int:
        return self._live

    def __repr__(self) -> str:
        sizes = {p: len(self._by_priority[p]) for p in _LEVELS if self._by_priority[p]}
        return f"<ReadyQueues live={self._live} by_priority={sizes}>"

    def push(self, task: LiveTask) -> None:
        self._by_priority[task.priority].append(task)
        self._live += 1

    def discard(self, task: LiveTask) -> None:
        """Forget a queued task that left ``queued`` some other way (cancel, expiry)."""
        self._live -= 1

    def pop(self) -> LiveTask | None:
        for level in _LEVELS:
            fifo = self._by_priority[level]
            while fifo:
                task = fifo.popleft()
                if task.state is TaskState.QUEUED:
                    self._live -= 1
                    return task
        return None
