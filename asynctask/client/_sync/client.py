# Generated from asynctask/client/_async/client.py by scripts/unasync.py: do not edit.
"""The client's calls and its task handle, written once.

``_async/client.py`` is the source. ``_sync/client.py`` is generated from it by
``scripts/unasync.py``, which drops ``async`` and ``await`` and the ``Async`` prefix of names.
So a call added or fixed here is added or fixed in both, and ``make lint`` fails when the
generated file is stale: edit only the source, then run ``python scripts/unasync.py``. No
asyncio here: the I/O is in ``_connection.py`` (one class per style), everything else in
``_calls.py`` (no I/O at all).
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Unpack

from asynctask.client._calls import (
    COMMAND_REF,
    SUBMIT_REPLY,
    Page,
    TaskStatus,
    _Calls,
    _command_args,
    _finished,
    _id_field,
    _nodes,
    _report,
    _seconds,
    _specs_of,
)
from asynctask.client._connection import Connection
from asynctask.client._eager import HOOKS
from asynctask.client._options import (
    Duration,
    FunctionRef,
    ListFilters,
    Selector,
    SubmitOptions,
    TaskFilters,
)
from asynctask.model import DEFAULT_TENANT
from asynctask.paths import resolve_socket
from asynctask.protocol.requests import (
    CronRef,
    LogsRequest,
    StatsRequest,
    StopRequest,
    TaskRef,
    WaitRequest,
)


@dataclass(frozen=True, slots=True)
class TaskHandle:
    """A submitted task: its ``id`` and ``tenant``, and the client to ask about it."""

    id: str
    tenant: str
    client: Client

    def __repr__(self) -> str:
        return f"<TaskHandle {self.tenant}/{self.id}>"

    def status(self) -> TaskStatus:
        return self.client.status(self.id, tenant=self.tenant)

    def wait(self, timeout: float | None = None) -> TaskStatus:
        return self.client.wait(self.id, tenant=self.tenant, timeout=timeout)

    def result(self, timeout: float | None = None) -> Any:
        """The task's result once it succeeded; ``TaskNotSucceeded`` if it ended otherwise.
        ``Any``: it comes back through msgpack, so a tuple is a list (not the function's type)."""
        return _finished(self.wait(timeout))


class Client:
    """Talk to the daemon over one Unix socket connection, opened at the first call.

    ``with Client() as client: handle = client.submit("mod:fn", 1, 2)``

    The asyncio client pipelines requests, so many coroutines may share one; the blocking
    client does one round trip at a time, is thread-safe, and reconnects when the daemon
    closed an idle connection.
    """

    def __init__(
        self,
        socket: str | Path | None = None,
        tenant: str = DEFAULT_TENANT,
        connect_timeout: float = 5.0,
    ) -> None:
        self.socket_path = resolve_socket(socket)
        self._calls = _Calls(tenant)
        self._connection = Connection(self.socket_path, self._calls, connect_timeout)

    def __repr__(self) -> str:
        return f"<Client {self.socket_path} {self._connection.summary}>"

    def __enter__(self) -> Client:
        self.connect()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def connect(self) -> None:
        """Connect and greet the daemon now (calls do it on demand); ``DaemonUnavailable``
        if nothing answers on the socket. In eager mode there is nothing to connect to."""
        if HOOKS.Runner is not None:
            return
        self._connection.connect()

    def close(self) -> None:
        self._connection.close()

    def _call(self, op: str, **fields: Any) -> dict[str, Any]:
        reply = self._connection.call(self._calls.request(op, **fields))
        return self._calls.reply(reply)

    def ping(self) -> dict[str, Any]:
        """The daemon's version, uptime and task counts (``{"tasks": {"live": N, ...}}``)."""
        return self._call("ping")

    def submit(
        self,
        func: FunctionRef,
        *args: Any,
        kwargs: Mapping[str, Any] | None = None,
        **options: Unpack[SubmitOptions],
    ) -> TaskHandle:
        """Submit ``func(*args, **kwargs)``; ``func`` is ``"module:function"`` or a module-level
        (decorated) function, whose ``@asynctask.task`` defaults the ``options`` override."""
        spec = self._calls.checked_call(func, args, kwargs, options)
        eager = HOOKS.Runner  # asynctask.testing.eager(): run it here and now
        if eager is not None:
            ((task_id, tenant),) = eager.submit([spec])
            return TaskHandle(task_id, tenant, self)
        request = self._calls.request("submit", tasks=[spec], brief=True)
        (task,) = self._calls.submitted(self._connection.call(request, SUBMIT_REPLY))
        return TaskHandle(task.id, task.tenant, self)

    def submit_cmd(
        self,
        argv: Sequence[str],
        *,
        final_exit_codes: Sequence[int] = (),
        **options: Unpack[SubmitOptions],
    ) -> TaskHandle:
        """Run a program as a task, with ``submit``'s options (retries, timeout, ...).

        Its stdout and stderr are the attempt's logs; exit code 0 succeeds with
        ``{"exit_code": 0}``, another fails the attempt and is retried, unless it is in
        ``final_exit_codes`` (then the task fails at once)."""
        return self.submit(COMMAND_REF, *_command_args(argv, final_exit_codes), **options)

    def submit_status(
        self,
        func: FunctionRef | None,
        *args: Any,
        kwargs: Mapping[str, Any] | None = None,
        **options: Unpack[SubmitOptions],
    ) -> TaskStatus:
        """Like ``submit`` but returns the submitted task's full status.

        ``func`` may be typed ``None`` (a ``UsageError`` at run time) only because
        ``asynctask submit`` passes its FUNC without narrowing it; tighten it when that does."""
        spec = self._calls.checked_call(func, args, kwargs, options)
        eager = HOOKS.Runner
        if eager is not None:
            ((task_id, tenant),) = eager.submit([spec])
            return self.status(task_id, tenant)
        return self._calls.tasks(self._call("submit", tasks=[spec]))[0]

    def submit_many(self, calls: Iterable[Mapping[str, Any]]) -> list[TaskHandle]:
        """Submit many tasks in one request, all or none. Each call is a mapping with
        ``func`` and optional ``args``, ``kwargs`` and submit options (see ``task_spec``)."""
        specs = _specs_of(self._calls, calls)
        if not specs:
            return []
        eager = HOOKS.Runner
        if eager is not None:
            return [TaskHandle(i, t, self) for i, t in eager.submit(specs)]
        request = self._calls.request("submit", tasks=specs, brief=True)
        tasks = self._calls.submitted(self._connection.call(request, SUBMIT_REPLY))
        return [TaskHandle(task.id, task.tenant, self) for task in tasks]

    def status(self, task_id: str, tenant: str | None = None) -> TaskStatus:
        eager = HOOKS.Runner
        if eager is not None:
            return TaskStatus.from_wire(eager.status(task_id, tenant or self._calls.tenant))
        return self._calls.task(
            self._call(
                "status",
                **self._calls.fields(TaskRef, id=task_id, tenant=tenant or self._calls.tenant),
            )
        )

    def wait(
        self, task_id: str, tenant: str | None = None, timeout: float | None = None
    ) -> TaskStatus:
        """The task once it has ended; ``WaitTimeout`` after ``timeout`` seconds."""
        if HOOKS.Runner is not None:  # an eager task has ended by the time it is known
            return self.status(task_id, tenant)
        fields = self._calls.fields(
            WaitRequest, id=task_id, tenant=tenant or self._calls.tenant, timeout=timeout
        )
        return self._calls.task(self._call("wait", **fields))

    def result(self, task_id: str, tenant: str | None = None, timeout: float | None = None) -> Any:
        """``wait``, then the result; ``TaskNotSucceeded`` if the task ended otherwise."""
        return _finished(self.wait(task_id, tenant, timeout))

    def list(self, **filters: Unpack[ListFilters]) -> builtins.list[TaskStatus]:
        """History query: ``state``, ``tenant``, ``queue``, ``function``, ``prefix``, ``since``,
        ``until``, ``labels``, ``trace_id``, ``limit``; newest first."""
        return self._calls.tasks(self._call("list", **self._calls.list_fields(**filters)))

    def list_page(self, *, cursor: str | None = None, **filters: Unpack[ListFilters]) -> Page:
        """One page of ``list``: its tasks and the cursor of the next page (``None`` after the
        last). Pass that cursor back with the same filters; tasks submitted meanwhile do not
        shift the pages (they sort before the first), so each task comes once."""
        reply = self._call("list", **self._calls.list_fields(cursor=cursor, **filters))
        return self._calls.tasks(reply), reply.get("cursor")

    def retry(self, **selector: Unpack[Selector]) -> int:
        """Queue failed tasks (the dead-letter queue) again: ``task_id=`` for one, or the
        selector fields of ``cancel``; their attempt count goes on. Returns how many."""
        fields = self._calls.selector_fields(**_id_field(selector))
        return int((self._call("retry", **fields))["retried"])

    def delete(self, **selector: Unpack[Selector]) -> int:
        """Remove finished tasks from the history (``task_id=`` or the selector fields of
        ``cancel``; ``state`` among the finished ones); their IDs may be used again."""
        fields = self._calls.selector_fields(**_id_field(selector))
        return int((self._call("delete", **fields))["deleted"])

    def cron_add(
        self,
        name: str,
        expr: str,
        func: FunctionRef,
        *args: Any,
        kwargs: Mapping[str, Any] | None = None,
        tz: str | None = None,
        catch_up: str | None = None,
        **options: Unpack[SubmitOptions],
    ) -> dict[str, Any]:
        """Submit ``func(*args, **kwargs)`` at every slot of ``expr`` (5 fields, or 6 with a
        leading seconds field) in ``tz``; ``catch_up`` "one" (default) or "skip" decides what
        slots missed while the daemon was down become. Each slot's task ID is
        ``cron:<name>:<slot>``. Replaces an entry of the same name."""
        fields = self._calls.cron_fields(name, expr, func, args, kwargs, tz, catch_up, options)
        return dict((self._call("cron_add", **fields))["cron"])

    def cron_list(self) -> builtins.list[dict[str, Any]]:
        return list((self._call("cron_list"))["crons"])

    def cron_remove(self, name: str, tenant: str | None = None) -> bool:
        fields = self._calls.fields(CronRef, name=name, tenant=tenant or self._calls.tenant)
        reply = self._call("cron_remove", **fields)
        return bool(reply["removed"])

    def cancel(self, **selector: Unpack[Selector]) -> int:
        """Cancel every live task matching ``tenant``, ``state``, ``queue``, ``function``,
        ``prefix`` (task ID prefix), ``since``, ``until``, ``labels``, or the one ``task_id``;
        returns how many. Running attempts are stopped. One transaction: all of them or, on a
        crash, none."""
        fields = self._calls.selector_fields(**_id_field(selector))
        return int((self._call("cancel", **fields))["cancelled"])

    def pause(
        self,
        tenant: str | None = None,
        queue: str | None = None,
        function: FunctionRef | None = None,
        **tasks: Unpack[TaskFilters],
    ) -> int:
        """Hold a tenant, one of its queues, or a function, including what is submitted later:
        returns 1 if it was not paused yet, else 0.

        Given ``task_id=`` or a task filter (``state``, ``prefix``, ``labels``, ``since``,
        ``until``; ``tenant``, ``queue`` and ``function`` then narrow it), hold the waiting tasks
        it matches now, one by one, in one transaction, and return how many."""
        fields, key = self._calls.pause_fields(tenant, queue, function, tasks)
        return int((self._call("pause", **fields))[key])

    def resume(
        self,
        tenant: str | None = None,
        queue: str | None = None,
        function: FunctionRef | None = None,
        **tasks: Unpack[TaskFilters],
    ) -> int:
        """Undo ``pause`` (same arguments)."""
        fields, key = self._calls.pause_fields(tenant, queue, function, tasks)
        return int((self._call("resume", **fields))[key])

    def queues(self) -> dict[str, Any]:
        """Tenants, queues and functions with backlog, running, limits, AIMD and tokens: at
        most 10,000 rows a section, and ``more`` counts the rest per section."""
        return _report(self._call("queues"))

    def stats(
        self, tenant: str | None = None, queue: str | None = None, top: int | None = None
    ) -> dict[str, Any]:
        """Per tenant, queue and function: per-minute counts for the last hour, backlog and
        running, recent queue-wait and run-time percentiles; the pool; the last failures.
        Each section has its ``top`` rows by load (daemon default 50, at most 1000), the rest
        summed in ``more``; ``queue`` shows only the queues of that name."""
        fields = self._calls.fields(StatsRequest, tenant=tenant, queue=queue, top=top)
        return dict(self._call("stats", **fields))

    def nodes(self) -> dict[str, Any]:
        """The live daemons: ``{"cluster", "me", "partitions", "lease", "nodes": [{"node",
        "host", "pid", "started_at", "heartbeat_at", "age", "running", "partitions", "me"}],
        "unowned"}``; on SQLite ``cluster`` is false and the one node is ``local``."""
        return _nodes(self._call("nodes"))

    def web_token(self) -> dict[str, Any]:
        """A login token for the web console, valid for the tenants this caller may act for:
        ``{"token", "expires_at", "url", "login_url"}`` (docs/web-console.md)."""
        return dict(self._call("web_token"))

    def metrics(self) -> str:
        """Every metric in the Prometheus text format (admins only)."""
        return str((self._call("metrics"))["text"])

    def reload(self) -> dict[str, Any]:
        """Replace the daemon's workers so the next attempts import task code anew (admins
        only); running attempts finish on the old code. ``{"workers": N}``: how many go."""
        return dict(self._call("reload"))

    def stop(self, drain: Duration | None = None) -> dict[str, Any]:
        """Ask the daemon to stop (admins only): running attempts may finish for ``drain``
        (default: its ``[daemon] drain``); what does not is queued again, never lost."""
        seconds = None if drain is None else _seconds(drain, "drain")
        return dict(self._call("stop", **self._calls.fields(StopRequest, drain=seconds)))

    def logs(
        self, task_id: str, tenant: str | None = None, offsets: Mapping[int, int] | None = None
    ) -> dict[str, Any]:
        """Captured output per attempt, from ``offsets`` on: ``{"state", "done", "attempts":
        [{"attempt", "offset", "data": bytes}]}``; pass the returned offsets to read on."""
        fields = self._calls.fields(
            LogsRequest,
            id=task_id,
            tenant=tenant or self._calls.tenant,
            offsets=dict(offsets or {}),
        )
        return dict(self._call("logs", **fields))

    def inspect(self, task_id: str, tenant: str | None = None) -> dict[str, Any]:
        """A running task's worker: ``pid``, ``rss``, ``cpu_seconds``, ``open_files``,
        ``threads``, ``children`` and its threads' Python ``stack``."""
        fields = self._calls.fields(TaskRef, id=task_id, tenant=tenant or self._calls.tenant)
        return dict(self._call("inspect", **fields))
