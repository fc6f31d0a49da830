"""Eager mode: submitted tasks run at once, in this process, for users' unit tests.

``with asynctask.testing.eager():`` (or ``@asynctask.testing.eager()`` on a test, sync or async)
makes every submit - ``f.submit``/``f.delay``/``f.apply_async`` and their async twins, the
default client, any ``Client`` or ``AsyncClient`` - run the task before the call returns, with
no daemon. Handles work as usual: ``.status()``, ``.wait()`` and ``.result()`` answer from the
tasks run here. This is Celery's ``task_always_eager`` and Huey's immediate mode.

What is the same as under a daemon, so that what would fail in production fails in the test:

* **The wire encoding.** Arguments are encoded as the client sends them and decoded as the
  worker does, and the result is encoded and decoded as it travels back (``_encode`` and
  ``_decode``, the one place this module encodes). An argument or a return value the wire
  cannot carry fails here as it would there: a submit's ``UsageError``, or the task failed
  with the ``bad_result`` kind.
* **The function reference.** The task's function is imported by its ``module:function``
  reference, as a worker imports it: a function defined in a test body or in ``__main__`` is
  refused as the client refuses it.
* **Errors and retries.** ``asynctask.Fail`` and the function's ``non_retryable`` exceptions
  fail the task at once; any other exception is retried up to the task's ``retries``
  (the submit's, else ``@asynctask.task``'s, else the daemon's default of 3), attempt after
  attempt with no backoff wait, and the task ends ``failed`` with each attempt's error in
  ``errors``. ``propagate=True`` raises the last error from the submit instead, as Celery's
  ``task_eager_propagates`` does.
* **Its context.** ``asynctask.current_task()`` gives the task's ``id``, ``tenant``,
  ``attempt`` (1, 2, ... across retries) and ``labels``.
* **Worker hooks.** ``on_worker_start`` (once per process), ``before_attempt`` and
  ``after_attempt`` run around each attempt as a worker runs them (``asynctask/hooks.py``).
* **Argument and result types** go through the wire's value encoding
  (``protocol/values.py``): a tuple stays a tuple, and what a worker cannot encode fails here.
* **Destinations.** ``on_success`` / ``on_failure`` run next, eagerly, with the finished task's
  dict as their one argument.
* **De-duplication by ID.** A ``task_id`` already used by a task that has not failed returns
  that task again without running anything.

What is not simulated: time (``delay``, ``run_at``, ``countdown`` and ``eta`` run at once;
``ttl`` never expires a task), timeouts, resource limits, rate and concurrency limits,
priorities and queues (recorded, never waited on), the config file, worker isolation (the task
runs in the test's process, with its environment and its imports), and the daemon's other
verbs (``list``, ``cancel``, ``logs``, ... still go to a daemon, if one runs). Eager mode is
process-wide while active: a thread's submit runs eagerly too. For all of these, test against
a real daemon (the ``asynctask_daemon`` pytest fixture).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import itertools
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

from asynctask import hooks
from asynctask.client._eager import HOOKS, AsyncRunner, Runner
from asynctask.errors import NotFound
from asynctask.executor.child import _after, _before, _describe, _describe_hook, _failure
from asynctask.executor.funcref import ImportFailure, import_function
from asynctask.executor.taskcontext import CURRENT, TaskContext
from asynctask.model import (
    DEFAULT_TENANT,
    PRIORITY_DEFAULT,
    RETRYABLE_KINDS,
    ErrorKind,
    TaskState,
    error_dict,
)
from asynctask.protocol.requests import TaskSpec
from asynctask.protocol.values import ValueEncodingError, pack_value, unpack_value

P = ParamSpec("P")
T = TypeVar("T")

#: The daemon's default ``[retry] retries``: what a task gets when nothing else sets it.
DEFAULT_RETRIES = 3


def _encode(value: Any, root: str = "value") -> bytes:
    """A value as the wire carries it (task arguments, a result), with the task value types
    (``protocol/values.py``): what a worker cannot encode fails here too."""
    return pack_value(value, root)


def _decode(data: bytes) -> Any:
    """``_encode``'s bytes back into a value, as the receiving side decodes them."""
    return unpack_value(data)


