"""Timers: tasks waiting for a due time (a delay, ``--at``, a retry backoff).

Algorithm: a binary heap of ``(due, seq, task)`` with *lazy deletion*, after trio's
``_core/_run.py::Deadlines``. Cancelling or rescheduling a task does not touch the heap; the
stale entry is recognised when it surfaces (the task is no longer ``scheduled``, or its
``due_at`` changed) and skipped. When stale entries outnumber live ones the heap is rebuilt, so
memory stays within twice the live count. Push and pop are O(log n); removal is O(1).

Invariant (tests/core/test_timers.py): ``pop_due(now)`` returns exactly the live entries with
``due <= now``, in due order, each once; nothing is returned early.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator

from asynctask.model import LiveTask, TaskState


class Timers:
    __slots__ = ("_heap", "_live")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, LiveTask]] = []
        self._live = 0

    def __len__(self) -> int:
        return self._live

    def __repr__(self) -> str:
        return f"<Timers live={self._live} heap={len(self._heap)}>"

    def push(self, task: LiveTask) -> None:
        assert task.due_at is not None
        heapq.heappush(self._heap, (task.due_at, task.seq, task))
        self._live += 1

    def discard(self, task: LiveTask) -> None:
        """Forget a task that left ``scheduled`` some other way (cancel, delete)."""
        self._live -= 1
        if len(self._heap) > 64 and len(self._heap) > 2 * self._live:
            self._heap = [entry for entry in self._heap if _is_live(entry)]
            heapq.heapify(self._heap)

    def drop(self, seqs: set[int]) -> None:
        """Take the scheduled tasks ``seqs`` out now (held by a pause; they stay ``scheduled``
        and may be pushed again, which a stale entry would then duplicate). One pass."""
        kept = [entry for entry in self._heap if entry[2].seq not in seqs]
        self._live -= sum(1 for entry in self._heap if entry[2].seq in seqs and _is_live(entry))
        heapq.heapify(kept)
        self._heap = kept

    def next_due(self) -> float | None:
        heap = self._heap
        while heap and not _is_live(heap[0]):
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def pop_due(self, now: float) -> Iterator[LiveTask]:
        heap = self._heap
        while heap:
            entry = heap[0]
            if not _is_live(entry):
                heapq.heappop(heap)
                continue
            if entry[0] > now:
                return
            heapq.heappop(heap)
            self._live -= 1
            yield entry[2]


def _is_live(entry: tuple[float, int, LiveTask]) -> bool:
    task = entry[2]
    return task.state is TaskState.SCHEDULED and task.due_at == entry[0]
