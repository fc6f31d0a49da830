"""The typed wire schema of protocol version 1: every request's fields, their types and checks.

One ``msgspec.Struct`` per request shape is the single definition of what a client may send:
the daemon turns each decoded request map into its Struct (``decode``) before acting on it
(``server/requests.py`` then makes model values of it), the clients build their requests from
the same Structs, and ``asynctask submit --from-file`` checks its lines with them.

A Struct says what a type can: field names (a task spec or a limits map with an unknown key is
refused, naming every unknown key), types (``strict``: no bool for a number, no text for a
number), and in ``__post_init__`` what a type cannot: ranges, name and ID patterns, finite
numbers, the size of labels. Checks that need the daemon's context - ``max_payload`` and the
clock for ``run_at`` - are ``check_spec``'s. A refusal is a ``UsageError`` whose message names
the field and what was expected; msgspec's own errors are turned into the same words
(``_REFUSE`` per Struct), so a refusal reads the same whether a type or a range failed it.

The top level of a request is lenient, as protocol version 1 always was: keys that no Struct
of that op names (``op``, ``rid``, a newer client's field) are ignored; inside a task spec,
a function's ``limits`` and a cron task, unknown keys are refused.

Wire shapes:

* ``submit``: ``{"tasks": [TaskSpec, ...]}`` (1 to ``MAX_TASKS_PER_SUBMIT``).
* ``status`` / ``inspect``: ``TaskRef``; ``wait``: ``WaitRequest``; ``logs``: ``LogsRequest``.
* ``list``: ``ListRequest``; the reply is ``{"tasks": [...], "cursor": str | None}``.
* ``cancel`` / ``retry`` / ``delete`` and ``pause`` / ``resume`` of tasks: ``SelectorRequest``;
  ``pause`` / ``resume`` of a tenant, queue or function: ``PauseTarget``.
* ``cron_add``: ``CronAddRequest``; ``cron_remove``: ``CronRef``; ``stop``: ``StopRequest``;
  ``stats``: ``StatsRequest``.

This module loads msgspec, so the worker child (which only frames) does not import it.
"""

from __future__ import annotations

import math
import re
import struct
import time
from collections.abc import Callable, Mapping
from typing import Annotated, Any, ClassVar, Final, TypeVar

import msgspec

from asynctask.cursor import decode_cursor
from asynctask.errors import UsageError
from asynctask.model import (
    MAX_SECONDS,
    PRIORITY_MAX,
    PRIORITY_MIN,
    TaskState,
    is_function_ref,
    is_name,
    is_task_id,
)
from asynctask.observe.readout import MAX_TOP
from asynctask.resources import Limits

MAX_TASKS_PER_SUBMIT: Final = 10_000
MAX_LIST_LIMIT: Final = 10_000
MAX_LABELS: Final = 32
#: Longest ``trace_id``: a W3C traceparent is 55 characters; room for other schemes' IDs.
MAX_TRACE_ID: Final = 128
_KNOWN_STATES: Final = ", ".join(state.value for state in TaskState)
_STATES: Final = frozenset(state.value for state in TaskState)


class Refusal(ValueError):
    """A value a Struct's ``__post_init__`` refuses; its message is the ``UsageError``'s."""


Refuse = Callable[[Any], str]


class WireStruct(msgspec.Struct, omit_defaults=True):
    """A request shape. ``_REFUSE`` words the refusal of a field whose type is wrong (given the
    value sent), ``_NOT_A_MAP`` that of the whole value when it is not a map, ``_unknown`` that
    of unknown keys (with ``forbid_unknown_fields``)."""

    _REFUSE: ClassVar[dict[str, Refuse]] = {}
    _NOT_A_MAP: ClassVar[str] = "a request must be a map"
    _NESTED: ClassVar[dict[str, type[WireStruct]]] = {}

    @classmethod
    def _unknown(cls, keys: list[str]) -> str:
        return f"unknown field(s): {', '.join(keys)}"


# -- field checks, shared by the Structs -------------------------------------------------------


def _name_refusal(key: str) -> Refuse:
    return lambda value: f"not a valid {key} name: {value!r}"


