"""Clients: ``AsyncClient`` (asyncio) and ``Client`` (blocking), sharing one sans-I/O core.

Everything that is not I/O - building request maps from Python arguments, validating options
before they leave the process, turning replies into ``TaskStatus`` objects or errors - lives in
``_Calls`` and is shared. The two clients differ only in how bytes move: ``AsyncClient`` pipelines
requests over one asyncio connection (a reader task matches replies to requests by ``rid``);
``Client`` does one blocking round trip at a time on a plain socket, which costs a producer
nothing beyond the syscalls (no thread hop per call, unlike a loop-in-a-thread wrapper).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import itertools
import socket as socketlib
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

from asynctask.errors import (
    AsynctaskError,
    DaemonUnavailable,
    ProtocolError,
    RemoteError,
    TaskNotSucceeded,
    UsageError,
)
from asynctask.model import (
    DEFAULT_TENANT,
    FINAL_STATES,
    TaskState,
    format_time,
    parse_duration,
    parse_time,
)
from asynctask.paths import resolve_socket
from asynctask.protocol import (
    DEFAULT_MAX_FRAME,
    PROTOCOL_VERSION,
    FrameDecoder,
    encode_frame,
    pack,
    unpack,
)
from asynctask.resources import RESOURCE_KEYS, Limits

C = TypeVar("C")


@dataclass(frozen=True, slots=True)
class TaskStatus:
    """A task as the daemon reported it. Times are epoch seconds; ``to_json`` gives ISO 8601."""

    id: str
    state: TaskState
    tenant: str
    queue: str
    function: str
    priority: int
    attempts: int
    retries: int
    result: Any
    error: dict[str, Any] | None
    labels: dict[str, str] = field(default_factory=dict)
    #: Each failed attempt's error, oldest first (``attempt``, ``kind``, ``type``, ``message``,
    #: ``started_at``, ``finished_at``); kept after a later attempt succeeds.
    errors: list[dict[str, Any]] = field(default_factory=list)
    #: Held by ``pause`` by selector (its state stays ``queued`` or ``scheduled``).
    paused: bool = False
    created_at: float | None = None
    due_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    #: The caller's trace ID given at submit, if any.
    trace_id: str | None = None
    #: Each ended attempt's stages, oldest first: ``attempt``, ``submitted``, ``eligible``,
    #: ``dispatched``, ``started`` (in the worker), ``finished`` (epoch seconds), and
    #: ``queue_wait`` and ``run_time`` (seconds).
    trace: list[dict[str, Any]] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def succeeded(self) -> bool:
        return self.state is TaskState.SUCCEEDED

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` shape of PRODUCT.md: ISO 8601 UTC times, labels as an object."""
        return {
            "id": self.id,
            "state": self.state.value,
            "tenant": self.tenant,
            "queue": self.queue,
            "function": self.function,
            "priority": self.priority,
            "attempts": self.attempts,
            "retries": self.retries,
            "result": _jsonable(self.result),
            "error": self.error,
            "errors": [_error_json(entry) for entry in self.errors],
            "paused": self.paused,
            "labels": dict(self.labels),
            "created_at": format_time(self.created_at),
            "due_at": format_time(self.due_at),
            "started_at": format_time(self.started_at),
            "finished_at": format_time(self.finished_at),
            "trace_id": self.trace_id,
            "trace": [_stage_json(entry) for entry in self.trace],
        }

    @classmethod
    def from_wire(cls, raw: Mapping[str, Any]) -> TaskStatus:
        result = raw.get("result")
        return cls(
            id=raw["id"],
            state=TaskState(raw["state"]),
            tenant=raw["tenant"],
            queue=raw["queue"],
            function=raw["function"],
            priority=raw["priority"],
            attempts=raw["attempts"],
            retries=raw.get("retries", 0),
            result=unpack(result) if isinstance(result, bytes) else None,
            error=raw.get("error"),
            labels=dict(raw.get("labels") or {}),
            errors=list(raw.get("errors") or []),
            paused=bool(raw.get("paused", False)),
            created_at=raw.get("created_at"),
            due_at=raw.get("due_at"),
            started_at=raw.get("started_at"),
            finished_at=raw.get("finished_at"),
            trace_id=raw.get("trace_id"),
            trace=list(raw.get("trace") or []),
        )


_STAGES = ("submitted", "eligible", "dispatched", "started", "finished")


