"""A backend for Django's tasks framework: ``@task`` functions run in asynctask's workers.

Settings::

    TASKS = {
        "default": {
            "BACKEND": "asynctask.contrib.django.backend.AsynctaskBackend",
            "QUEUES": [],          # any queue name (else the ones listed)
            "OPTIONS": {"socket": None, "tenant": "default", "retries": 0},
        }
    }

``OPTIONS``: ``socket`` and ``tenant`` choose the daemon and the tenant (default:
``$ASYNCTASK_SOCKET``, else the home's socket; ``"default"``); every other key is a default
``Client.submit`` option for the backend's tasks (``retries``, ``timeout``, ``ttl``,
``memory``, ...). Django's tasks have no retries of their own, so a task that raises is
retried as asynctask's ``[retry] retries`` says unless ``retries`` is set here.

How a Django ``Task`` maps onto an asynctask task:

- It is submitted as ``asynctask.contrib.django.runner:run_task(module_path, args, kwargs)``
  (the runner sets Django up in the worker, imports the ``Task`` and calls its function), with
  the label ``django_task`` = the task's ``module_path``, so ``asynctask list --label
  django_task=notes.tasks.summarize`` finds its runs.
- ``priority`` -100..100 (default 0) maps onto 0..9 (default 5), keeping the order:
  ``priority_of``. ``queue_name`` is the asynctask queue (``"default"``: the tenant's own).
  ``run_after`` is ``run_at``.
- The ``TaskResult`` ID is the asynctask task ID, chosen before the submit (a ULID), so the
  arguments are checked (Django's JSON rule) before anything is sent.
- ``get_result`` reads the task's status: scheduled or queued is ``READY``, running ``RUNNING``,
  succeeded ``SUCCESSFUL``, failed, cancelled or expired ``FAILED``; ``errors`` are the failed
  attempts' errors, ``worker_ids`` one entry per attempt. The daemon does not return a task's
  arguments, so a result read back in another process has empty ``args`` and ``kwargs``.

Which Django: ``django.tasks`` (Django >= 6.0) when it exists, else the ``django_tasks``
backport (Django 4.2-5.x); the two have the same backend API. Both are imported by name at run
time (``_api``), so neither is needed to import this module's documentation.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from asynctask.client import Client, TaskStatus
from asynctask.client._options import SUBMIT_OPTIONS
from asynctask.contrib.django.oncommit import shared_client
from asynctask.errors import NotFound, UsageError
from asynctask.model import DEFAULT_TENANT, TaskState, new_task_id

#: The function every Django task is submitted as.
RUNNER = "asynctask.contrib.django.runner:run_task"
#: The label that names the Django task (its ``module_path``).
TASK_LABEL = "django_task"
DEFAULT_QUEUE = "default"


def _api() -> ModuleType:
    """Django's tasks package: ``django.tasks`` (Django 6+) or the ``django_tasks`` backport."""
    try:
        return importlib.import_module("django.tasks")
    except ImportError:
        return importlib.import_module("django_tasks")


def _api_module(name: str) -> ModuleType:
    return importlib.import_module(f"{_api().__name__}.{name}")


def api_name(name: str) -> Any:
    """A class of the tasks framework by name, wherever this version keeps it (the package,
    ``base`` or ``task``)."""
    for where in ("", ".base", ".task"):
        try:
            module = importlib.import_module(_api().__name__ + where)
        except ImportError:
            continue
        if hasattr(module, name):
            return getattr(module, name)
    raise ImportError(f"{_api().__name__} has no {name}")


def result_status(name: str) -> Any:
    """``TaskResultStatus.<name>``; the backport's older releases call the enum
    ``ResultStatus`` and its success ``SUCCEEDED``."""
    try:
        statuses = api_name("TaskResultStatus")
    except ImportError:
        statuses = api_name("ResultStatus")
    if name == "SUCCESSFUL" and not hasattr(statuses, name):
        name = "SUCCEEDED"
    return getattr(statuses, name)


_BaseTaskBackend: Any = _api_module("backends.base").BaseTaskBackend