def _tenant_refusal(value: Any) -> str:
    return f"not a tenant name: {value!r}"


def _function_refusal(key: str) -> Refuse:
    return lambda value: f"{key} must look like package.module:function, got {value!r}"


def _number_refusal(key: str) -> Refuse:
    return lambda value: f"{key} must be a number, got {value!r}"


def _labels_refusal(value: Any) -> str:
    return "labels must be a map of strings to strings"


def _trace_id_refusal(value: Any) -> str:
    return f"trace_id must be 1-{MAX_TRACE_ID} printable ASCII characters"


def _check_tenant(tenant: str | None) -> None:
    if tenant is not None and not is_name(tenant):
        raise Refusal(_tenant_refusal(tenant))


def _check_name(value: str | None, key: str) -> None:
    if value is not None and not is_name(value):
        raise Refusal(_name_refusal(key)(value))


def _check_function(value: str | None, key: str) -> None:
    if value is not None and not is_function_ref(value):
        raise Refusal(_function_refusal(key)(value))


def _check_number(value: float | None, key: str) -> None:
    if value is not None and not math.isfinite(value):
        raise Refusal(_number_refusal(key)(value))


def _check_seconds(value: float | None, key: str, *, positive: bool = False) -> None:
    """A duration in seconds, at most ``MAX_SECONDS`` (100 years): a time past that no longer
    fits a date, and reading the task back would fail."""
    _check_number(value, key)
    if value is not None and (value < 0 or (positive and value == 0) or value > MAX_SECONDS):
        raise Refusal(
            f"{key} must be {'more than 0' if positive else '0 or more'} and at most "
            f"{MAX_SECONDS:.0f} seconds (100 years), got {value!r}"
        )


def _check_labels(labels: dict[str, str] | None) -> None:
    if labels is None:
        return
    if len(labels) > MAX_LABELS:
        raise Refusal(f"at most {MAX_LABELS} labels per task")
    for key, value in labels.items():
        if not key or len(key) > 128 or len(value) > 1024:
            raise Refusal(f"label {key!r}: keys are 1-128 and values up to 1024 characters")


def _check_trace_id(value: str | None) -> None:
    """Any printable ASCII text up to ``MAX_TRACE_ID`` characters (the daemon never reads it)."""
    if value is not None and not (
        0 < len(value) <= MAX_TRACE_ID and value.isascii() and value.isprintable()
    ):
        raise Refusal(_trace_id_refusal(value))


def labels_size(labels: Mapping[str, str]) -> int:
    """The bytes ``labels`` count toward ``max_payload``: their keys and values in UTF-8."""
    return sum(len(key.encode()) + len(value.encode()) for key, value in labels.items())


def _count_refusal(key: str) -> Refuse:
    return lambda value: f"{key} must be an integer from 0 to 1000"


def _check_count(value: int | None, key: str) -> None:
    if value is not None and not 0 <= value <= 1000:
        raise Refusal(_count_refusal(key)(value))


# -- task specs --------------------------------------------------------------------------------


def _concurrency_refusal(value: Any) -> str:
    return "limits.concurrency must be a whole number"


class FunctionLimits(WireStruct, forbid_unknown_fields=True):
    """``limits`` of a spec: the function's own concurrency, rate (per second) and burst, as
    ``@asynctask.task(concurrency=, rate=, burst=)`` declared them."""

    concurrency: int | None = None
    rate: float | None = None
    burst: float | None = None

    _REFUSE: ClassVar[dict[str, Refuse]] = {
        "concurrency": _concurrency_refusal,
        "rate": lambda value: "limits.rate must be a number",
        "burst": lambda value: "limits.burst must be a number",
    }
    _NOT_A_MAP: ClassVar[str] = "limits must be a map of concurrency, rate and burst"

    @classmethod
    def _unknown(cls, keys: list[str]) -> str:
        return f"unknown limit(s): {', '.join(keys)}"

    def __post_init__(self) -> None:
        if self.concurrency is not None and not 1 <= self.concurrency <= 1_000_000:
            raise Refusal("limits.concurrency must be between 1 and 1000000")
        for name, value in (("rate", self.rate), ("burst", self.burst)):
            if value is not None and not math.isfinite(value):
                raise Refusal(f"limits.{name} must be a number")
        if self.rate is not None and self.rate <= 0:
            raise Refusal("limits.rate must be positive")
        if self.burst is not None and self.burst < 1:
            raise Refusal("limits.burst must be at least 1")

    def to_dict(self) -> dict[str, float] | None:
        """The set limits (the model's form), None if none is."""
        limits: dict[str, float] = {}
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if value is not None:
                limits[name] = value
        return limits or None


