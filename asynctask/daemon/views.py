"""Mappings between the daemon's live tasks, the store's rows and the views that clients
get. The field-by-field mappings are generated from ``taskfields.py``
(``scripts/taskfields.py``)."""

from __future__ import annotations

from typing import Any

from asynctask.model import ListQuery, LiveTask
from asynctask.observe.tracing import stage_views
from asynctask.store import TaskRow, UpdateTask

#: A task's key: (tenant, id).
Key = tuple[str, str]


def selected(task: LiveTask, query: ListQuery) -> bool:
    """Whether a live task matches a selector (``ListQuery`` fields; no states: any live)."""
    return (
        (query.tenants is None or task.tenant in query.tenants)
        and (not query.states or task.state in query.states)
        and (query.queue is None or task.queue == query.queue)
        and (query.function is None or task.function == query.function)
        and (query.prefix is None or task.id.startswith(query.prefix))
        and (query.since is None or task.created_at >= query.since)
        and (query.until is None or task.created_at < query.until)
        and all(task.labels.get(k) == v for k, v in query.labels.items())
        and (query.trace_id is None or task.trace_id == query.trace_id)
    )


def failure_view(task: LiveTask, error: dict[str, Any], now: float) -> dict[str, Any]:
    return {
        "id": task.id,
        "tenant": task.tenant,
        "queue": task.queue,
        "function": task.function,
        "state": str(task.state),
        "attempts": task.attempts,
        "kind": error.get("kind"),
        "type": error.get("type"),
        "message": error.get("message"),
        "finished_at": now,
    }


def check_recovered(task: LiveTask) -> None:
    """``ValueError`` for a recovered task the scheduler could not order or index (a row written
    by hand or by another version): a non-number in a timer poisons a heap for every task."""
    if type(task.labels) is not dict:
        raise ValueError(f"labels are {task.labels!r}, not a map")
    for name, value in (("timeout", task.timeout), ("expires_at", task.expires_at)):
        if value is not None and type(value) not in (int, float):
            raise ValueError(f"{name} is {value!r}, not a number")


# <generated taskfields:mappings>
def update_of(task: LiveTask) -> UpdateTask:
    """The op that writes every mutable column of ``task`` as it is now."""
    return UpdateTask(
        task.seq,
        task.state,
        task.due_at,
        task.attempts,
        task.started_at,
        task.finished_at,
        task.result,
        task.error,
        task.errors,
        task.held,
        task.trace,
    )


def row_of(task: LiveTask) -> TaskRow:
    return TaskRow(
        task.seq,
        task.tenant,
        task.id,
        task.function,
        task.queue,
        task.priority,
        task.state,
        task.payload,
        task.options,
        task.labels,
        task.created_at,
        task.due_at,
        task.attempts,
        task.started_at,
        task.finished_at,
        task.result,
        task.error,
        task.errors,
        task.held,
        task.trace_id,
        task.trace,
    )


def task_from_row(row: TaskRow) -> LiveTask:
    """Positional, in ``LiveTask``'s parameter order: recovery makes a million."""
    options = row.options
    return LiveTask(
        row.seq,
        row.tenant,
        row.id,
        row.function,
        row.queue,
        row.priority,
        row.state,
        row.payload,
        row.options,
        row.labels,
        int(options.get("retries", 0)),
        options.get("timeout"),
        row.created_at,
        row.due_at,
        options.get("expires_at"),
        row.attempts,
        row.started_at,
        row.finished_at,
        row.result,
        row.error,
        row.errors,
        row.held,
        row.trace_id,
        row.trace,
    )


def view_of(task: LiveTask) -> dict[str, Any]:
    return {
        "id": task.id,
        "state": str(task.state),
        "tenant": task.tenant,
        "queue": task.queue,
        "function": task.function,
        "priority": task.priority,
        "attempts": task.attempts,
        "retries": task.retries,
        "result": task.result,
        "error": task.error,
        "errors": task.errors or [],
        "paused": task.held,
        "labels": task.labels,
        "created_at": task.created_at,
        "due_at": task.due_at,
        "started_at": task.started_at,
        "finished_at": task.finished_at,
        "trace_id": task.trace_id,
        "trace": stage_views(task.created_at, task.trace),
    }


# </generated taskfields:mappings>


def view_of_row(row: TaskRow) -> dict[str, Any]:
    return view_of(task_from_row(row))


def brief_view(task: LiveTask) -> dict[str, Any]:
    """A submit's ``brief`` reply for one task: what a client needs to make its handle."""
    return {"id": task.id, "tenant": task.tenant, "state": str(task.state)}


def brief_of(view: dict[str, Any]) -> dict[str, Any]:
    """``brief_view`` of a task known by its whole view (an ID that was already taken)."""
    return {"id": view["id"], "tenant": view["tenant"], "state": view["state"]}
