"""Holds: work an operator stopped on purpose - a paused tenant, queue or function, and waiting
tasks paused one by one by a selector (``hold``).

Both leave tasks in their state and their place in the backlog; they differ in reach. A pause
is remembered by target, so it holds later submits too and survives the entity being made anew;
a hold is a mark on the tasks that wait now. Either is undone by a wake-up on the ``Board``, so
nothing polls held work.
"""

from __future__ import annotations

from asynctask.core.actions import PauseTarget
from asynctask.core.board import Board
from asynctask.core.entities import FUNCTION, PAUSED, QueueState
from asynctask.model import WAITING_STATES, LiveTask, TaskState

S = TaskState


class Holds:
    def __init__(self, board: Board) -> None:
        self._board = board

    def set_paused(self, target: PauseTarget, paused: bool) -> None:
        board = self._board
        kind, tenant_name, name = target
        if paused:
            board.paused.add(target)
        else:
            board.paused.discard(target)
        if kind == "tenant":
            tenant = board.tenant(tenant_name)
            tenant.paused = paused
            if not paused and tenant.parked == PAUSED:
                board.release_tenant(tenant)
        elif kind == "queue":
            queue = board.queue(board.tenant(tenant_name), name, 0.0)
            queue.paused = paused
            if not paused and queue.parked == PAUSED:
                board.wake_queue(queue)
        elif kind == "function":
            function = board.function(name)
            function.paused = paused
            if not paused:
                board.wake_function_waiters(function)
        else:
            raise ValueError(f"unknown pause target kind {kind!r}")

    def hold(self, tasks: list[LiveTask]) -> list[LiveTask]:
        """The queues and timers drop the tasks at once, one pass per queue touched, rather
        than lazily: a released task is pushed again and must not meet a stale entry of
        itself."""
        board = self._board
        changed = [task for task in tasks if not task.held and task.state in WAITING_STATES]
        by_queue: dict[QueueState, set[int]] = {}
        scheduled: set[int] = set()
        for task in changed:
            queue = board.tenants[task.tenant].queues[task.queue]
            task.held = True
            queue.held += 1
            if task.state is S.QUEUED:
                by_queue.setdefault(queue, set()).add(task.seq)
                board.functions[task.function].queued -= 1
                board.queued -= 1
            else:
                scheduled.add(task.seq)
                queue.scheduled -= 1
        for queue, seqs in by_queue.items():
            queue.fifo.drop(seqs)
            if queue.parked == FUNCTION:
                board.wake_queue(queue)  # the head that held it may be gone
        if scheduled:
            board.timers.drop(scheduled)
        return changed

    def release(self, tasks: list[LiveTask], now: float) -> list[LiveTask]:
        board = self._board
        changed = [task for task in tasks if task.held and task.state in WAITING_STATES]
        for task in changed:
            task.held = False
            queue = board.tenants[task.tenant].queues[task.queue]
            queue.held -= 1
            if task.state is S.QUEUED:
                board.enqueue(task, now)
            else:
                queue.scheduled += 1
                board.timers.push(task)
        return changed