class TaskSpec(WireStruct, forbid_unknown_fields=True):
    """One task of a ``submit``: ``payload`` is msgpack bytes of ``[args, kwargs]``; every
    other field may be missing or None ("the function's or the daemon's default")."""

    function: str
    #: ``Any`` to msgspec, checked to be bytes below: msgspec would take base64 text for bytes.
    payload: Any
    id: str | None = None
    tenant: str | None = None
    queue: str | None = None
    priority: int | None = None
    delay: float | None = None
    #: Epoch seconds; its upper bound (100 years from now) is ``check_spec``'s.
    run_at: float | None = None
    ttl: float | None = None
    retries: int | None = None
    timeout: float | None = None
    labels: dict[str, str] | None = None
    on_success: str | None = None
    on_failure: str | None = None
    limits: FunctionLimits | None = None
    #: ``asynctask.resources.Limits`` in wire form, normalized by the check.
    resources: dict[str, Any] | None = None
    trace_id: str | None = None

    _REFUSE: ClassVar[dict[str, Refuse]] = {
        "function": _function_refusal("function"),
        "payload": lambda value: "payload must be msgpack bytes of [args, kwargs]",
        "id": lambda value: (
            f"a task ID is 1-200 printable characters without spaces, got {value!r}"
        ),
        "tenant": _tenant_refusal,
        "queue": _name_refusal("queue"),
        "priority": lambda value: (
            f"priority must be an integer from {PRIORITY_MIN} to {PRIORITY_MAX}"
        ),
        "delay": _number_refusal("delay"),
        "run_at": _number_refusal("run_at"),
        "ttl": _number_refusal("ttl"),
        "retries": _count_refusal("retries"),
        "timeout": _number_refusal("timeout"),
        "labels": _labels_refusal,
        "on_success": _function_refusal("on_success"),
        "on_failure": _function_refusal("on_failure"),
        "limits": lambda value: FunctionLimits._NOT_A_MAP,
        "resources": lambda value: (
            "resources must be a map of memory, cpu, open_files, processes, file_size"
        ),
        "trace_id": _trace_id_refusal,
    }
    _NOT_A_MAP: ClassVar[str] = "a task spec must be a map"
    _NESTED: ClassVar[dict[str, type[WireStruct]]] = {"limits": FunctionLimits}

    @classmethod
    def _unknown(cls, keys: list[str]) -> str:
        return f"unknown task option(s): {', '.join(keys)}"

    def __post_init__(self) -> None:
        _check_function(self.function, "function")
        if not isinstance(self.payload, bytes):
            raise Refusal(self._REFUSE["payload"](self.payload))
        _check_labels(self.labels)
        _check_tenant(self.tenant)
        if self.id is not None and not is_task_id(self.id):
            raise Refusal(self._REFUSE["id"](self.id))
        _check_name(self.queue, "queue")
        if self.priority is not None and not PRIORITY_MIN <= self.priority <= PRIORITY_MAX:
            raise Refusal(self._REFUSE["priority"](self.priority))
        _check_seconds(self.delay, "delay")
        _check_number(self.run_at, "run_at")
        _check_seconds(self.ttl, "ttl")
        _check_count(self.retries, "retries")
        _check_seconds(self.timeout, "timeout", positive=True)
        _check_function(self.on_success, "on_success")
        _check_function(self.on_failure, "on_failure")
        if self.resources is not None:
            if "user" in self.resources:
                raise Refusal("resources: 'user' can only be set in the daemon's [workers] config")
            try:
                self.resources = Limits.from_wire(self.resources).to_wire() or None
            except ValueError as exc:
                raise Refusal(str(exc)) from None
        _check_trace_id(self.trace_id)


