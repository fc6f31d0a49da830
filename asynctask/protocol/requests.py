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
* ``ping``, ``queues``, ``cron_list``, ``metrics``, ``reload`` and ``nodes``: no fields.

The field checks the Structs share are in ``checks.py``, and the base Struct, the conversion
with its refusals and the client's encoding in ``wirestruct.py``. This package's schema loads
msgspec, so the worker child (which only frames) does not import it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Final

import msgspec

from asynctask.cursor import decode_cursor
from asynctask.errors import UsageError
from asynctask.model import (
    MAX_SECONDS,
    PRIORITY_MAX,
    PRIORITY_MIN,
    is_name,
    is_task_id,
)
from asynctask.observe.readout import MAX_TOP
from asynctask.protocol.checks import (
    KNOWN_STATES,
    MAX_LABELS,
    MAX_LIST_LIMIT,
    MAX_TASKS_PER_SUBMIT,
    MAX_TRACE_ID,
    STATE_VALUES,
    check_count,
    check_function,
    check_labels,
    check_name,
    check_number,
    check_seconds,
    check_tenant,
    check_trace_id,
    count_refusal,
    function_refusal,
    labels_refusal,
    labels_size,
    name_refusal,
    number_refusal,
    tenant_refusal,
    trace_id_refusal,
)
from asynctask.protocol.wirestruct import (
    ERROR_AT,
    ERROR_PATH,
    Refusal,
    Refuse,
    WireStruct,
    decode,
    encode_request,
    refusal,
    to_wire,
)
from asynctask.resources import Limits

#: Names of the schema's helper modules that importers take from here.
__all__ = [
    "MAX_LABELS",
    "MAX_LIST_LIMIT",
    "MAX_TASKS_PER_SUBMIT",
    "MAX_TRACE_ID",
    "WireStruct",
    "decode",
    "encode_request",
    "labels_size",
    "to_wire",
]


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


#: What ``CodeDefaults`` holds: the options ``@asynctask.task`` may give a function that the
#: daemon applies per task (its limits travel apart, in ``limits``). ``retry_limit_kills`` is
#: read from the remembered report when an attempt fails (``Engine.on_outcome``).
CODE_DEFAULTS: Final = (
    "queue", "priority", "retries", "timeout", "ttl", "on_success", "on_failure", "resources",
    "retry_limit_kills",
)  # fmt: skip


class CodeDefaults(WireStruct, forbid_unknown_fields=True):
    """The options ``@asynctask.task(...)`` gave a function, as the daemon takes them: from a
    submit through the function object (``TaskSpec.defaults``), or from the worker that
    imported it (its ``declare`` frame). They rank below the submit's own options and the
    config file's ``[functions."..."]`` keys, above the daemon's defaults. Checked as the same
    fields of a ``TaskSpec`` are: a worker's report is its tenant's input, not the daemon's."""

    queue: str | None = None
    priority: int | None = None
    retries: int | None = None
    timeout: float | None = None
    ttl: float | None = None
    on_success: str | None = None
    on_failure: str | None = None
    resources: dict[str, Any] | None = None
    retry_limit_kills: bool | None = None

    _REFUSE: ClassVar[dict[str, Refuse]] = {
        "queue": name_refusal("defaults.queue"),
        "priority": lambda value: (
            f"defaults.priority must be an integer from {PRIORITY_MIN} to {PRIORITY_MAX}"
        ),
        "retries": count_refusal("defaults.retries"),
        "timeout": number_refusal("defaults.timeout"),
        "ttl": number_refusal("defaults.ttl"),
        "on_success": function_refusal("defaults.on_success"),
        "on_failure": function_refusal("defaults.on_failure"),
        "resources": lambda value: (
            "defaults.resources must be a map of memory, cpu, open_files, processes, file_size"
        ),
        "retry_limit_kills": lambda value: "defaults.retry_limit_kills must be true or false",
    }
    _NOT_A_MAP: ClassVar[str] = "defaults must be a map of a function's task options"

    @classmethod
    def _unknown(cls, keys: list[str]) -> str:
        return f"unknown default(s): {', '.join(keys)}"

    def __post_init__(self) -> None:
        if self.queue is not None:
            check_name(self.queue, "defaults.queue")
        if self.priority is not None and not PRIORITY_MIN <= self.priority <= PRIORITY_MAX:
            raise Refusal(self._REFUSE["priority"](self.priority))
        if self.retries is not None:
            check_count(self.retries, "defaults.retries")
        if self.timeout is not None:
            check_seconds(self.timeout, "defaults.timeout", positive=True)
        if self.ttl is not None:
            check_seconds(self.ttl, "defaults.ttl")
        if self.on_success is not None:
            check_function(self.on_success, "defaults.on_success")
        if self.on_failure is not None:
            check_function(self.on_failure, "defaults.on_failure")
        if self.resources is not None:
            self.resources = _resources(self.resources, "defaults.resources")

    def to_dict(self) -> dict[str, Any] | None:
        """The set options (the model's form), None if none is."""
        options = {name: getattr(self, name) for name in CODE_DEFAULTS}
        return {name: value for name, value in options.items() if value is not None} or None


