"""Everything the clients do that is not I/O, shared by ``AsyncClient`` and ``Client``.

Building requests from Python arguments with the wire schema's Structs
(``asynctask.protocol.requests``, the very definitions the daemon checks requests with), so a
mistake is the daemon's own ``UsageError`` raised here rather than a refused request; turning
replies into ``TaskStatus`` objects or errors. The clients (``_async/client.py``, and
``_sync/client.py`` generated from it) call these; the connections in ``_connection.py`` move
the bytes.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import msgspec

from asynctask.client._options import SUBMIT_OPTIONS, TASK_FILTERS
from asynctask.errors import (
    AsynctaskError,
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
from asynctask.protocol import DEFAULT_MAX_FRAME, PROTOCOL_VERSION, pack
from asynctask.protocol.requests import (
    CronAddRequest,
    ListRequest,
    PauseTarget,
    SelectorRequest,
    TaskSpec,
    WireStruct,
    decode,
    encode_request,
    to_wire,
)
from asynctask.protocol.values import (
    ValueEncodingError,
    pack_arguments,
    to_jsonable,
    unpack_value,
)
from asynctask.resources import RESOURCE_KEYS, Limits


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
        """The ``--json`` shape (docs/contract.md, "JSON output"): ISO 8601 UTC times, labels
        as an object."""
        return {
            "id": self.id,
            "state": self.state.value,
            "tenant": self.tenant,
            "queue": self.queue,
            "function": self.function,
            "priority": self.priority,
            "attempts": self.attempts,
            "retries": self.retries,
            "result": to_jsonable(self.result),
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
            result=unpack_value(result, lenient=True) if isinstance(result, bytes) else None,
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


class Reply(msgspec.Struct):
    """The envelope every reply has, all a connection reads of one to match it to its request
    and to see a connection-level error (``rid`` None). A call whose reply the client decodes
    typed (``SUBMIT_REPLY``) subclasses it; others are decoded to plain maps."""

    rid: Any = None
    ok: Any = None
    error: Any = None


class Submitted(msgspec.Struct):
    """What ``submit`` and ``submit_many`` keep of each task of the reply: its handle."""

    id: str
    tenant: str


class SubmitReply(Reply):
    """A ``submit`` reply as the handles need it; the tasks' other fields are skipped unread,
    so a producer does not build a ``TaskStatus`` per task only to drop it."""

    tasks: list[Submitted] = []


#: The decoder of ``SubmitReply`` (``submit_status`` still reads the whole status).
SUBMIT_REPLY: Final = msgspec.msgpack.Decoder(SubmitReply)


_STAGES = ("submitted", "eligible", "dispatched", "started", "finished")


def _stage_json(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A ``trace`` entry with its stage times as ISO 8601 (durations stay seconds)."""
    return {key: format_time(value) if key in _STAGES else value for key, value in entry.items()}


def _error_json(entry: Mapping[str, Any]) -> dict[str, Any]:
    """An ``errors`` entry with its times as ISO 8601, like the task's own."""
    times = ("started_at", "finished_at")
    return {key: format_time(value) if key in times else value for key, value in entry.items()}


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