def _roundtrip(value: Any) -> Any:
    """``value`` as the other side of the wire would see it."""
    return _decode(_encode(value))


@dataclass
class EagerTask:
    """One task run in eager mode, with the fields ``status`` reports."""

    id: str
    tenant: str
    function: str
    queue: str
    priority: int
    retries: int
    labels: dict[str, str]
    created_at: float
    state: TaskState = TaskState.QUEUED
    attempts: int = 0
    result: bytes | None = None
    error: dict[str, Any] | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    started_at: float | None = None
    finished_at: float | None = None
    on_success: str | None = None
    on_failure: str | None = None
    #: The exception of the last failed attempt (what ``propagate=True`` raises).
    exception: BaseException | None = field(default=None, repr=False)

    def view(self) -> dict[str, Any]:
        """The task as a ``status`` reply's ``task`` map."""
        return {
            "id": self.id,
            "state": self.state.value,
            "tenant": self.tenant,
            "queue": self.queue,
            "function": self.function,
            "priority": self.priority,
            "attempts": self.attempts,
            "retries": self.retries,
            "result": self.result,
            "error": self.error,
            "errors": list(self.errors),
            "labels": dict(self.labels),
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }

    def info(self) -> dict[str, Any]:
        """What a destination gets: the finished task's ``id``, ``tenant``, ``state``,
        ``result``, ``error`` and ``attempts``, as the daemon gives it."""
        return {
            "id": self.id,
            "tenant": self.tenant,
            "state": self.state.value,
            "result": None if self.result is None else _decode(self.result),
            "error": self.error,
            "attempts": self.attempts,
        }


_AGAIN = frozenset({TaskState.FAILED, TaskState.CANCELLED, TaskState.EXPIRED})
_ids = itertools.count(1)


