"""Scheduler: the pure decision core of the daemon.

No I/O at all - no sockets, no SQLite, no clock, no global random. Every method takes ``now``
(epoch seconds, read once per step by ``daemon.py``) and returns *actions*: what the daemon must
do (persist a task's new state, hand a task to a worker, report a finished task). The daemon
performs them; nothing here awaits. This is the h11 / httpcore shape: decide, then act.

Rules every decision obeys:

* A task moves only along ``model.TRANSITIONS``; ``LiveTask.move`` enforces it.
* ``dispatch`` never hands out more tasks than the free slots it is given, never a task that is
  not due, and never one whose TTL has passed (that one ends ``expired`` instead).
* An attempt is counted when it is dispatched, so an attempt interrupted by a crash counts.
* After an attempt fails, ``RetryPolicy`` decides between ``scheduled`` (a backoff) and
  ``failed`` (the dead-letter queue). A task makes at most ``retries + 1`` attempts.
* A task object that reaches a final state is never made live again: an operator's ``retry``
  builds a new ``LiveTask`` from the stored row, so lazily-deleted queue entries stay dead.

Dispatch order is strict priority, FIFO within a priority (``queues.ReadyQueues``); fairness
between tenants, limits and AIMD build on this interface.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from asynctask.core.queues import ReadyQueues
from asynctask.core.retry import RetryPolicy
from asynctask.core.timers import Timers
from asynctask.model import ErrorKind, LiveTask, TaskState, error_dict

S = TaskState


@dataclass(frozen=True, slots=True)
class Persist:
    """Write the task's current state; it is still live."""

    task: LiveTask


@dataclass(frozen=True, slots=True)
class Dispatch:
    """Start an attempt of the task on a worker (already marked ``running`` and counted)."""

    task: LiveTask


@dataclass(frozen=True, slots=True)
class Finished:
    """The task reached a final state: persist it, release waiters, drop it from memory."""

    task: LiveTask


Action = Persist | Dispatch | Finished


class Scheduler:
    __slots__ = ("_ready", "_retry", "_rng", "_timers")

    def __init__(self, retry: RetryPolicy, rng: random.Random) -> None:
        self._retry = retry
        self._rng = rng
        self._ready = ReadyQueues()
        self._timers = Timers()

    def __repr__(self) -> str:
        return f"<Scheduler queued={len(self._ready)} scheduled={len(self._timers)}>"

    @property
    def queued(self) -> int:
        return len(self._ready)

    @property
    def scheduled(self) -> int:
        return len(self._timers)

    def add(self, task: LiveTask) -> None:
        """Take in a task that is ``queued`` or ``scheduled`` (new, or recovered at start-up)."""
        if task.state is S.QUEUED:
            self._ready.push(task)
        elif task.state is S.SCHEDULED:
            self._timers.push(task)
        else:
            raise ValueError(f"only queued or scheduled tasks can be added, not {task.state}")

    def remove(self, task: LiveTask, new_state: TaskState, now: float) -> Finished:
        """Take a queued or scheduled task out (cancel); it ends in ``new_state``."""
        old = task.state
        task.move(new_state)
        task.finished_at = now
        if old is S.QUEUED:
            self._ready.discard(task)
        elif old is S.SCHEDULED:
            self._timers.discard(task)
        return Finished(task)

    def next_wakeup(self) -> float | None:
        """When ``dispatch`` next has something to do even if nothing else happens."""
        return self._timers.next_due()

    def dispatch(self, now: float, free_slots: int) -> list[Action]:
        """Promote due timers, then hand out up to ``free_slots`` ready tasks."""
        actions: list[Action] = []
        for task in self._timers.pop_due(now):
            task.move(S.QUEUED)
            task.due_at = None
            self._ready.push(task)
            actions.append(Persist(task))
        while free_slots > 0:
            ready = self._ready.pop()
            if ready is None:
                break
            task = ready
            if task.expires_at is not None and task.expires_at <= now:
                task.move(S.EXPIRED)
                task.finished_at = now
                actions.append(Finished(task))
                continue
            task.move(S.RUNNING)
            task.attempts += 1
            task.started_at = now
            actions.append(Dispatch(task))
            free_slots -= 1
        return actions

    def succeeded(self, task: LiveTask, result: bytes | None, now: float) -> Finished:
        task.move(S.SUCCEEDED)
        task.result = result
        task.error = None
        task.finished_at = now
        return Finished(task)

    def attempt_failed(
        self, task: LiveTask, error: dict[str, Any], now: float, *, retry_limit_kills: bool = False
    ) -> Action:
        """An attempt ended without success: back off and retry, or dead-letter the task."""
        kind = _kind_of(error)
        task.error = error
        if self._retry.should_retry(
            kind, task.attempts, task.retries, retry_limit_kills=retry_limit_kills
        ):
            retry_after = error.get("retry_after")
            delay = self._retry.delay(
                task.attempts,
                self._rng,
                float(retry_after) if isinstance(retry_after, int | float) else None,
            )
            task.move(S.SCHEDULED)
            task.due_at = now + delay
            self._timers.push(task)
            return Persist(task)
        task.move(S.FAILED)
        task.finished_at = now
        return Finished(task)

    def interrupted(self, task: LiveTask, reason: str, now: float) -> Action:
        """The daemon itself stopped the attempt (shutdown, crash): it counts, and the task is
        queued again at once if it has retries left."""
        task.error = error_dict(ErrorKind.INTERRUPTED, "Interrupted", reason)
        if task.attempts > task.retries:
            task.move(S.FAILED)
            task.finished_at = now
            return Finished(task)
        task.move(S.QUEUED)
        self._ready.push(task)
        return Persist(task)


def _kind_of(error: dict[str, Any]) -> ErrorKind:
    try:
        return ErrorKind(error.get("kind", ErrorKind.EXCEPTION))
    except ValueError:
        return ErrorKind.EXCEPTION
