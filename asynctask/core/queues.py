"""Ready queues: the due tasks of one queue, ordered by priority with aging.

Algorithm. Each queued task gets a static *deadline key* when it becomes ready::

    key = queued_at - priority * aging

and the queue hands out the smallest key first (ties: lower ``seq``, i.e. submitted earlier).
This is priority aging without a clock: comparing ``p_x + (now - t_x) / aging`` against
``p_y + (now - t_y) / aging`` - "effective priority grows by one level per ``aging`` seconds of
waiting" - gives the same order for every ``now``, so keys never need updating. (It is the
earliest-deadline-first form of aging, as in Linux's deadline I/O scheduler.)

Storage: one FIFO per priority level. Within a level tasks arrive in ``queued_at`` order, so each
FIFO is sorted by key and the queue's minimum is the least of at most ten FIFO heads: push and
pop are O(1), head is O(10). Tasks that left ``queued`` some other way (cancelled, expired) stay
in their FIFO and are skipped when they reach the front (lazy deletion).

Starvation bound (tests/core/test_queues.py): a task is never overtaken by a task that became
ready more than ``(PRIORITY_MAX - PRIORITY_MIN) * aging`` seconds after it. With the default
``aging = 2s`` a priority-0 task waits at most 18 s behind fresh priority-9 arrivals, plus the
time to run the work that was already ahead of it.
"""

from __future__ import annotations

from collections import deque

from asynctask.model import PRIORITY_MAX, PRIORITY_MIN, LiveTask, TaskState

_LEVELS = PRIORITY_MAX - PRIORITY_MIN + 1


def ready_key(task: LiveTask, aging: float) -> float:
    return task.queued_at - task.priority * aging


class PriorityFifo:
    __slots__ = ("_aging", "_levels", "live", "live_at")

    def __init__(self, aging: float) -> None:
        self._aging = aging
        self._levels: list[deque[LiveTask] | None] = [None] * _LEVELS
        self.live = 0
        #: Queued tasks per priority level (``live`` split by level; stale entries not counted).
        self.live_at = [0] * _LEVELS

    def __len__(self) -> int:
        return self.live

    def __repr__(self) -> str:
        sizes = {p: len(q) for p, q in enumerate(self._levels) if q}
        return f"<PriorityFifo live={self.live} by_priority={sizes}>"

    def push(self, task: LiveTask) -> None:
        fifo = self._levels[task.priority]
        if fifo is None:
            fifo = self._levels[task.priority] = deque()
        fifo.append(task)
        self.live += 1
        self.live_at[task.priority] += 1

    def discard(self, task: LiveTask) -> None:
        """A queued task left ``queued`` some other way; its entry is skipped later."""
        self.live -= 1
        self.live_at[task.priority] -= 1

    def drop(self, seqs: set[int]) -> None:
        """Take the queued tasks ``seqs`` out now, not lazily: they stay ``queued`` (held by a
        pause) and may be pushed again, which a stale entry would then duplicate. One pass
        over the queue, so a bulk pause pays it once per queue, not per task."""
        for priority, fifo in enumerate(self._levels):
            if not fifo:
                continue
            kept = deque(task for task in fifo if task.seq not in seqs)
            dropped = sum(1 for task in fifo if task.seq in seqs and task.state is TaskState.QUEUED)
            self.live -= dropped
            self.live_at[priority] -= dropped
            self._levels[priority] = kept

    def head(self) -> LiveTask | None:
        """The task ``pop`` would return, or ``None`` when empty."""
        if self.live == 0:
            return None
        best: LiveTask | None = None
        best_key = 0.0
        aging = self._aging
        for fifo in self._levels:
            if not fifo:
                continue
            while fifo and fifo[0].state is not TaskState.QUEUED:
                fifo.popleft()
            if not fifo:
                continue
            task = fifo[0]
            key = task.queued_at - task.priority * aging
            if best is None or key < best_key or (key == best_key and task.seq < best.seq):
                best, best_key = task, key
        return best

    def pop(self) -> LiveTask | None:
        task = self.head()
        if task is not None:
            fifo = self._levels[task.priority]
            assert fifo is not None
            fifo.popleft()
            self.live -= 1
            self.live_at[task.priority] -= 1
        return task