def _stage_json(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A ``trace`` entry with its stage times as ISO 8601 (durations stay seconds)."""
    return {key: format_time(value) if key in _STAGES else value for key, value in entry.items()}


def _error_json(entry: Mapping[str, Any]) -> dict[str, Any]:
    """An ``errors`` entry with its times as ISO 8601, like the task's own."""
    times = ("started_at", "finished_at")
    return {key: format_time(value) if key in times else value for key, value in entry.items()}


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return value.hex()
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def function_ref(func: Any) -> str:
    """``module:qualname`` of a decorated or plain module-level function, or the string given."""
    if isinstance(func, str):
        return func
    ref = getattr(func, "__asynctask_ref__", None)
    if isinstance(ref, str):
        return ref
    module = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", None)
    if not module or not qualname or "<" in qualname:
        raise UsageError(f"{func!r} is not a module-level function; pass 'module:function'")
    if module == "__main__":
        raise UsageError(
            f"{qualname} is defined in __main__, which workers cannot import; "
            "move it into a module or pass 'module:function'"
        )
    return f"{module}:{qualname}"


_OPTION_NAMES = frozenset(
    {
        "task_id",
        "tenant",
        "queue",
        "priority",
        "delay",
        "run_at",
        "ttl",
        "retries",
        "timeout",
        "labels",
        "on_success",
        "on_failure",
        "trace_id",
        *RESOURCE_KEYS,
    }
)


class _Calls:
    """Request builders and reply parsers shared by both clients (no I/O)."""

    def __init__(self, tenant: str) -> None:
        self.tenant = tenant
        self._rids = itertools.count(1)
        self.max_frame = DEFAULT_MAX_FRAME  # the daemon's, once its ``hello`` reply says

    def request(self, op: str, **fields: Any) -> dict[str, Any]:
        return {"op": op, "rid": next(self._rids), **fields}

    def frame(self, request: dict[str, Any]) -> bytes:
        """``request`` as a frame; ``UsageError`` if it is over the daemon's frame limit, which
        would close the connection (the caller would see only a broken pipe)."""
        data = encode_frame(request)
        size = len(data) - 4  # the header is not counted
        if size > self.max_frame:
            raise UsageError(
                f"request too large: {size:,} bytes, over the daemon's frame limit of "
                f"{self.max_frame:,} bytes ([daemon] max_frame); pass big data by reference "
                "(a path or URL), not in the arguments"
            )
        return data

    def greeted(self, reply: Mapping[str, Any]) -> None:
        """Take the frame limit from the daemon's ``hello`` reply."""
        limit = reply.get("max_frame")
        if type(limit) is int and limit > 0:
            self.max_frame = limit

    def spec(
        self, func: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any] | None, **options: Any
    ) -> dict[str, Any]:
        unknown = set(options) - _OPTION_NAMES
        if unknown:
            raise UsageError(f"unknown submit option(s): {', '.join(sorted(unknown))}")
        defaults = getattr(func, "__asynctask_options__", None) or {}
        merged = {**defaults, **{k: v for k, v in options.items() if v is not None}}
        try:
            payload = pack([list(args), dict(kwargs or {})])
        except (TypeError, ValueError, OverflowError) as exc:
            raise UsageError(f"task arguments cannot be encoded with msgpack: {exc}") from None
        spec: dict[str, Any] = {
            "function": function_ref(func),
            "payload": payload,
            "tenant": merged.pop("tenant", self.tenant),
        }
        if "task_id" in merged:
            spec["id"] = merged.pop("task_id")
        for name in ("delay", "ttl", "timeout"):
            if name in merged:
                spec[name] = _seconds(merged.pop(name), name)
        if "run_at" in merged:
            spec["run_at"] = _epoch(merged.pop("run_at"))
        resources = {key: merged.pop(key) for key in RESOURCE_KEYS if key in merged}
        if resources:
            try:
                spec["resources"] = Limits.from_wire(resources).to_wire()
            except ValueError as exc:
                raise UsageError(str(exc)) from None
        spec.update(merged)
        limits = getattr(func, "__asynctask_limits__", None)
        if limits:
            spec["limits"] = limits
        return spec

    def hello(self) -> dict[str, Any]:
        return self.request("hello", version=PROTOCOL_VERSION)

    @staticmethod
    def reply(message: Mapping[str, Any]) -> dict[str, Any]:
        if message.get("ok") is True:
            return dict(message)
        raise AsynctaskError.from_wire(message.get("error"))

    @staticmethod
    def tasks(reply: Mapping[str, Any]) -> list[TaskStatus]:
        return [TaskStatus.from_wire(raw) for raw in reply["tasks"]]

    @staticmethod
    def task(reply: Mapping[str, Any]) -> TaskStatus:
        return TaskStatus.from_wire(reply["task"])

    @staticmethod
    def target(tenant: str | None, queue: str | None, function: Any) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        if tenant is not None:
            fields["tenant"] = tenant
        if queue is not None:
            fields["queue"] = queue
        if function is not None:
            fields["function"] = function_ref(function)
        return fields

    def pause_fields(
        self, tenant: str | None, queue: str | None, function: Any, tasks: dict[str, Any]
    ) -> tuple[dict[str, Any], str]:
        """The fields of a ``pause``/``resume`` and the reply key holding its count: a target
        (tenant, queue or function; "changed") or, with a task ID or task filter, the waiting
        tasks it matches ("tasks")."""
        unknown = set(tasks) - _TASK_FILTERS
        if unknown:
            raise UsageError(f"pause/resume take no {', '.join(sorted(unknown))}")
        if not any(value not in (None, (), {}, [], "") for value in tasks.values()):
            return self.target(tenant, queue, function), "changed"
        selector = _id_field({**tasks, "queue": queue, "function": function})
        if tenant is not None:
            selector["tenant"] = tenant
        return self.selector_fields(**selector), "tasks"

    def cron_fields(
        self,
        name: str,
        expr: str,
        func: Any,
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any] | None,
        tz: str | None,
        catch_up: str | None,
        options: dict[str, Any],
    ) -> dict[str, Any]:
        task = self.spec(func, args, kwargs, **options)
        tenant = task.pop("tenant")
        return {"tenant": tenant, "name": name, "expr": expr, "tz": tz, "catch_up": catch_up,
                "task": task}  # fmt: skip

    def selector_fields(self, **selector: Any) -> dict[str, Any]:
        """``list_fields`` without a limit, a function object allowed for ``function``, and
        the client's tenant unless another is named (as the command line defaults to it)."""
        selector.setdefault("tenant", self.tenant)
        if "limit" in selector:
            raise UsageError("cancel takes no limit: it touches every task the selector matches")
        function = selector.pop("function", None)
        fields = self.list_fields(**selector)
        fields.pop("limit", None)
        if function is not None:
            fields["function"] = function_ref(function)
        return fields

    def list_fields(self, **filters: Any) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        for name, value in filters.items():
            if value is None or value == () or value == {}:
                continue
            if name in ("since", "until"):
                value = _epoch(value)
            elif name == "state":
                value = [value] if isinstance(value, str) else list(value)
            fields[name] = value
        return fields