class EagerRunner:
    """The tasks of one ``eager()`` block and how they run (see the module docstring)."""

    def __init__(self, propagate: bool = False) -> None:
        self.propagate = propagate
        #: Every task run, by (tenant, ID), in the order submitted.
        self.tasks: dict[tuple[str, str], EagerTask] = {}
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"<EagerRunner tasks={len(self.tasks)} propagate={self.propagate}>"

    # -- what the clients call ------------------------------------------------------------------

    def submit(self, specs: list[TaskSpec]) -> list[tuple[str, str]]:
        return [self._run_sync(spec) for spec in specs]

    async def asubmit(self, specs: list[TaskSpec]) -> list[tuple[str, str]]:
        return [await self._run_async(spec) for spec in specs]

    def status(self, task_id: str, tenant: str) -> dict[str, Any]:
        task = self.tasks.get((tenant, task_id))
        if task is None:
            raise NotFound(f"task {task_id!r} not found in tenant {tenant!r} (eager mode)")
        return task.view()

    # -- running --------------------------------------------------------------------------------

    def _run_sync(self, spec: TaskSpec) -> tuple[str, str]:
        prepared = self._admit(spec)
        if isinstance(prepared, EagerTask):
            return prepared.id, prepared.tenant
        task, function, args, kwargs = prepared
        while not self._ended(task, self._attempt_sync(task, function, args, kwargs)):
            pass
        self._finish_sync(task)
        return task.id, task.tenant

    async def _run_async(self, spec: TaskSpec) -> tuple[str, str]:
        prepared = self._admit(spec)
        if isinstance(prepared, EagerTask):
            return prepared.id, prepared.tenant
        task, function, args, kwargs = prepared
        while not self._ended(task, await self._attempt_async(task, function, args, kwargs)):
            pass
        await self._finish_async(task)
        return task.id, task.tenant

    def _admit(
        self, spec: TaskSpec
    ) -> EagerTask | tuple[EagerTask, Callable[..., Any], list[Any], dict[str, Any]]:
        """The task a spec makes (or the existing one its ID names), its function and its
        arguments as the worker would decode them."""
        tenant = spec.tenant or DEFAULT_TENANT
        task_id = spec.id or f"eager-{next(_ids)}"
        with self._lock:
            existing = self.tasks.get((tenant, task_id))
            if existing is not None and existing.state not in _AGAIN:
                return existing
        failure: ImportFailure | None = None
        try:
            function: Callable[..., Any] | None = import_function(spec.function)
        except ImportFailure as exc:
            function, failure = None, exc
        code = spec.defaults.to_dict() if spec.defaults is not None else None
        if code is None and function is not None:
            declared = getattr(function, "__asynctask_defaults__", None)
            code = declared if isinstance(declared, dict) else None
        code = code or {}
        task = EagerTask(
            id=task_id,
            tenant=tenant,
            function=spec.function,
            queue=_first(spec.queue, code.get("queue"), tenant),
            priority=_first(spec.priority, code.get("priority"), PRIORITY_DEFAULT),
            retries=_first(spec.retries, code.get("retries"), DEFAULT_RETRIES),
            labels=dict(spec.labels or {}),
            created_at=time.time(),
            on_success=spec.on_success or code.get("on_success"),
            on_failure=spec.on_failure or code.get("on_failure"),
        )
        with self._lock:
            self.tasks[(tenant, task_id)] = task
        args, kwargs = _arguments(spec.payload)
        if function is None:  # as the worker reports it: failed, not retried
            assert failure is not None
            self._context(task)
            self._ended(task, {"ok": False, "error": _describe(failure)}, failure)
            return task
        return task, function, args, kwargs

    def _context(self, task: EagerTask) -> TaskContext:
        task.attempts += 1
        task.state = TaskState.RUNNING
        task.started_at = time.time()
        return TaskContext(task.id, task.tenant, task.attempts, dict(task.labels))

    def _attempt_sync(
        self, task: EagerTask, function: Callable[..., Any], args: list[Any], kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        context = self._context(task)
        token = CURRENT.set(context)
        try:
            refused = _hooks_before(context)
            if refused is not None:
                return refused
            try:
                value = function(*args, **kwargs)
                if isinstance(value, Coroutine):
                    value = _run_coroutine(value)
            except Exception as exc:
                task.exception = exc
                _after(context, exc)
                return _failure(function, exc)
            _after(context, None)
        finally:
            CURRENT.reset(token)
        return _success(value)

    async def _attempt_async(
        self, task: EagerTask, function: Callable[..., Any], args: list[Any], kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        context = self._context(task)
        token = CURRENT.set(context)
        try:
            refused = _hooks_before(context)
            if refused is not None:
                return refused
            try:
                value = function(*args, **kwargs)
                if isinstance(value, Coroutine):
                    value = await value
            except Exception as exc:
                task.exception = exc
                _after(context, exc)
                return _failure(function, exc)
            _after(context, None)
        finally:
            CURRENT.reset(token)
        return _success(value)

    def _ended(
        self, task: EagerTask, outcome: dict[str, Any], exception: BaseException | None = None
    ) -> bool:
        """Record an attempt's outcome; whether the task has ended."""
        if exception is not None:
            task.exception = exception
        now = time.time()
        if outcome.get("ok"):
            task.state = TaskState.SUCCEEDED
            task.result = outcome["result"]
            task.error = None
            task.finished_at = now
            return True
        error = dict(outcome["error"])
        task.errors.append(
            {
                "attempt": task.attempts,
                "kind": error.get("kind"),
                "type": error.get("type"),
                "message": error.get("message"),
                "started_at": task.started_at,
                "finished_at": now,
            }
        )
        task.error = error
        retryable = ErrorKind(error["kind"]) in RETRYABLE_KINDS
        if retryable and task.attempts <= task.retries:
            task.state = TaskState.SCHEDULED  # retried at once: eager mode does not wait
            return False
        task.state = TaskState.FAILED
        task.finished_at = now
        return True

    def _destination(self, task: EagerTask) -> TaskSpec | None:
        target = task.on_success if task.state is TaskState.SUCCEEDED else task.on_failure
        if not target:
            return None
        payload = _encode([[task.info()], {}])
        return TaskSpec(function=target, payload=payload, tenant=task.tenant)

    def _finish_sync(self, task: EagerTask) -> None:
        destination = self._destination(task)
        if destination is not None:
            self._run_sync(destination)
        self._raise_if_propagating(task)

    async def _finish_async(self, task: EagerTask) -> None:
        destination = self._destination(task)
        if destination is not None:
            await self._run_async(destination)
        self._raise_if_propagating(task)

    def _raise_if_propagating(self, task: EagerTask) -> None:
        if self.propagate and task.state is TaskState.FAILED and task.exception is not None:
            raise task.exception


def _first(*values: Any) -> Any:
    return next(value for value in values if value is not None)


def _arguments(payload: Any) -> tuple[list[Any], dict[str, Any]]:
    """``[args, kwargs]`` as the worker decodes a payload."""
    decoded = _decode(payload)
    return list(decoded[0]), dict(decoded[1])


def _hooks_before(context: TaskContext) -> dict[str, Any] | None:
    """The worker hooks (``asynctask/hooks.py``) as a worker runs them before an attempt: the
    ``on_worker_start`` ones not yet run in this process, then ``before_attempt``; the failed
    reply (kind ``hook``) if one raised, else None."""
    try:
        hooks.run_worker_start()
    except hooks.HookError as exc:
        return {"ok": False, "error": _describe_hook(exc)}
    reply, cause = _before(context)
    if reply is not None:  # as in the worker, the after_attempt hooks still run
        _after(context, cause)
    return reply


def _success(value: Any) -> dict[str, Any]:
    """An attempt's returned value, encoded for the wire, or the failure the worker reports
    for a value it cannot encode (not retried)."""
    try:
        return {"ok": True, "result": _encode(value, "result")}
    except ValueEncodingError as exc:
        error = error_dict(
            ErrorKind.BAD_RESULT, "TypeError", f"the return value cannot be encoded: {exc}"
        )
        return {"ok": False, "error": error}


def _run_coroutine(coroutine: Coroutine[Any, Any, T]) -> T:
    """An async task function's coroutine, run to its end from blocking code: on a new event
    loop here, or in a helper thread when this thread already runs one (a blocking
    ``Client`` used inside async code)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(1, thread_name_prefix="asynctask-eager") as pool:
        return pool.submit(asyncio.run, coroutine).result()


class _SyncSide:
    """``client._eager.Runner`` over an ``EagerRunner``."""

    def __init__(self, runner: EagerRunner) -> None:
        self._runner = runner

    def submit(self, specs: list[TaskSpec]) -> list[tuple[str, str]]:
        return self._runner.submit(specs)

    def status(self, task_id: str, tenant: str) -> dict[str, Any]:
        return self._runner.status(task_id, tenant)


class _AsyncSide:
    """``client._eager.AsyncRunner`` over an ``EagerRunner``."""

    def __init__(self, runner: EagerRunner) -> None:
        self._runner = runner

    async def submit(self, specs: list[TaskSpec]) -> list[tuple[str, str]]:
        return await self._runner.asubmit(specs)

    async def status(self, task_id: str, tenant: str) -> dict[str, Any]:
        return self._runner.status(task_id, tenant)


class eager:
    """Run submitted tasks at once, in this process, while active (see the module docstring).

    ``with eager() as tasks:`` gives the ``EagerRunner`` (``tasks.tasks`` holds every task run);
    ``@eager()`` on a test function, sync or ``async``, runs the whole test in eager mode.
    ``propagate=True``: a task that ends failed raises its last exception from the submit.
    Blocks nest; the outer one is active again when an inner one ends.
    """

    def __init__(self, *, propagate: bool = False) -> None:
        self.runner = EagerRunner(propagate)
        self._saved: list[tuple[Runner | None, AsyncRunner | None]] = []

    def __enter__(self) -> EagerRunner:
        self._saved.append((HOOKS.Runner, HOOKS.AsyncRunner))
        HOOKS.Runner = _SyncSide(self.runner)
        HOOKS.AsyncRunner = _AsyncSide(self.runner)
        return self.runner

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        HOOKS.Runner, HOOKS.AsyncRunner = self._saved.pop()

    def __call__(self, function: Callable[P, T]) -> Callable[P, T]:
        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                with eager(propagate=self.runner.propagate):
                    return await function(*args, **kwargs)

            return run_async  # type: ignore[return-value]

        @functools.wraps(function)
        def run(*args: P.args, **kwargs: P.kwargs) -> T:
            with eager(propagate=self.runner.propagate):
                return function(*args, **kwargs)

        return run
