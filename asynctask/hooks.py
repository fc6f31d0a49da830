"""Worker hooks: code a task module registers to run around its worker's life and attempts.

Frameworks build on these (a Django app closes its database connections after each attempt,
a FastAPI project opens a client session once per worker)::

    @asynctask.on_worker_start
    def setup() -> None: ...            # once per worker process, before its first attempt

    @asynctask.before_attempt
    def before(ctx: asynctask.TaskContext) -> None: ...

    @asynctask.after_attempt
    def after(ctx: asynctask.TaskContext, error: BaseException | None) -> None: ...

Theory of operation
-------------------
Hooks are registered by importing the module that defines them, in the process that will run
them: the worker. The fork server (``executor/zygote.py``) never imports task code, so each
worker process starts with no hooks at all, and a worker imports a task's module when it
first runs one of that module's functions. "Worker start" therefore means *the first
attempt in this process that sees the hook*: an ``on_worker_start`` hook registered while a
task's module is imported runs right after that import, before the attempt that caused it,
and never again in that process. A hook registered later (a module the task imports lazily
while it runs) runs before the next attempt. Registering one outside a worker - in a client
program, in a test that calls the function directly - only records it; nothing runs it
(``asynctask.testing`` may, see ``run_worker_start`` below).

Hooks run in registration order, in the thread that runs the attempt (with
``[workers] concurrency`` > 1 a sync task runs in a thread of the worker's pool, and so do its
hooks, so per-thread state such as a database connection is the task's own), with
``current_task()`` set. They run for async tasks too, before the coroutine starts and after it
ends. Hooks are plain functions; one that returns an awaitable is an error.

When a hook raises
------------------
* ``on_worker_start``: the attempt fails (error kind ``hook``, retryable like an exception: a
  database that was down may be up for the retry) and the hook stays pending, so it is tried
  again before this worker's next attempt. Hooks that already succeeded do not run again.
* ``before_attempt``: the attempt fails with kind ``hook`` and the task function is not called.
  ``asynctask.Fail`` and ``asynctask.Throttled`` keep their meaning (not retried; retried with
  backoff), as they do when the task raises them. The ``after_attempt`` hooks still run, with
  that error, so whatever the earlier ``before_attempt`` hooks opened is closed.
* ``after_attempt``: the error and its traceback go to the attempt's log, the other
  ``after_attempt`` hooks still run, and the attempt's outcome stands. The task has already
  done its work; failing it here would retry it, and repeat its side effects, for a fault in
  the clean-up.

This module is stdlib only: the worker child imports it at start-up.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Final, TypeVar

from asynctask.executor.taskcontext import TaskContext

WorkerStartHook = Callable[[], None]
BeforeAttemptHook = Callable[[TaskContext], None]
AfterAttemptHook = Callable[[TaskContext, "BaseException | None"], None]

H = TypeVar("H", bound=Callable[..., None])


class HookError(Exception):
    """A hook raised; raised by ``run_worker_start`` and ``run_before_attempt`` for the worker,
    which fails the attempt with error kind ``hook``. ``cause`` is what the hook raised."""

    def __init__(self, stage: str, hook: Callable[..., object], cause: BaseException) -> None:
        self.stage = stage
        self.hook = hook_name(hook)
        self.cause = cause
        super().__init__(f"{stage} hook {self.hook} raised {type(cause).__name__}: {cause}")


class _Registry:
    """The hooks this process has seen, and which ``on_worker_start`` hooks already ran."""

    def __init__(self) -> None:
        self.worker_start: list[WorkerStartHook] = []
        self.before: list[BeforeAttemptHook] = []
        self.after: list[AfterAttemptHook] = []
        self.started = 0  # worker_start[:started] ran successfully in this process

    def __repr__(self) -> str:
        return (
            f"<hooks worker_start={len(self.worker_start)} (ran {self.started}) "
            f"before_attempt={len(self.before)} after_attempt={len(self.after)}>"
        )


REGISTRY: Final = _Registry()


def _add(hooks: list[H], hook: H, stage: str) -> H:
    if not callable(hook):
        raise TypeError(f"@asynctask.{stage} takes a function, not {type(hook).__name__}")
    if inspect.iscoroutinefunction(hook):
        raise TypeError(f"@asynctask.{stage} takes a plain function, not an async one: {hook!r}")
    if hook not in hooks:  # a module imported twice under one name registers once
        hooks.append(hook)
    return hook


def on_worker_start(hook: WorkerStartHook) -> WorkerStartHook:
    """Run ``hook()`` once in each worker process, before the first attempt it runs after the
    hook was registered (see the module docstring). Returns ``hook`` unchanged."""
    return _add(REGISTRY.worker_start, hook, "on_worker_start")


def before_attempt(hook: BeforeAttemptHook) -> BeforeAttemptHook:
    """Run ``hook(ctx)`` before each attempt in this worker; raising fails the attempt."""
    return _add(REGISTRY.before, hook, "before_attempt")


def after_attempt(hook: AfterAttemptHook) -> AfterAttemptHook:
    """Run ``hook(ctx, error)`` after each attempt (``error``: what the task or a hook raised,
    or the result's encoding error; ``None`` on success); raising is logged, not fatal."""
    return _add(REGISTRY.after, hook, "after_attempt")


def run_worker_start() -> None:
    """Run the ``on_worker_start`` hooks not yet run in this process; ``HookError`` for the
    first that raises (it stays pending, as do the ones after it)."""
    registry = REGISTRY
    while registry.started < len(registry.worker_start):
        hook = registry.worker_start[registry.started]
        _call("on_worker_start", hook)
        registry.started += 1


def run_before_attempt(context: TaskContext) -> None:
    """Run every ``before_attempt`` hook; ``HookError`` for the first that raises (the rest
    do not run)."""
    for hook in list(REGISTRY.before):
        _call("before_attempt", hook, context)


def run_after_attempt(
    context: TaskContext, error: BaseException | None
) -> list[tuple[str, BaseException]]:
    """Run every ``after_attempt`` hook, whatever each does; the hooks that raised (name and
    exception), for the caller to log."""
    failures: list[tuple[str, BaseException]] = []
    for hook in list(REGISTRY.after):
        try:
            _call("after_attempt", hook, context, error)
        except HookError as exc:
            failures.append((exc.hook, exc.cause))
    return failures


def _call(stage: str, hook: Callable[..., object], *args: object) -> None:
    try:
        returned = hook(*args)
        if inspect.isawaitable(returned):
            close = getattr(returned, "close", None)
            if callable(close):
                close()  # never awaited: no "coroutine was never awaited" warning
            raise TypeError("a hook must be a plain function; this one returned an awaitable")
    except Exception as exc:
        raise HookError(stage, hook, exc) from exc


def hook_name(hook: Callable[..., object]) -> str:
    """``module:qualname`` of a hook, for errors and logs."""
    module = getattr(hook, "__module__", None) or "?"
    qualname = getattr(hook, "__qualname__", None) or repr(hook)
    return f"{module}:{qualname}"