def priority_of(django_priority: int) -> int:
    """Django's -100..100 (default 0) to asynctask's 0..9 (default 5), order kept: 0 is 5,
    1..100 are 6..9, -1..-100 are 4..0."""
    if django_priority > 0:
        return 5 + -(-django_priority * 4 // 100)  # ceil: 1 is 6, 100 is 9
    return 5 + (django_priority * 5) // 100  # floor: -1 is 4, -100 is 0


class AsynctaskBackend(_BaseTaskBackend):  # type: ignore[misc]
    """``TASKS`` backend: submit to an asynctask daemon, read results back from it."""

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: Mapping[str, Any]) -> None:
        super().__init__(alias, params)
        options = dict(params.get("OPTIONS", {}))
        self.socket: str | None = options.pop("socket", None)
        self.tenant: str = options.pop("tenant", DEFAULT_TENANT)
        unknown = set(options) - (SUBMIT_OPTIONS - {"task_id"})
        if unknown:
            raise ImproperlyConfigured(
                f"TASKS[{alias!r}] OPTIONS: unknown key(s) {', '.join(sorted(unknown))}; "
                f"expected socket, tenant or submit options ({', '.join(sorted(SUBMIT_OPTIONS))})"
            )
        self.submit_defaults: dict[str, Any] = options

    def client(self) -> Client:
        return shared_client(self.socket, self.tenant)

    def enqueue(self, task: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        self.validate_task(task)
        task_id = new_task_id()
        result = self._result(task, task_id, "READY", list(args), dict(kwargs))
        options: dict[str, Any] = {
            **self.submit_defaults,
            "task_id": task_id,
            "priority": priority_of(task.priority),
            "labels": {**self.submit_defaults.get("labels", {}), TASK_LABEL: task.module_path},
        }
        if task.queue_name != DEFAULT_QUEUE:
            options["queue"] = task.queue_name
        if task.run_after is not None:
            options["run_at"] = task.run_after
        # result.args/kwargs: what Django's JSON normalisation made of them, as a worker sees them
        self.client().submit(RUNNER, task.module_path, result.args, result.kwargs, **options)
        _send("task_enqueued", type(self), task_result=result)
        return result

    def get_result(self, result_id: str) -> Any:
        try:
            status = self.client().status(result_id)
        except (NotFound, UsageError):  # unknown, another tenant's, or not an ID at all
            raise _does_not_exist(f"no task {result_id!r}") from None
        module_path = status.labels.get(TASK_LABEL)
        if status.function != RUNNER or module_path is None:
            raise _does_not_exist(f"{result_id} is not a Django task")
        from django.utils.module_loading import import_string

        # The label is the submitter's text: only a Django Task it names is taken.
        try:
            task = import_string(module_path)
        except ImportError:
            raise _does_not_exist(f"{result_id}: no Django task {module_path!r}") from None
        if not isinstance(task, api_name("Task")):
            raise _does_not_exist(f"{result_id}: {module_path!r} is not a Django task")
        return self._from_status(task, status)

    def _from_status(self, task: Any, status: TaskStatus) -> Any:
        state = {
            TaskState.SCHEDULED: "READY",
            TaskState.QUEUED: "READY",
            TaskState.RUNNING: "RUNNING",
            TaskState.SUCCEEDED: "SUCCESSFUL",
        }.get(status.state, "FAILED")
        result = self._result(
            task,
            status.id,
            state,
            [],
            {},
            enqueued_at=_moment(status.created_at),
            started_at=_moment(status.started_at),
            finished_at=_moment(status.finished_at),
            errors=_errors(status),
            attempts=status.attempts,
        )
        if status.succeeded:
            object.__setattr__(result, "_return_value", status.result)
        return result

    def _result(
        self,
        task: Any,
        task_id: str,
        state: str,
        args: list[Any],
        kwargs: dict[str, Any],
        *,
        enqueued_at: datetime | None = None,
        started_at: datetime | None = None,
        finished_at: datetime | None = None,
        errors: list[Any] | None = None,
        attempts: int = 0,
    ) -> Any:
        return api_name("TaskResult")(
            task=task,
            id=task_id,
            status=result_status(state),
            enqueued_at=enqueued_at or datetime.now(UTC),
            started_at=started_at,
            finished_at=finished_at,
            last_attempted_at=started_at,
            args=args,
            kwargs=kwargs,
            backend=self.alias,
            errors=errors or [],
            worker_ids=[f"asynctask-attempt-{n}" for n in range(1, attempts + 1)],
        )


def _does_not_exist(message: str) -> Exception:
    """The framework's "no such result" error (``ResultDoesNotExist`` in older backports)."""
    exceptions = _api_module("exceptions")
    cls = getattr(exceptions, "TaskResultDoesNotExist", None) or exceptions.ResultDoesNotExist
    error: Exception = cls(message)
    return error


def _send(signal_name: str, sender: type, **kwargs: Any) -> None:
    """Send the tasks framework's signal, where this version has it."""
    try:
        signal = getattr(_api_module("signals"), signal_name, None)
    except ImportError:
        return
    if signal is not None:
        signal.send(sender, **kwargs)


def _moment(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


def _errors(status: TaskStatus) -> list[Any]:
    """Django ``TaskError``s: each failed attempt's, then the final error's traceback."""
    task_error = api_name("TaskError")
    found = [dict(error) for error in status.errors]
    if status.error is not None and status.state is not TaskState.SUCCEEDED:
        if found and found[-1].get("type") == status.error.get("type"):
            found[-1] = {**found[-1], **status.error}
        else:
            found.append(dict(status.error))
    return [
        task_error(
            exception_class_path=_class_path(str(error.get("type", ""))),
            traceback=str(error.get("traceback") or error.get("message", "")),
        )
        for error in found
    ]


def _class_path(type_name: str) -> str:
    """``ValueError`` (how a worker names a builtin) to ``builtins.ValueError``, which Django's
    ``TaskError.exception_class`` can import."""
    return type_name if "." in type_name else f"builtins.{type_name}"