#: The built-in task function that runs a command (``asynctask.executor.command``).
COMMAND_REF = "asynctask.executor.command:run_command"

#: A ``list_page`` answer: the page's tasks, and the cursor of the next page (None: the last).
Page = tuple[list[TaskStatus], str | None]


def _command_args(argv: Sequence[str], final_exit_codes: Sequence[int]) -> tuple[Any, ...]:
    if isinstance(argv, str) or not argv or not all(isinstance(a, str) for a in argv):
        raise UsageError("a command is a non-empty list of strings, e.g. ['ffmpeg', '-i', 'a']")
    codes = list(final_exit_codes)
    if not all(type(code) is int for code in codes):
        raise UsageError("final_exit_codes must be integers")
    return (list(argv), codes) if codes else (list(argv),)


#: What makes ``pause``/``resume`` act on tasks one by one.
_TASK_FILTERS = frozenset({"task_id", "state", "prefix", "since", "until", "labels"})


def _id_field(selector: dict[str, Any]) -> dict[str, Any]:
    """``task_id=`` (as ``submit`` names it) is the wire's ``id``."""
    if "task_id" in selector:
        selector["id"] = selector.pop("task_id")
    return selector


def _seconds(value: Any, name: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise UsageError(f"{name}: {exc}") from None


def _epoch(value: Any) -> float:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise UsageError("run_at needs a timezone-aware datetime")
        return value.timestamp()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return parse_time(value)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    raise UsageError(f"not a time: {value!r}")


def _finished(status: TaskStatus) -> Any:
    if status.succeeded:
        return status.result
    error = status.error or {}
    detail = f": {error.get('type', '')}: {error.get('message', '')}" if error else ""
    raise TaskNotSucceeded(f"task {status.id} ended {status.state.value}{detail}", status)


@dataclass(frozen=True, slots=True)
class _Handle(Generic[C]):
    id: str
    tenant: str
    client: C

    def __repr__(self) -> str:
        return f"<TaskHandle {self.tenant}/{self.id}>"


class AsyncTaskHandle(_Handle["AsyncClient"]):
    async def status(self) -> TaskStatus:
        return await self.client.status(self.id, tenant=self.tenant)

    async def wait(self, timeout: float | None = None) -> TaskStatus:
        return await self.client.wait(self.id, tenant=self.tenant, timeout=timeout)

    async def result(self, timeout: float | None = None) -> Any:
        return _finished(await self.wait(timeout))


class TaskHandle(_Handle["Client"]):
    def status(self) -> TaskStatus:
        return self.client.status(self.id, tenant=self.tenant)

    def wait(self, timeout: float | None = None) -> TaskStatus:
        return self.client.wait(self.id, tenant=self.tenant, timeout=timeout)

    def result(self, timeout: float | None = None) -> Any:
        return _finished(self.wait(timeout))


class AsyncClient:
    """Talk to the daemon from asyncio code; one connection, requests pipelined.

    ``async with AsyncClient() as client: handle = await client.submit("mod:fn", 1, 2)``
    """

    def __init__(self, socket: str | Path | None = None, tenant: str = DEFAULT_TENANT) -> None:
        self.socket_path = resolve_socket(socket)
        self._calls = _Calls(tenant)
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._connecting: asyncio.Lock | None = None

    def __repr__(self) -> str:
        return f"<AsyncClient {self.socket_path} pending={len(self._pending)}>"

    async def __aenter__(self) -> AsyncClient:
        await self.connect()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def connect(self) -> None:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._writer is not None:
                return
            try:
                reader, writer = await asyncio.open_unix_connection(str(self.socket_path))
            except OSError as exc:
                raise DaemonUnavailable(
                    f"no daemon answering on {self.socket_path} ({exc.strerror or exc})"
                ) from None
            self._writer = writer
            self._reader_task = asyncio.create_task(self._read(reader))
            hello = self._calls.hello()
            self._calls.greeted(self._calls.reply(await self._roundtrip(hello)))

    async def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader_task
            self._reader_task = None

    async def _read(self, reader: asyncio.StreamReader) -> None:
        decoder = FrameDecoder()
        reason: AsynctaskError = DaemonUnavailable("the daemon closed the connection")
        try:
            while True:
                data = await reader.read(1 << 16)
                if not data:
                    break
                for message in decoder.feed(data):
                    future = self._pending.pop(message.get("rid"), None)  # type: ignore[arg-type]
                    if future is not None and not future.done():
                        future.set_result(message)
                    elif message.get("ok") is False and message.get("rid") is None:
                        reason = AsynctaskError.from_wire(message.get("error"))
        except ProtocolError as exc:
            reason = exc
        except OSError as exc:
            reason = DaemonUnavailable(f"connection to the daemon failed: {exc}")
        finally:
            writer, self._writer = self._writer, None
            if writer is not None:  # the daemon closed it (idle_timeout, or it stopped)
                writer.close()
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(reason)
            self._pending.clear()

    async def _roundtrip(self, request: dict[str, Any]) -> dict[str, Any]:
        writer = self._writer
        if writer is None:
            raise DaemonUnavailable("not connected to the daemon")
        data = self._calls.frame(request)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request["rid"]] = future
        writer.write(data)
        return await future

    async def _call(self, op: str, **fields: Any) -> dict[str, Any]:
        if self._writer is None:
            await self.connect()
        return self._calls.reply(await self._roundtrip(self._calls.request(op, **fields)))

    async def ping(self) -> dict[str, Any]:
        return await self._call("ping")

    async def submit(
        self, func: Any, *args: Any, kwargs: Mapping[str, Any] | None = None, **options: Any
    ) -> AsyncTaskHandle:
        spec = self._calls.spec(func, args, kwargs, **options)
        (status,) = self._calls.tasks(await self._call("submit", tasks=[spec]))
        return AsyncTaskHandle(status.id, status.tenant, self)

    async def submit_cmd(
        self, argv: Sequence[str], *, final_exit_codes: Sequence[int] = (), **options: Any
    ) -> AsyncTaskHandle:
        """Run a program as a task (same options as ``submit``); see ``Client.submit_cmd``."""
        return await self.submit(COMMAND_REF, *_command_args(argv, final_exit_codes), **options)

    async def submit_status(
        self, func: Any, *args: Any, kwargs: Mapping[str, Any] | None = None, **options: Any
    ) -> TaskStatus:
        """Like ``submit`` but returns the submitted task's full status."""
        spec = self._calls.spec(func, args, kwargs, **options)
        return self._calls.tasks(await self._call("submit", tasks=[spec]))[0]

    async def submit_many(self, calls: Iterable[Mapping[str, Any]]) -> list[AsyncTaskHandle]:
        """Submit many tasks in one request, all or none. Each call is a mapping with
        ``func`` and optional ``args``, ``kwargs`` and submit options."""
        specs = [_spec_of(self._calls, call) for call in calls]
        if not specs:
            return []
        statuses = self._calls.tasks(await self._call("submit", tasks=specs))
        return [AsyncTaskHandle(s.id, s.tenant, self) for s in statuses]

    async def status(self, task_id: str, tenant: str | None = None) -> TaskStatus:
        return self._calls.task(
            await self._call("status", id=task_id, tenant=tenant or self._calls.tenant)
        )

    async def wait(
        self, task_id: str, tenant: str | None = None, timeout: float | None = None
    ) -> TaskStatus:
        fields: dict[str, Any] = {"id": task_id, "tenant": tenant or self._calls.tenant}
        if timeout is not None:
            fields["timeout"] = timeout
        return self._calls.task(await self._call("wait", **fields))

    async def result(
        self, task_id: str, tenant: str | None = None, timeout: float | None = None
    ) -> Any:
        return _finished(await self.wait(task_id, tenant, timeout))

    async def list(self, **filters: Any) -> list[TaskStatus]:
        """History query: ``state``, ``tenant``, ``queue``, ``function``, ``prefix``, ``since``,
        ``until``, ``labels``, ``limit``; newest first."""
        return self._calls.tasks(await self._call("list", **self._calls.list_fields(**filters)))

    async def list_page(self, *, cursor: str | None = None, **filters: Any) -> Page:
        """One page of ``list``: its tasks and the cursor of the next page (``None`` after the
        last). Pass that cursor back with the same filters; tasks submitted meanwhile do not
        shift the pages (they sort before the first), so each task comes once."""
        reply = await self._call("list", **self._calls.list_fields(cursor=cursor, **filters))
        return self._calls.tasks(reply), reply.get("cursor")

    async def retry(self, **selector: Any) -> int:
        """Queue failed tasks (the dead-letter queue) again: ``task_id=`` for one, or the
        selector fields of ``cancel``; their attempt count goes on. Returns how many."""
        reply = await self._call("retry", **self._calls.selector_fields(**_id_field(selector)))
        return int(reply["retried"])

    async def delete(self, **selector: Any) -> int:
        """Remove finished tasks from the history (``task_id=`` or the selector fields of
        ``cancel``; ``state`` among the finished ones); their IDs may be used again."""
        reply = await self._call("delete", **self._calls.selector_fields(**_id_field(selector)))
        return int(reply["deleted"])

    async def cron_add(
        self,
        name: str,
        expr: str,
        func: Any,
        *args: Any,
        kwargs: Mapping[str, Any] | None = None,
        tz: str | None = None,
        catch_up: str | None = None,
        **options: Any,
    ) -> dict[str, Any]:
        """Submit ``func(*args, **kwargs)`` at every slot of ``expr`` (5 fields, or 6 with a
        leading seconds field) in ``tz``; ``catch_up`` "one" (default) or "skip" decides what
        slots missed while the daemon was down become. Each slot's task ID is
        ``cron:<name>:<slot>``. Replaces an entry of the same name."""
        fields = self._calls.cron_fields(name, expr, func, args, kwargs, tz, catch_up, options)
        return dict((await self._call("cron_add", **fields))["cron"])

    async def cron_list(self) -> builtins.list[dict[str, Any]]:
        return list((await self._call("cron_list"))["crons"])

    async def cron_remove(self, name: str, tenant: str | None = None) -> bool:
        reply = await self._call("cron_remove", name=name, tenant=tenant or self._calls.tenant)
        return bool(reply["removed"])

    async def cancel(self, **selector: Any) -> int:
        """Cancel every live task matching ``tenant``, ``state``, ``queue``, ``function``,
        ``prefix`` (task ID prefix), ``since``, ``until``, ``labels``; returns how many. Running
        attempts are stopped. One transaction: all of them or, on a crash, none."""
        reply = await self._call("cancel", **self._calls.selector_fields(**_id_field(selector)))
        return int(reply["cancelled"])

    async def pause(
        self,
        tenant: str | None = None,
        queue: str | None = None,
        function: Any = None,
        **tasks: Any,
    ) -> int:
        """Hold a tenant, one of its queues, or a function, including what is submitted later:
        returns 1 if it was not paused yet, else 0.

        Given ``task_id=`` or a task filter (``state``, ``prefix``, ``labels``, ``since``,
        ``until``; ``tenant``, ``queue`` and ``function`` then narrow it), hold the waiting tasks
        it matches now, one by one, in one transaction, and return how many."""
        fields, key = self._calls.pause_fields(tenant, queue, function, tasks)
        return int((await self._call("pause", **fields))[key])

    async def resume(
        self,
        tenant: str | None = None,
        queue: str | None = None,
        function: Any = None,
        **tasks: Any,
    ) -> int:
        """Undo ``pause`` (same arguments)."""
        fields, key = self._calls.pause_fields(tenant, queue, function, tasks)
        return int((await self._call("resume", **fields))[key])

    async def queues(self) -> dict[str, Any]:
        """Tenants, queues and functions with backlog, running, limits, AIMD and tokens: at
        most 10,000 rows a section, and ``more`` counts the rest per section."""
        return _report(await self._call("queues"))

    async def stats(
        self, tenant: str | None = None, queue: str | None = None, top: int | None = None
    ) -> dict[str, Any]:
        """Per tenant, queue and function: per-minute counts for the last hour, backlog and
        running, recent queue-wait and run-time percentiles; the pool; the last failures.
        Each section has its ``top`` rows by load (daemon default 50, at most 1000), the rest
        summed in ``more``; ``queue`` shows only the queues of that name."""
        return dict(await self._call("stats", tenant=tenant, queue=queue, top=top))

    async def metrics(self) -> str:
        """Every metric in the Prometheus text format (admins only)."""
        return str((await self._call("metrics"))["text"])

    async def reload(self) -> dict[str, Any]:
        """Replace the daemon's workers so the next attempts import task code anew (admins
        only); running attempts finish on the old code. ``{"workers": N}``: how many go."""
        return dict(await self._call("reload"))

    async def logs(
        self, task_id: str, tenant: str | None = None, offsets: Mapping[int, int] | None = None
    ) -> dict[str, Any]:
        """Captured output per attempt, from ``offsets`` on: ``{"state", "done", "attempts":
        [{"attempt", "offset", "data": bytes}]}``; pass the returned offsets to read on."""
        return dict(
            await self._call(
                "logs", id=task_id, tenant=tenant or self._calls.tenant, offsets=dict(offsets or {})
            )
        )

    async def inspect(self, task_id: str, tenant: str | None = None) -> dict[str, Any]:
        """A running task's worker: ``pid``, ``rss``, ``cpu_seconds``, ``open_files``,
        ``threads``, ``children`` and its threads' Python ``stack``."""
        return dict(await self._call("inspect", id=task_id, tenant=tenant or self._calls.tenant))