class _Calls:
    """Request builders and reply parsers shared by both clients (no I/O)."""

    def __init__(self, tenant: str) -> None:
        self.tenant = tenant
        self._rids = itertools.count(1)
        self.max_frame = DEFAULT_MAX_FRAME  # the daemon's, once its ``hello`` reply says
        #: ``checked_call``'s specs already checked, by function reference and options.
        self._checked: dict[tuple[Any, ...], TaskSpec] = {}

    def request(self, op: str, **fields: Any) -> dict[str, Any]:
        return {"op": op, "rid": next(self._rids), **fields}

    def frame(self, request: dict[str, Any]) -> bytearray:
        """``request`` as a frame; ``UsageError`` if it is over the daemon's frame limit, which
        would close the connection (the caller would see only a broken pipe)."""
        data = encode_request(request)
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

    @staticmethod
    def fields(kind: type[WireStruct], **fields: Any) -> dict[str, Any]:
        """A request's fields checked as a ``kind`` (``UsageError`` as the daemon words it), in
        wire form."""
        return to_wire(decode(kind, fields))

    def spec(
        self, func: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any] | None, **options: Any
    ) -> dict[str, Any]:
        """The wire spec of one call, as built (``checked`` checks it)."""
        return self.spec_of(func, args, kwargs, options)

    def spec_of(
        self,
        func: Any,
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any] | None,
        options: Mapping[str, Any],
    ) -> dict[str, Any]:
        """``spec`` with the options in a map (``submit_many``'s calls), left unchanged."""
        if not options.keys() <= SUBMIT_OPTIONS:
            if not all(isinstance(name, str) for name in options):
                raise TypeError("keywords must be strings")  # as ``**options`` refuses them
            unknown = set(options) - SUBMIT_OPTIONS
            raise UsageError(f"unknown submit option(s): {', '.join(sorted(unknown))}")
        merged = {k: v for k, v in options.items() if v is not None}
        plain = type(func) is str  # no decorator's defaults or limits to look up
        payload = _payload(args, kwargs)
        spec: dict[str, Any] = {
            "function": func if plain else function_ref(func),
            "payload": payload,
            "tenant": merged.pop("tenant", self.tenant),
        }
        if not merged:
            return spec if plain else _with_code(spec, func)
        if "task_id" in merged:
            spec["id"] = merged.pop("task_id")
        for name in ("delay", "ttl", "timeout"):
            if name in merged:
                spec[name] = _seconds(merged.pop(name), name)
        if "run_at" in merged:
            spec["run_at"] = _epoch(merged.pop("run_at"))
        if not RESOURCE_KEYS.isdisjoint(merged):
            resources = {key: merged.pop(key) for key in RESOURCE_KEYS if key in merged}
            try:
                spec["resources"] = Limits.from_wire(resources).to_wire()
            except ValueError as exc:
                raise UsageError(str(exc)) from None
        spec.update(merged)
        return spec if plain else _with_code(spec, func)

    def checked_call(
        self,
        func: Any,
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any] | None,
        options: Mapping[str, Any],
    ) -> TaskSpec:
        """``checked_spec(spec_of(...))``: the checked spec of one ``submit``.

        A program submitting to one ``"module:function"`` with the same options call after
        call gets the spec checked the first time again, with the new arguments' payload:
        everything else in it follows from the reference and the options alone, and a spec
        is remembered only once checked. Options are told apart by type as well as value
        (``priority=True`` is refused where ``priority=1`` is not, and ``True == 1``); a
        call with an unhashable option (``labels``) or a function object is checked anew."""
        if type(func) is not str:
            return self.checked_spec(self.spec_of(func, args, kwargs, options))
        try:
            key = (
                func,
                self.tenant,
                *[(name, type(value), value) for name, value in options.items()],
            )
            known = self._checked.get(key)
        except TypeError:  # an unhashable option value
            return self.checked_spec(self.spec_of(func, args, kwargs, options))
        if known is None:
            spec = self.checked_spec(self.spec_of(func, args, kwargs, options))
            if len(self._checked) >= _MAX_CHECKED:
                self._checked.clear()
            self._checked[key] = spec
            return spec
        spec = copy.copy(known)
        spec.payload = _payload(args, kwargs)
        return spec

    @staticmethod
    def checked(spec: Mapping[str, Any]) -> dict[str, Any]:
        """A wire spec checked as the daemon checks it, a ``TaskSpec`` (all but what needs the
        daemon: its ``max_payload`` and clock), in wire form."""
        return to_wire(decode(TaskSpec, spec))

    @staticmethod
    def checked_spec(spec: Mapping[str, Any]) -> TaskSpec:
        """``checked``, kept a ``TaskSpec``: a request encodes it as the same map."""
        return decode(TaskSpec, spec)

    def hello(self) -> dict[str, Any]:
        return self.request("hello", version=PROTOCOL_VERSION)

    @staticmethod
    def reply(message: Mapping[str, Any]) -> dict[str, Any]:
        if message.get("ok") is True:
            return dict(message)
        raise AsynctaskError.from_wire(message.get("error"))

    @staticmethod
    def submitted(reply: SubmitReply) -> list[Submitted]:
        """The tasks of a ``submit`` reply decoded with ``SUBMIT_REPLY``, or its error."""
        if reply.ok is True:
            return reply.tasks
        raise AsynctaskError.from_wire(reply.error)

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
        self, tenant: str | None, queue: str | None, function: Any, tasks: Mapping[str, Any]
    ) -> tuple[dict[str, Any], str]:
        """The fields of a ``pause``/``resume`` and the reply key holding its count: a target
        (tenant, queue or function; "changed") or, with a task ID or task filter, the waiting
        tasks it matches ("tasks")."""
        unknown = set(tasks) - TASK_FILTERS
        if unknown:
            raise UsageError(f"pause/resume take no {', '.join(sorted(unknown))}")
        if not any(value not in (None, (), {}, [], "") for value in tasks.values()):
            return self.fields(PauseTarget, **self.target(tenant, queue, function)), "changed"
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
        options: Mapping[str, Any],
    ) -> dict[str, Any]:
        task = self.checked(self.spec(func, args, kwargs, **options))
        tenant = task.pop("tenant", None)  # the entry's, not the task's
        return self.fields(CronAddRequest, tenant=tenant, name=name, expr=expr, tz=tz,
                           catch_up=catch_up, task=task)  # fmt: skip

    def selector_fields(self, **selector: Any) -> dict[str, Any]:
        """``list_fields`` without a limit, a function object allowed for ``function``, and
        the client's tenant unless another is named (as the command line defaults to it)."""
        selector.setdefault("tenant", self.tenant)
        if "limit" in selector:
            raise UsageError("cancel takes no limit: it touches every task the selector matches")
        function = selector.pop("function", None)
        fields = self._filters(selector)
        if function is not None:
            fields["function"] = function_ref(function)
        return self.fields(SelectorRequest, **fields)

    def list_fields(self, **filters: Any) -> dict[str, Any]:
        return self.fields(ListRequest, **self._filters(filters))

    @staticmethod
    def _filters(filters: Mapping[str, Any]) -> dict[str, Any]:
        """Filters in wire units: times as epoch seconds, ``state`` a list; unset ones out."""
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