def check_spec(spec: TaskSpec, max_payload: int, now: float | None = None) -> TaskSpec:
    """The checks of a spec that need the daemon's context: its arguments and labels within
    ``max_payload``, ``run_at`` from 0 (the past means now) to 100 years from ``now`` (epoch
    seconds, default the wall clock)."""
    label_bytes = labels_size(spec.labels) if spec.labels else 0
    size = len(spec.payload) + label_bytes
    if size > max_payload:
        if not label_bytes:
            raise UsageError(
                f"task arguments are {len(spec.payload)} bytes, more than the limit of "
                f"{max_payload}"
            )
        raise UsageError(
            f"task arguments ({len(spec.payload)} bytes) and labels ({label_bytes} bytes) are "
            f"{size} bytes, more than the limit of {max_payload} "
            "([daemon] max_payload counts both)"
        )
    if spec.run_at is not None:
        latest = (time.time() if now is None else now) + MAX_SECONDS
        if not 0 <= spec.run_at <= latest:
            raise UsageError(
                "run_at must be a time from 1970 to 100 years from now "
                f"(epoch seconds 0 to {latest:.0f}), got {spec.run_at!r}"
            )
    return spec


def validate_spec(raw: Any, max_payload: int, now: float | None = None) -> TaskSpec:
    """A spec map checked as the daemon checks each task of a ``submit``."""
    return check_spec(decode(TaskSpec, raw), max_payload, now)


def _tasks_refusal(value: Any) -> str:
    if isinstance(value, list) and len(value) > MAX_TASKS_PER_SUBMIT:
        return f"at most {MAX_TASKS_PER_SUBMIT} tasks per submit, got {len(value)}"
    return "submit needs a non-empty list 'tasks'"


class SubmitRequest(WireStruct):
    tasks: Annotated[list[TaskSpec], msgspec.Meta(max_length=MAX_TASKS_PER_SUBMIT)]

    _REFUSE: ClassVar[dict[str, Refuse]] = {"tasks": _tasks_refusal}
    _NESTED: ClassVar[dict[str, type[WireStruct]]] = {"tasks": TaskSpec}

    def __post_init__(self) -> None:
        if not self.tasks:
            raise Refusal(_tasks_refusal(self.tasks))


#: What a cron entry's task may carry: a spec without an ID, tenant or timing of its own.
CRON_TASK_FIELDS: Final = frozenset(
    {"function", "payload", "queue", "priority", "retries", "timeout", "labels", "limits",
     "resources"}
)  # fmt: skip


def _task_id_refusal(value: Any) -> str:
    return f"not a task ID: {value!r}"


# -- task references ---------------------------------------------------------------------------


class TaskRef(WireStruct):
    """``status`` and ``inspect``: one task of a tenant (default ``default``)."""

    id: str
    tenant: str | None = None

    _REFUSE: ClassVar[dict[str, Refuse]] = {"id": _task_id_refusal, "tenant": _tenant_refusal}

    def __post_init__(self) -> None:
        if not is_task_id(self.id):
            raise Refusal(_task_id_refusal(self.id))
        _check_tenant(self.tenant)