def _resources(raw: dict[str, Any], where: str) -> dict[str, Any] | None:
    """``resources`` normalized (``Limits`` wire form), or the refusal; never ``user``."""
    if "user" in raw:
        raise Refusal(f"{where}: 'user' can only be set in the daemon's [workers] config")
    try:
        return Limits.from_wire(raw).to_wire() or None
    except ValueError as exc:
        raise Refusal(str(exc)) from None


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
    #: The function's ``@asynctask.task`` options, below the ones above and the config's.
    defaults: CodeDefaults | None = None

    _REFUSE: ClassVar[dict[str, Refuse]] = {
        "function": function_refusal("function"),
        "payload": lambda value: "payload must be msgpack bytes of [args, kwargs]",
        "id": lambda value: (
            f"a task ID is 1-200 printable characters without spaces, got {value!r}"
        ),
        "tenant": tenant_refusal,
        "queue": name_refusal("queue"),
        "priority": lambda value: (
            f"priority must be an integer from {PRIORITY_MIN} to {PRIORITY_MAX}"
        ),
        "delay": number_refusal("delay"),
        "run_at": number_refusal("run_at"),
        "ttl": number_refusal("ttl"),
        "retries": count_refusal("retries"),
        "timeout": number_refusal("timeout"),
        "labels": labels_refusal,
        "on_success": function_refusal("on_success"),
        "on_failure": function_refusal("on_failure"),
        "limits": lambda value: FunctionLimits._NOT_A_MAP,
        "resources": lambda value: (
            "resources must be a map of memory, cpu, open_files, processes, file_size"
        ),
        "trace_id": trace_id_refusal,
        "defaults": lambda value: CodeDefaults._NOT_A_MAP,
    }
    _NOT_A_MAP: ClassVar[str] = "a task spec must be a map"
    _NESTED: ClassVar[dict[str, type[WireStruct]]] = {
        "limits": FunctionLimits,
        "defaults": CodeDefaults,
    }

    @classmethod
    def _unknown(cls, keys: list[str]) -> str:
        return f"unknown task option(s): {', '.join(keys)}"

    def __post_init__(self) -> None:
        # In the order of the checks' refusals; each optional field's check only when it is
        # set (every spec of a submit passes here, in the client and again in the daemon).
        check_function(self.function, "function")
        if not isinstance(self.payload, bytes):
            raise Refusal(self._REFUSE["payload"](self.payload))
        if self.labels is not None:
            check_labels(self.labels)
        if self.tenant is not None:
            check_tenant(self.tenant)
        if self.id is not None and not is_task_id(self.id):
            raise Refusal(self._REFUSE["id"](self.id))
        if self.queue is not None:
            check_name(self.queue, "queue")
        if self.priority is not None and not PRIORITY_MIN <= self.priority <= PRIORITY_MAX:
            raise Refusal(self._REFUSE["priority"](self.priority))
        if self.delay is not None:
            check_seconds(self.delay, "delay")
        if self.run_at is not None:
            check_number(self.run_at, "run_at")
        if self.ttl is not None:
            check_seconds(self.ttl, "ttl")
        if self.retries is not None:
            check_count(self.retries, "retries")
        if self.timeout is not None:
            check_seconds(self.timeout, "timeout", positive=True)
        if self.on_success is not None:
            check_function(self.on_success, "on_success")
        if self.on_failure is not None:
            check_function(self.on_failure, "on_failure")
        if self.resources is not None:
            if "user" in self.resources:
                raise Refusal("resources: 'user' can only be set in the daemon's [workers] config")
            try:
                self.resources = Limits.from_wire(self.resources).to_wire() or None
            except ValueError as exc:
                raise Refusal(str(exc)) from None
        if self.trace_id is not None:
            check_trace_id(self.trace_id)


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
    """``tasks``; ``brief``: each task of the reply is only its ``id``, ``tenant`` and
    ``state``, not its whole view (what a client that makes handles needs, at a fraction of
    the bytes to encode, send and decode; a daemon that predates it sends whole views, which
    carry those fields too)."""

    tasks: Annotated[list[TaskSpec], msgspec.Meta(max_length=MAX_TASKS_PER_SUBMIT)]
    brief: bool = False

    _REFUSE: ClassVar[dict[str, Refuse]] = {
        "tasks": _tasks_refusal,
        "brief": lambda value: f"brief must be true or false, got {value!r}",
    }
    _NESTED: ClassVar[dict[str, type[WireStruct]]] = {"tasks": TaskSpec}

    def __post_init__(self) -> None:
        if not self.tasks:
            raise Refusal(_tasks_refusal(self.tasks))