#: The payload of a call without arguments: ``pack([[], {}])``.
_NO_ARGUMENTS: Final = pack([[], {}])


#: How many ``checked_call`` specs a client remembers (all forgotten when full).
_MAX_CHECKED: Final = 256


def _payload(args: tuple[Any, ...], kwargs: Mapping[str, Any] | None) -> bytes:
    """msgpack of ``[args, kwargs]`` with the task value types (``protocol/values.py``), or
    the ``UsageError`` a submit gives."""
    if not args and not kwargs:
        return _NO_ARGUMENTS
    try:
        return pack_arguments(args, kwargs or {})
    except ValueEncodingError as exc:
        raise UsageError(f"task arguments cannot be encoded with msgpack: {exc}") from None


def _with_code(spec: dict[str, Any], func: Any) -> dict[str, Any]:
    """``spec`` with the ``limits`` and the options (``defaults``) ``@asynctask.task`` gave
    ``func``, if any. The options travel apart from the submit's own: the daemon ranks them
    below the submit's and the config file's (``core/admission.py``), as it does the options
    a worker reports for a submit by name."""
    limits = getattr(func, "__asynctask_limits__", None)
    if limits:
        spec["limits"] = limits
    defaults = getattr(func, "__asynctask_defaults__", None)
    if defaults:
        spec["defaults"] = defaults
    return spec


#: The built-in task function that runs a command (``asynctask.executor.command``).
COMMAND_REF: Final = "asynctask.executor.command:run_command"

#: A ``list_page`` answer: the page's tasks, and the cursor of the next page (None: the last).
Page = tuple[list[TaskStatus], str | None]


def _command_args(argv: Sequence[str], final_exit_codes: Sequence[int]) -> tuple[Any, ...]:
    if isinstance(argv, str) or not argv or not all(isinstance(a, str) for a in argv):
        raise UsageError("a command is a non-empty list of strings, e.g. ['ffmpeg', '-i', 'a']")
    codes = list(final_exit_codes)
    if not all(type(code) is int for code in codes):
        raise UsageError("final_exit_codes must be integers")
    return (list(argv), codes) if codes else (list(argv),)


def _id_field(selector: Mapping[str, Any]) -> dict[str, Any]:
    """``task_id=`` (as ``submit`` names it) is the wire's ``id``."""
    fields = dict(selector)
    if "task_id" in fields:
        fields["id"] = fields.pop("task_id")
    return fields


def _seconds(value: Any, name: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise UsageError(f"{name}: {exc}") from None


def _epoch(value: Any) -> float:
    if type(value) is float:
        return value
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


def _report(reply: Mapping[str, Any]) -> dict[str, Any]:
    """The ``queues`` reply's sections, and ``more`` (rows not shown, per section) if any."""
    return {key: reply[key] for key in ("tenants", "queues", "functions", "more") if key in reply}


#: The fields of a ``nodes`` reply (``daemon/nodesview.py``).
NODES_FIELDS: Final = ("cluster", "me", "partitions", "lease", "nodes", "unowned")


def _nodes(reply: Mapping[str, Any]) -> dict[str, Any]:
    """The ``nodes`` reply without the envelope (``ok``, ``rid``)."""
    return {key: reply[key] for key in NODES_FIELDS if key in reply}


def task_spec(call: Mapping[str, Any], tenant: str = DEFAULT_TENANT) -> dict[str, Any]:
    """The wire spec ``submit_many`` would send for one call (``func``, ``args``, ``kwargs``
    and submit options), or the ``UsageError`` it would raise. For a caller that checks a whole
    input before sending any of it, as ``asynctask submit --from-file`` does."""
    return _spec_of(_Calls(tenant), call)


_TASK_SPECS: Final = list[TaskSpec]


def _specs_of(calls: _Calls, many: Iterable[Mapping[str, Any]]) -> list[TaskSpec]:
    """``submit_many``'s specs, each checked; a refusal of one of several names it (``task 2:
    ...``), as the daemon's would."""
    specs = [_built(calls, call) for call in many]
    try:
        return msgspec.convert(specs, _TASK_SPECS, strict=True)  # all at once
    except msgspec.ValidationError:
        pass  # find the first refused one, and word its refusal as one spec's
    checked = []
    for index, spec in enumerate(specs):
        try:
            checked.append(calls.checked_spec(spec))
        except UsageError as exc:
            where = f"task {index}: " if len(specs) > 1 else ""
            raise UsageError(f"{where}{exc.message}") from None
    return checked


def _spec_of(calls: _Calls, call: Mapping[str, Any]) -> dict[str, Any]:
    return calls.checked(_built(calls, call))


def _built(calls: _Calls, call: Mapping[str, Any]) -> dict[str, Any]:
    options = dict(call)
    if "func" not in options:
        raise UsageError("each call for submit_many needs a 'func'")
    func = options.pop("func")
    args = tuple(options.pop("args", ()))
    kwargs = options.pop("kwargs", None)
    return calls.spec_of(func, args, kwargs, options)
