"""What a worker runs for a Django task: ``run_task(module_path, args, kwargs)``.

``AsynctaskBackend`` submits every Django task as this function, because a Django ``Task`` is an
object, not a callable the worker could be pointed at, and because Django must be set up before
the task's module is imported (importing ``worker`` below does that, and registers the
connection hooks). Only a Django ``Task`` is run: a ``module_path`` naming anything else -
a plain function, a class, a module attribute a caller made up - fails at once with
``asynctask.Fail``, so this entry point cannot be used to call arbitrary code by name.

An async task function returns its coroutine; the worker runs it on its event loop, as it runs
any async task.
"""

from __future__ import annotations

from typing import Any

import asynctask
import asynctask.contrib.django.worker  # django.setup() before the task's module


def run_task(module_path: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
    from django.utils.module_loading import import_string

    from asynctask.contrib.django.backend import api_name

    try:
        task = import_string(module_path)
    except ImportError as exc:
        raise asynctask.Fail(f"cannot import the Django task {module_path!r}: {exc}") from None
    if not isinstance(task, api_name("Task")):
        raise asynctask.Fail(f"{module_path!r} is not a Django task (@task)")
    if task.takes_context:
        args = [_context(task), *args]
    return task.func(*args, **kwargs)


def _context(task: Any) -> Any:
    """Django's ``TaskContext`` for the running attempt: its ``TaskResult``, read back from the
    daemon this worker serves (``ASYNCTASK_SOCKET``)."""
    from asynctask.contrib.django.backend import api_name

    result = task.get_backend().get_result(asynctask.current_task().id)
    return api_name("TaskContext")(task_result=result)