def _closed_by_daemon(sock: socketlib.socket) -> bool:
    """Whether the daemon has closed ``sock`` (EOF waiting to be read): one non-blocking peek."""
    try:
        return sock.recv(1, socketlib.MSG_PEEK | socketlib.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


class Client:
    """Blocking client: one round trip at a time on a plain Unix socket; thread-safe."""

    def __init__(
        self,
        socket: str | Path | None = None,
        tenant: str = DEFAULT_TENANT,
        connect_timeout: float = 5.0,
    ) -> None:
        self.socket_path = resolve_socket(socket)
        self._calls = _Calls(tenant)
        self._sock: socketlib.socket | None = None
        self._decoder = FrameDecoder()
        self._lock = threading.Lock()
        self._connect_timeout = connect_timeout

    def __repr__(self) -> str:
        return f"<Client {self.socket_path} connected={self._sock is not None}>"

    def __del__(self) -> None:
        # A client is often created once and never closed; its socket goes with it quietly.
        sock = getattr(self, "_sock", None)
        if sock is not None:
            sock.close()

    def __enter__(self) -> Client:
        self.connect()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def connect(self) -> None:
        with self._lock:
            self._connect_locked()

    def _connect_locked(self) -> None:
        if self._sock is not None:
            if not _closed_by_daemon(self._sock):
                return
            # Idle past ``[server] idle_timeout``: nothing was sent on it since, so the next
            # request goes on a new connection rather than failing with a broken pipe.
            self._sock.close()
            self._sock = None
        sock = socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_STREAM)
        sock.settimeout(self._connect_timeout)
        try:
            sock.connect(str(self.socket_path))
        except OSError as exc:
            sock.close()
            raise DaemonUnavailable(
                f"no daemon answering on {self.socket_path} ({exc.strerror or exc})"
            ) from None
        sock.settimeout(None)
        self._sock = sock
        self._decoder = FrameDecoder()
        self._calls.greeted(self._calls.reply(self._roundtrip(self._calls.hello())))

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None

    def _roundtrip(self, request: dict[str, Any]) -> dict[str, Any]:
        sock = self._sock
        assert sock is not None
        data = self._calls.frame(request)  # refused before anything is sent
        try:
            sock.sendall(data)
            while True:
                data = sock.recv(1 << 16)
                if not data:
                    raise DaemonUnavailable("the daemon closed the connection")
                for message in self._decoder.feed(data):
                    if message.get("rid") == request["rid"]:
                        return message
                    if message.get("ok") is False and message.get("rid") is None:
                        raise AsynctaskError.from_wire(message.get("error"))
        except (OSError, AsynctaskError) as exc:
            sock.close()
            self._sock = None
            if isinstance(exc, AsynctaskError):
                raise
            raise DaemonUnavailable(f"connection to the daemon failed: {exc}") from None

    def _call(self, op: str, **fields: Any) -> dict[str, Any]:
        with self._lock:
            self._connect_locked()
            reply = self._roundtrip(self._calls.request(op, **fields))
        return self._calls.reply(reply)

    def ping(self) -> dict[str, Any]:
        return self._call("ping")

    def submit(
        self, func: Any, *args: Any, kwargs: Mapping[str, Any] | None = None, **options: Any
    ) -> TaskHandle:
        spec = self._calls.spec(func, args, kwargs, **options)
        (status,) = self._calls.tasks(self._call("submit", tasks=[spec]))
        return TaskHandle(status.id, status.tenant, self)

    def submit_cmd(
        self, argv: Sequence[str], *, final_exit_codes: Sequence[int] = (), **options: Any
    ) -> TaskHandle:
        """Run a program as a task, with ``submit``'s options (retries, timeout, ...).

        Its stdout and stderr are the attempt's logs; exit code 0 succeeds with
        ``{"exit_code": 0}``, another fails the attempt and is retried, unless it is in
        ``final_exit_codes`` (then the task fails at once)."""
        return self.submit(COMMAND_REF, *_command_args(argv, final_exit_codes), **options)

    def submit_status(
        self, func: Any, *args: Any, kwargs: Mapping[str, Any] | None = None, **options: Any
    ) -> TaskStatus:
        """Like ``submit`` but returns the submitted task's full status."""
        spec = self._calls.spec(func, args, kwargs, **options)
        return self._calls.tasks(self._call("submit", tasks=[spec]))[0]

    def submit_many(self, calls: Iterable[Mapping[str, Any]]) -> list[TaskHandle]:
        """Submit many tasks in one request, all or none (see ``AsyncClient.submit_many``)."""
        specs = [_spec_of(self._calls, call) for call in calls]
        if not specs:
            return []
        statuses = self._calls.tasks(self._call("submit", tasks=specs))
        return [TaskHandle(s.id, s.tenant, self) for s in statuses]

    def status(self, task_id: str, tenant: str | None = None) -> TaskStatus:
        return self._calls.task(
            self._call("status", id=task_id, tenant=tenant or self._calls.tenant)
        )

    def wait(
        self, task_id: str, tenant: str | None = None, timeout: float | None = None
    ) -> TaskStatus:
        fields: dict[str, Any] = {"id": task_id, "tenant": tenant or self._calls.tenant}
        if timeout is not None:
            fields["timeout"] = timeout
        return self._calls.task(self._call("wait", **fields))

    def result(self, task_id: str, tenant: str | None = None, timeout: float | None = None) -> Any:
        return _finished(self.wait(task_id, tenant, timeout))

    def list(self, **filters: Any) -> list[TaskStatus]:
        """History query; the filters of ``AsyncClient.list``."""
        return self._calls.tasks(self._call("list", **self._calls.list_fields(**filters)))

    def list_page(self, *, cursor: str | None = None, **filters: Any) -> Page:
        """One page and the next page's cursor; see ``AsyncClient.list_page``."""
        reply = self._call("list", **self._calls.list_fields(cursor=cursor, **filters))
        return self._calls.tasks(reply), reply.get("cursor")

    def retry(self, **selector: Any) -> int:
        """Queue failed tasks again; see ``AsyncClient.retry``."""
        reply = self._call("retry", **self._calls.selector_fields(**_id_field(selector)))
        return int(reply["retried"])

    def delete(self, **selector: Any) -> int:
        """Remove finished tasks from the history; see ``AsyncClient.delete``."""
        reply = self._call("delete", **self._calls.selector_fields(**_id_field(selector)))
        return int(reply["deleted"])

    def cron_add(
        self,
        name: str,
        expr: str,
        func: Any,
        *args: Any,
        kwargs: Mapping[str, Any] | None = None,
        tz: str | None = None,
        catch_up: str | None = None,
        **options: Any,
    ) -> dict[str, Any]:
        """A periodic task; see ``AsyncClient.cron_add``."""
        fields = self._calls.cron_fields(name, expr, func, args, kwargs, tz, catch_up, options)
        return dict(self._call("cron_add", **fields)["cron"])

    def cron_list(self) -> builtins.list[dict[str, Any]]:
        return list(self._call("cron_list")["crons"])

    def cron_remove(self, name: str, tenant: str | None = None) -> bool:
        reply = self._call("cron_remove", name=name, tenant=tenant or self._calls.tenant)
        return bool(reply["removed"])

    def cancel(self, **selector: Any) -> int:
        """Cancel every live task the selector matches; see ``AsyncClient.cancel``."""
        fields = self._calls.selector_fields(**_id_field(selector))
        return int(self._call("cancel", **fields)["cancelled"])

    def pause(
        self,
        tenant: str | None = None,
        queue: str | None = None,
        function: Any = None,
        **tasks: Any,
    ) -> int:
        """Hold a target or the tasks a selector matches; see ``AsyncClient.pause``."""
        fields, key = self._calls.pause_fields(tenant, queue, function, tasks)
        return int(self._call("pause", **fields)[key])

    def resume(
        self,
        tenant: str | None = None,
        queue: str | None = None,
        function: Any = None,
        **tasks: Any,
    ) -> int:
        """Undo ``pause`` (same arguments)."""
        fields, key = self._calls.pause_fields(tenant, queue, function, tasks)
        return int(self._call("resume", **fields)[key])

    def queues(self) -> dict[str, Any]:
        """Tenants, queues and functions with backlog, running, limits, AIMD and tokens."""
        return _report(self._call("queues"))

    def stats(
        self, tenant: str | None = None, queue: str | None = None, top: int | None = None
    ) -> dict[str, Any]:
        """See ``AsyncClient.stats``."""
        return dict(self._call("stats", tenant=tenant, queue=queue, top=top))

    def metrics(self) -> str:
        """Every metric in the Prometheus text format (admins only)."""
        return str(self._call("metrics")["text"])

    def logs(
        self, task_id: str, tenant: str | None = None, offsets: Mapping[int, int] | None = None
    ) -> dict[str, Any]:
        """Captured output per attempt; see ``AsyncClient.logs``."""
        return dict(
            self._call(
                "logs", id=task_id, tenant=tenant or self._calls.tenant, offsets=dict(offsets or {})
            )
        )

    def inspect(self, task_id: str, tenant: str | None = None) -> dict[str, Any]:
        """A running task's worker; see ``AsyncClient.inspect``."""
        return dict(self._call("inspect", id=task_id, tenant=tenant or self._calls.tenant))

    def stop(self, drain: float | str | None = None) -> dict[str, Any]:
        """Ask the daemon to stop (admins only): running attempts may finish for ``drain``
        (default: its ``[daemon] drain``); what does not is queued again, never lost."""
        fields = {} if drain is None else {"drain": _seconds(drain, "drain")}
        return dict(self._call("stop", **fields))

    def reload(self) -> dict[str, Any]:
        """See ``AsyncClient.reload``."""
        return dict(self._call("reload"))


def _report(reply: Mapping[str, Any]) -> dict[str, Any]:
    """The ``queues`` reply's sections, and ``more`` (rows not shown, per section) if any."""
    return {key: reply[key] for key in ("tenants", "queues", "functions", "more") if key in reply}


def task_spec(call: Mapping[str, Any], tenant: str = DEFAULT_TENANT) -> dict[str, Any]:
    """The wire spec ``submit_many`` would send for one call (``func``, ``args``, ``kwargs``
    and submit options), or the ``UsageError`` it would raise. For a caller that checks a whole
    input before sending any of it, as ``asynctask submit --from-file`` does."""
    return _spec_of(_Calls(tenant), call)


def _spec_of(calls: _Calls, call: Mapping[str, Any]) -> dict[str, Any]:
    options = dict(call)
    if "func" not in options:
        raise UsageError("each call for submit_many needs a 'func'")
    func = options.pop("func")
    args = tuple(options.pop("args", ()))
    kwargs = options.pop("kwargs", None)
    return calls.spec(func, args, kwargs, **options)


# Remote errors a caller may want to catch by name.
__all__ = [
    "AsyncClient",
    "AsyncTaskHandle",
    "Client",
    "RemoteError",
    "TaskHandle",
    "TaskStatus",
]
