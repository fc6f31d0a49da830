"""Per-attempt stage times: when an attempt became eligible, was dispatched, started in its
worker, and finished; ``status`` derives queue wait and run time from them.

Each ended attempt adds one compact list ``[attempt, eligible, dispatched, started, finished]``
to ``LiveTask.trace`` (stored as msgpack with the task). A list, not a dict, because every
finished task carries one and the store writes it on the finish path: it encodes in a third of
the time and takes half the bytes. ``stage_views`` turns them into named fields for clients.
"""

from __future__ import annotations

from typing import Any, Final

from asynctask.model import LiveTask

#: Attempts whose stages a task keeps (the newest); matches the error history's bound.
TRACE_HISTORY: Final = 20

Trace = list[list[float | None]]


def record_attempt(task: LiveTask, started: float | None, now: float) -> list[float | None]:
    """Append the attempt that just ended (``started``: when the worker took it up, ``None`` if
    it never said) to ``task.trace`` and return the entry."""
    dispatched = task.started_at
    entry: list[float | None] = [
        task.attempts,
        task.queued_at or None,  # 0.0: never queued in this process (recovered running)
        dispatched,
        started,
        now,
    ]
    trace = task.trace
    if trace is None:
        task.trace = [entry]
    else:
        trace.append(entry)
        if len(trace) > TRACE_HISTORY:
            del trace[:-TRACE_HISTORY]
    return entry


def queue_wait(entry: list[float | None]) -> float | None:
    """Seconds from eligible (due and not held) to dispatched."""
    eligible, dispatched = entry[1], entry[2]
    if eligible is None or dispatched is None:
        return None
    return max(dispatched - eligible, 0.0)


def run_time(entry: list[float | None]) -> float | None:
    """Seconds from the worker starting the attempt (else its dispatch) to its end."""
    start = entry[3] if entry[3] is not None else entry[2]
    finished = entry[4]
    if start is None or finished is None:
        return None
    return max(finished - start, 0.0)


def stage_views(submitted: float, trace: Trace | None) -> list[dict[str, Any]]:
    """One map per recorded attempt, oldest first, with the stages and the two durations."""
    views = []
    for entry in trace or ():
        if len(entry) != 5:
            continue  # written by other code; nothing to show
        attempt, eligible, dispatched, started, finished = entry
        views.append(
            {
                "attempt": int(attempt) if attempt is not None else None,
                "submitted": submitted,
                "eligible": eligible,
                "dispatched": dispatched,
                "started": started,
                "finished": finished,
                "queue_wait": queue_wait(entry),
                "run_time": run_time(entry),
            }
        )
    return views