class WaitRequest(TaskRef):
    """``wait``: until the task ends, at most ``timeout`` seconds."""

    timeout: float | None = None

    _REFUSE: ClassVar[dict[str, Refuse]] = {
        **TaskRef._REFUSE,
        "timeout": _number_refusal("timeout"),
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_seconds(self.timeout, "timeout")


_OFFSETS_REFUSAL: Final = "offsets must map attempt numbers (1, 2, ...) to byte offsets (>= 0)"


class LogsRequest(TaskRef):
    """``logs``: ``offsets`` maps attempt numbers to the bytes of their log already read."""

    offsets: dict[int, int] | None = None

    _REFUSE: ClassVar[dict[str, Refuse]] = {
        **TaskRef._REFUSE,
        "offsets": lambda value: _OFFSETS_REFUSAL,
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.offsets and not all(k > 0 and v >= 0 for k, v in self.offsets.items()):
            raise Refusal(_OFFSETS_REFUSAL)


# -- list and selectors ------------------------------------------------------------------------


def _state_refusal(value: Any) -> str:
    if isinstance(value, list):
        for state in value:
            if state not in _STATES:
                return f"unknown state {state!r} (known: {_KNOWN_STATES})"
    return "state must be a list of task states"


def _limit_refusal(value: Any) -> str:
    return f"limit must be an integer from 1 to {MAX_LIST_LIMIT}"


class ListRequest(WireStruct):
    """``list``: filters (all optional, all must match), newest first, ``limit`` per page,
    ``cursor`` (``asynctask.cursor``) where the page starts."""

    tenant: str | None = None
    state: str | list[str] | None = None
    queue: str | None = None
    function: str | None = None
    prefix: str | None = None
    since: float | None = None
    until: float | None = None
    labels: dict[str, str] | None = None
    trace_id: str | None = None
    limit: int = 100
    cursor: str | None = None

    _REFUSE: ClassVar[dict[str, Refuse]] = {
        "tenant": _tenant_refusal,
        "state": _state_refusal,
        "queue": _name_refusal("queue"),
        "function": lambda value: "function must be a string",
        "prefix": lambda value: "prefix must be a string",
        "since": _number_refusal("since"),
        "until": _number_refusal("until"),
        "labels": _labels_refusal,
        "trace_id": _trace_id_refusal,
        "limit": _limit_refusal,
        "cursor": lambda value: f"not a list cursor: {value!r} (pass the one a list page printed)",
    }

    def __post_init__(self) -> None:
        if self.tenant is not None and not is_name(self.tenant):
            raise Refusal(_tenant_refusal(self.tenant))
        for state in self.states:
            if state not in _STATES:
                raise Refusal(_state_refusal([state]))
        if not 1 <= self.limit <= MAX_LIST_LIMIT:
            raise Refusal(_limit_refusal(self.limit))
        _check_name(self.queue, "queue")
        _check_number(self.since, "since")
        _check_number(self.until, "until")
        _check_labels(self.labels)
        _check_trace_id(self.trace_id)
        if self.cursor is not None:
            try:
                decode_cursor(self.cursor)
            except UsageError as exc:
                raise Refusal(exc.message) from None

    @property
    def states(self) -> list[str]:
        if not self.state:
            return []
        return [self.state] if isinstance(self.state, str) else self.state


#: The fields that select tasks (``SelectorRequest``'s, ``id`` with the list filters).
SELECTOR_FIELDS: Final = (
    "id", "tenant", "state", "queue", "function", "prefix", "since", "until", "labels",
    "trace_id",
)  # fmt: skip
#: Fields that make ``pause``/``resume`` act on tasks one by one, not on a tenant/queue/function.
TASK_SELECTOR_FIELDS: Final = ("id", "state", "prefix", "since", "until", "labels")


class SelectorRequest(ListRequest):
    """``cancel``, ``retry``, ``delete`` and ``pause``/``resume`` of tasks: one task by ``id``,
    or every task the list filters match (no ``limit`` or ``cursor``: it touches them all)."""

    id: str | None = None

    _REFUSE: ClassVar[dict[str, Refuse]] = {**ListRequest._REFUSE, "id": _task_id_refusal}

    def __post_init__(self) -> None:
        if self.id is not None and not is_task_id(self.id):
            raise Refusal(_task_id_refusal(self.id))
        super().__post_init__()


def is_task_selector(message: Mapping[str, Any]) -> bool:
    """Whether a ``pause``/``resume`` names tasks (an ID or a task filter) rather than a target."""
    return any(message.get(name) not in (None, "", [], {}) for name in TASK_SELECTOR_FIELDS)


class PauseTarget(WireStruct):
    """``pause``/``resume`` of a target: ``tenant`` pauses a tenant, ``tenant`` and ``queue``
    one of its queues, ``function`` alone a function (for every tenant)."""

    tenant: str | None = None
    queue: str | None = None
    function: str | None = None

    _REFUSE: ClassVar[dict[str, Refuse]] = {
        "tenant": _tenant_refusal,
        "queue": _name_refusal("queue"),
        "function": _function_refusal("function"),
    }

    def __post_init__(self) -> None:
        if self.function is not None:
            if self.tenant is not None or self.queue is not None:
                raise Refusal(
                    "pause a function alone, or a tenant, or a tenant's queue "
                    "(to pause one tenant's tasks of a function, add a task filter: "
                    "--state queued)"
                )
            _check_function(self.function, "function")
            return
        if self.tenant is None:
            raise Refusal(
                "say what to pause: --tenant, --tenant with --queue, or --function; "
                "or tasks by ID, --state, --prefix, --label, --since or --until"
            )
        _check_tenant(self.tenant)
        _check_name(self.queue, "queue")


class TenantRequest(WireStruct):
    """A request about a tenant (``stats``), ``tenant`` optional."""

    tenant: str | None = None

    _REFUSE: ClassVar[dict[str, Refuse]] = {"tenant": _tenant_refusal}

    def __post_init__(self) -> None:
        _check_tenant(self.tenant)


class StatsRequest(TenantRequest):
    """``stats``: one tenant's (default: all the caller may see), only queues named ``queue``,
    ``top`` rows per section (1 to ``MAX_TOP``; None: the daemon's default)."""

    queue: str | None = None
    top: int | None = None

    _REFUSE: ClassVar[dict[str, Refuse]] = {
        **TenantRequest._REFUSE,
        "queue": lambda value: f"not a queue name: {value!r}",
        "top": lambda value: f"top must be a whole number from 1 to {MAX_TOP}, not {value!r}",
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.queue is not None and not is_name(self.queue):
            raise Refusal(self._REFUSE["queue"](self.queue))
        if self.top is not None and not 1 <= self.top <= MAX_TOP:
            raise Refusal(self._REFUSE["top"](self.top))


# -- cron, stop --------------------------------------------------------------------------------


def _cron_name_refusal(value: Any) -> str:
    return f"not a cron entry name: {value!r}"


class CronRef(WireStruct):
    """``cron_remove``: a tenant's cron entry by name."""

    name: str
    tenant: str | None = None

    _REFUSE: ClassVar[dict[str, Refuse]] = {"name": _cron_name_refusal, "tenant": _tenant_refusal}

    def __post_init__(self) -> None:
        _check_tenant(self.tenant)
        if not is_name(self.name):
            raise Refusal(_cron_name_refusal(self.name))


def _cron_add_name_refusal(value: Any) -> str:
    return f"not a cron entry name: {value!r} (letters, digits, . _ -)"


class CronAddRequest(WireStruct):
    """``cron_add``: ``task`` takes ``submit``'s function, payload and options
    (``CRON_TASK_FIELDS``), but no ID or timing of its own; ``expr`` in time zone ``tz``
    (default UTC); ``catch_up`` after downtime, ``one`` (default) or ``skip``."""

    name: str
    expr: str
    task: dict[str, Any]
    tenant: str | None = None
    tz: str | None = None
    catch_up: str | None = None

    _REFUSE: ClassVar[dict[str, Refuse]] = {
        "name": _cron_add_name_refusal,
        "expr": lambda value: "expr and tz must be strings",
        "tz": lambda value: "expr and tz must be strings",
        "catch_up": lambda value: f"catch_up must be a string, not {value!r}",
        "task": lambda value: "cron_add needs a 'task' map",
        "tenant": _tenant_refusal,
    }

    def __post_init__(self) -> None:
        _check_tenant(self.tenant)
        if not is_name(self.name):
            raise Refusal(_cron_add_name_refusal(self.name))
        extra = set(self.task) - CRON_TASK_FIELDS
        if extra:
            raise Refusal(
                f"a cron task cannot have {', '.join(sorted(map(str, extra)))} "
                "(its ID and time come from the schedule)"
            )


class StopRequest(WireStruct):
    """``stop``: ``drain``, how long running attempts may still take (seconds)."""

    drain: float | None = None

    _REFUSE: ClassVar[dict[str, Refuse]] = {"drain": _number_refusal("drain")}

    def __post_init__(self) -> None:
        _check_seconds(self.drain, "drain")


# -- decoding and encoding ---------------------------------------------------------------------

S = TypeVar("S", bound=WireStruct)

_AT = re.compile(r" - at `(?P<key>key` in `)?(?P<path>\$[^`]*)`$")
_PATH = re.compile(r"\.(\w+)|\[(\d+)\]")
_UNKNOWN = "Object contains unknown field"
_MISSING = re.compile(r"^Object missing required field `(\w+)`")


def decode(kind: type[S], message: Any) -> S:
    """``message`` (a decoded map) as a ``kind``, or ``UsageError`` naming the field at fault
    and what it takes."""
    try:
        return msgspec.convert(message, kind, strict=True)
    except msgspec.ValidationError as exc:
        raise UsageError(refusal(kind, message, exc)) from None


def decode_submit(message: Any) -> SubmitRequest:
    """A ``submit``; a refusal of one of several tasks says which (``task 2: ...``)."""
    try:
        return msgspec.convert(message, SubmitRequest, strict=True)
    except msgspec.ValidationError as exc:
        words = refusal(SubmitRequest, message, exc)
        at = _AT.search(str(exc))
        steps = _PATH.findall(at["path"]) if at else []
        tasks = message.get("tasks") if isinstance(message, Mapping) else None
        if len(steps) > 1 and steps[1][1] and isinstance(tasks, list) and len(tasks) > 1:
            words = f"task {steps[1][1]}: {words}"
        raise UsageError(words) from None


def refusal(kind: type[WireStruct], message: Any, error: msgspec.ValidationError) -> str:
    """The words of ``error``, raised converting ``message`` to ``kind``: a ``Refusal``'s own,
    or the refusal the Struct holding the failing field gives for it."""
    if isinstance(error.__cause__, Refusal):
        return str(error.__cause__)
    text = str(error)
    at = _AT.search(text)
    summary = text[: at.start()] if at else text
    steps = _PATH.findall(at["path"]) if at else []
    owner: type[WireStruct] | None = kind  # the Struct whose value is at the path, if any
    holder: type[WireStruct] | None = None  # the Struct declaring the last field named
    field = ""
    value = field_value = message
    for name, index in steps:
        if name:
            holder, field = owner, name
            value = field_value = value.get(name) if isinstance(value, Mapping) else None
            owner = holder._NESTED.get(name) if holder is not None else None
        else:
            value = value[int(index)] if isinstance(value, list) else None
    if summary.startswith(_UNKNOWN) and owner is not None and isinstance(value, Mapping):
        known = set(owner.__struct_fields__)
        return owner._unknown(sorted(str(key) for key in value if key not in known))
    missing = _MISSING.match(summary)
    if missing and owner is not None:
        return _field_refusal(owner, missing[1], None, summary)
    if steps and steps[-1][1] and owner is not None:
        return owner._NOT_A_MAP  # an element of a list of Structs is not a map
    if holder is not None:
        return _field_refusal(holder, field, field_value, summary)
    if at is not None and at["key"]:
        return f"{kind._NOT_A_MAP} with text keys"
    return kind._NOT_A_MAP


def _field_refusal(owner: type[WireStruct], field: str, value: Any, summary: str) -> str:
    refuse = owner._REFUSE.get(field)
    return refuse(value) if refuse is not None else f"{field}: {summary}"


def to_wire(request: WireStruct) -> dict[str, Any]:
    """A Struct as the map a client sends (unset fields left out, bytes kept bytes)."""
    wire: dict[str, Any] = msgspec.to_builtins(request, builtin_types=(bytes,))
    return wire


_ENCODER: Final = msgspec.msgpack.Encoder()
_HEADER: Final = struct.Struct(">I")


def encode_request(request: Mapping[str, Any]) -> bytes:
    """A request map, whose values may be Structs (a ``submit``'s ``TaskSpec``s), as one frame:
    the same msgpack map ``framing.encode_frame`` makes of the equivalent plain map (a Struct
    is a map of its set fields; bytes are bin, text str), so any version-1 daemon reads it."""
    body = _ENCODER.encode(request)
    return _HEADER.pack(len(body)) + body
