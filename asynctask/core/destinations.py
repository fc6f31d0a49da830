"""Destinations: the task a task's end submits (``on_success`` / ``on_failure``).

The destination's ID is ``<id>:<on_success|on_failure>:<attempts>``: fixed by the end it reports,
so a retried task that fails again gets a new one, and nothing can submit one end twice. Its one
argument describes the end: ``{"id", "tenant", "state", "result", "error", "attempts"}``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from asynctask.model import LiveTask, TaskState

_OPTION_OF = {TaskState.SUCCEEDED: "on_success", TaskState.FAILED: "on_failure"}


@dataclass(frozen=True, slots=True)
class Destination:
    function: str
    task_id: str
    tenant: str
    #: The argument, except ``info["result"]``: the caller decodes it from ``result``.
    info: dict[str, Any]
    result: bytes | None


def destination_of(task: LiveTask) -> Destination | None:
    """The destination ``task``'s end calls for, or ``None``."""
    option = _OPTION_OF.get(task.state)
    function = task.options.get(option) if option else None
    if not function:
        return None
    info = {
        "id": task.id,
        "tenant": task.tenant,
        "state": str(task.state),
        "result": None,  # decoded by the caller
        "error": task.error,
        "attempts": task.attempts,
    }
    return Destination(
        function=function,
        task_id=f"{task.id}:{option}:{task.attempts}",
        tenant=task.tenant,
        info=info,
        result=task.result,
    )
