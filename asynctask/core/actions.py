"""What the scheduler asks the daemon to do (actions), and the error record an attempt leaves.

They live apart from ``scheduler.py`` so the scheduler's collaborators (``dispatcher.py``,
``board.py``) can build them without importing the scheduler that composes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from asynctask.model import ErrorKind, LiveTask


@dataclass(frozen=True, slots=True)
class Persist:
    """Write the task's current state; it is still live."""

    task: LiveTask


@dataclass(frozen=True, slots=True)
class Dispatch:
    """Start an attempt of the task on a worker (already marked ``running`` and counted).

    ``shard`` is the worker shard to run it on, or -1 when ``dispatch`` was given a plain count
    of free workers (any worker will do)."""

    task: LiveTask
    shard: int = -1


@dataclass(frozen=True, slots=True)
class Finished:
    """The task reached a final state: persist it, release waiters, drop it from memory."""

    task: LiveTask


Action = Persist | Dispatch | Finished

#: Error kinds that mean the attempt broke its worker (killed it or held it to the timeout).
WORKER_FAULTS = frozenset({ErrorKind.WORKER_DIED, ErrorKind.TIMEOUT})

#: Pause targets: ("tenant", tenant, ""), ("queue", tenant, queue), ("function", "", function).
PauseTarget = tuple[str, str, str]

#: Failed attempts whose errors a task keeps (the newest); each entry names its attempt, so a
#: gap shows where older ones were dropped.
ERROR_HISTORY = 20


def record_error(task: LiveTask, error: dict[str, Any], now: float) -> None:
    """Make ``error`` the task's last error and add it to ``task.errors``, the per-attempt
    history that outlives a later success (without the traceback: only the last keeps one)."""
    task.error = error
    entry = {key: value for key, value in error.items() if key != "traceback"}
    entry["attempt"] = task.attempts
    entry["started_at"] = task.started_at
    entry["finished_at"] = now
    history = task.errors
    if history is None:
        task.errors = [entry]
    else:
        history.append(entry)
        del history[:-ERROR_HISTORY]


def kind_of(error: dict[str, Any]) -> ErrorKind:
    """The error's kind; one this version does not know counts as a plain exception."""
    try:
        return ErrorKind(error.get("kind", ErrorKind.EXCEPTION))
    except ValueError:
        return ErrorKind.EXCEPTION