#: What a cron entry's task may carry: a spec without an ID, tenant or timing of its own.
CRON_TASK_FIELDS: Final = frozenset(
    {"function", "payload", "queue", "priority", "retries", "timeout", "labels", "limits",
     "resources", "defaults"}
)  # fmt: skip


def _task_id_refusal(value: Any) -> str:
    return f"not a task ID: {value!r}"


# -- task references ---------------------------------------------------------------------------


class TaskRef(WireStruct):
    """``status`` and ``inspect``: one task of a tenant (default ``default``)."""

    id: str
    tenant: str | None = None

    _REFUSE: ClassVar[dict[str, Refuse]] = {"id": _task_id_refusal, "tenant": tenant_refusal}

    def __post_init__(self) -> None:
        if not is_task_id(self.id):
            raise Refusal(_task_id_refusal(self.id))
        check_tenant(self.tenant)


class WaitRequest(TaskRef):
    """``wait``: until the task ends, at most ``timeout`` seconds."""

    timeout: float | None = None

    _REFUSE: ClassVar[dict[str, Refuse]] = {
        **TaskRef._REFUSE,
        "timeout": number_refusal("timeout"),
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        check_seconds(self.timeout, "timeout")


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
            if state not in STATE_VALUES:
                return f"unknown state {state!r} (known: {KNOWN_STATES})"
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
        "tenant": tenant_refusal,
        "state": _state_refusal,
        "queue": name_refusal("queue"),
        "function": lambda value: "function must be a string",
        "prefix": lambda value: "prefix must be a string",
        "since": number_refusal("since"),
        "until": number_refusal("until"),
        "labels": labels_refusal,
        "trace_id": trace_id_refusal,
        "limit": _limit_refusal,
        "cursor": lambda value: f"not a list cursor: {value!r} (pass the one a list page printed)",
    }

    def __post_init__(self) -> None:
        if self.tenant is not None and not is_name(self.tenant):
            raise Refusal(tenant_refusal(self.tenant))
        for state in self.states:
            if state not in STATE_VALUES:
                raise Refusal(_state_refusal([state]))
        if not 1 <= self.limit <= MAX_LIST_LIMIT:
            raise Refusal(_limit_refusal(self.limit))
        check_name(self.queue, "queue")
        check_number(self.since, "since")
        check_number(self.until, "until")
        check_labels(self.labels)
        check_trace_id(self.trace_id)
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
        "tenant": tenant_refusal,
        "queue": name_refusal("queue"),
        "function": function_refusal("function"),
    }

    def __post_init__(self) -> None:
        if self.function is not None:
            if self.tenant is not None or self.queue is not None:
                raise Refusal(
                    "pause a function alone, or a tenant, or a tenant's queue "
                    "(to pause one tenant's tasks of a function, add a task filter: "
                    "--state queued)"
                )
            check_function(self.function, "function")
            return
        if self.tenant is None:
            raise Refusal(
                "say what to pause: --tenant, --tenant with --queue, or --function; "
                "or tasks by ID, --state, --prefix, --label, --since or --until"
            )
        check_tenant(self.tenant)
        check_name(self.queue, "queue")


class TenantRequest(WireStruct):
    """A request about a tenant (``stats``), ``tenant`` optional."""

    tenant: str | None = None

    _REFUSE: ClassVar[dict[str, Refuse]] = {"tenant": tenant_refusal}

    def __post_init__(self) -> None:
        check_tenant(self.tenant)


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

    _REFUSE: ClassVar[dict[str, Refuse]] = {"name": _cron_name_refusal, "tenant": tenant_refusal}

    def __post_init__(self) -> None:
        check_tenant(self.tenant)
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
        "tenant": tenant_refusal,
    }

    def __post_init__(self) -> None:
        check_tenant(self.tenant)
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

    _REFUSE: ClassVar[dict[str, Refuse]] = {"drain": number_refusal("drain")}

    def __post_init__(self) -> None:
        check_seconds(self.drain, "drain")


def decode_submit(message: Any) -> SubmitRequest:
    """A ``submit``; a refusal of one of several tasks says which (``task 2: ...``)."""
    try:
        return msgspec.convert(message, SubmitRequest, strict=True)
    except msgspec.ValidationError as exc:
        words = refusal(SubmitRequest, message, exc)
        at = ERROR_AT.search(str(exc))
        steps = ERROR_PATH.findall(at["path"]) if at else []
        tasks = message.get("tasks") if isinstance(message, Mapping) else None
        if len(steps) > 1 and steps[1][1] and isinstance(tasks, list) and len(tasks) > 1:
            words = f"task {steps[1][1]}: {words}"
        raise UsageError(words) from None
