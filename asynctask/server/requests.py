"""Turn untrusted request maps into validated model values, or refuse them with ``UsageError``.

Everything a client sends passes through here before the daemon sees it, so the daemon's code
can trust types and ranges. A refusal names the field and what was expected; the request then
changes nothing (a ``submit`` of many tasks is refused whole if any one is bad).

Wire shapes (protocol version 1):

* ``submit``: ``{"tasks": [spec, ...]}``, each spec ``{"function": "mod:fn", "payload": bytes
  (msgpack of [args, kwargs]), "id"?, "tenant"?, "queue"?, "priority"? 0-9, "delay"? seconds,
  "run_at"? epoch seconds, "ttl"? seconds, "retries"?, "timeout"? seconds, "labels"? {str: str},
  "on_success"?, "on_failure"?}``.
* ``status`` / ``wait``: ``{"tenant"?, "id", "timeout"? (wait only)}``.
* ``list``: ``{"tenant"?, "state"? [..], "queue"?, "function"?, "prefix"?, "since"?, "until"?,
  "labels"?, "limit"?, "cursor"?}``; the reply is ``{"tasks": [...], "cursor": str | None}``,
  the cursor (``asynctask.cursor``) naming the next page, None after the last.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import Any

from asynctask.core.cron import CATCH_UP, CronSchedule
from asynctask.cursor import decode_cursor
from asynctask.errors import UsageError
from asynctask.model import (
    DEFAULT_TENANT,
    FINAL_STATES,
    LIVE_STATES,
    MAX_SECONDS,
    PRIORITY_MAX,
    PRIORITY_MIN,
    WAITING_STATES,
    ListQuery,
    SubmitSpec,
    TaskState,
    is_function_ref,
    is_name,
    is_task_id,
)
from asynctask.resources import Limits

MAX_TASKS_PER_SUBMIT = 10_000
MAX_LIST_LIMIT = 10_000
MAX_LABELS = 32

_SPEC_KEYS = frozenset(
    {
        "function",
        "payload",
        "id",
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
        "limits",
        "resources",
        "trace_id",
    }
)

#: Longest ``trace_id``: a W3C traceparent is 55 characters; room for other schemes' IDs.
MAX_TRACE_ID = 128


def parse_submit(
    message: dict[str, Any], max_payload: int, now: float | None = None
) -> list[SubmitSpec]:
    """The specs of a ``submit``; ``now`` (epoch seconds, default the wall clock) bounds
    ``run_at``."""
    tasks = message.get("tasks")
    if not isinstance(tasks, list) or not tasks:
        raise UsageError("submit needs a non-empty list 'tasks'")
    if len(tasks) > MAX_TASKS_PER_SUBMIT:
        raise UsageError(f"at most {MAX_TASKS_PER_SUBMIT} tasks per submit, got {len(tasks)}")
    specs = []
    for index, raw in enumerate(tasks):
        try:
            specs.append(parse_spec(raw, max_payload, now))
        except UsageError as exc:
            where = f"task {index}: " if len(tasks) > 1 else ""
            raise UsageError(f"{where}{exc.message}") from None
    return specs


def parse_spec(raw: Any, max_payload: int, now: float | None = None) -> SubmitSpec:
    if not isinstance(raw, dict):
        raise UsageError("a task spec must be a map")
    unknown = set(raw) - _SPEC_KEYS
    if unknown:
        raise UsageError(f"unknown task option(s): {', '.join(sorted(map(str, unknown)))}")
    function = raw.get("function")
    if not isinstance(function, str) or not is_function_ref(function):
        raise UsageError(f"function must look like package.module:function, got {function!r}")
    payload = raw.get("payload")
    if not isinstance(payload, bytes):
        raise UsageError("payload must be msgpack bytes of [args, kwargs]")
    labels = parse_labels(raw.get("labels"))
    label_bytes = labels_size(labels)
    if len(payload) + label_bytes > max_payload:
        if not label_bytes:
            raise UsageError(
                f"task arguments are {len(payload)} bytes, more than the limit of {max_payload}"
            )
        raise UsageError(
            f"task arguments ({len(payload)} bytes) and labels ({label_bytes} bytes) are "
            f"{len(payload) + label_bytes} bytes, more than the limit of {max_payload} "
            "([daemon] max_payload counts both)"
        )
    return SubmitSpec(
        function=function,
        payload=payload,
        tenant=_tenant(raw),
        id=_optional_id(raw.get("id")),
        queue=_optional_name(raw, "queue"),
        priority=_priority(raw["priority"]) if raw.get("priority") is not None else None,
        delay=_seconds(raw, "delay"),
        run_at=_run_at(raw, now),
        ttl=_seconds(raw, "ttl"),
        retries=_count(raw, "retries"),
        timeout=_seconds(raw, "timeout", positive=True),
        labels=labels,
        on_success=_optional_function(raw, "on_success"),
        on_failure=_optional_function(raw, "on_failure"),
        limits=parse_function_limits(raw.get("limits")),
        resources=parse_resources(raw.get("resources")),
        trace_id=parse_trace_id(raw.get("trace_id")),
    )


def parse_trace_id(raw: Any) -> str | None:
    """Any printable ASCII text up to ``MAX_TRACE_ID`` characters (the daemon never reads it)."""
    if raw is None:
        return None
    if (
        not isinstance(raw, str)
        or not 0 < len(raw) <= MAX_TRACE_ID
        or not (raw.isascii() and raw.isprintable())
    ):
        raise UsageError(f"trace_id must be 1-{MAX_TRACE_ID} printable ASCII characters")
    return raw


def parse_resources(raw: Any) -> dict[str, Any] | None:
    """``resources`` of a spec: the attempt's memory, cpu, open_files, processes, file_size."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise UsageError("resources must be a map of memory, cpu, open_files, processes, file_size")
    if "user" in raw:
        raise UsageError("resources: 'user' can only be set in the daemon's [workers] config")
    try:
        return Limits.from_wire(raw).to_wire() or None
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def parse_function_limits(raw: Any) -> dict[str, float] | None:
    """``limits`` of a spec: the function's own concurrency, rate (per second) and burst."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise UsageError("limits must be a map of concurrency, rate and burst")
    unknown = set(raw) - {"concurrency", "rate", "burst"}
    if unknown:
        raise UsageError(f"unknown limit(s): {', '.join(sorted(map(str, unknown)))}")
    limits: dict[str, float] = {}
    concurrency = raw.get("concurrency")
    if concurrency is not None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int):
            raise UsageError("limits.concurrency must be a whole number")
        if not 1 <= concurrency <= 1_000_000:
            raise UsageError("limits.concurrency must be between 1 and 1000000")
        limits["concurrency"] = concurrency
    for name, low in (("rate", 0.0), ("burst", 1.0)):
        value = raw.get(name)
        if value is None:
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise UsageError(f"limits.{name} must be a number")
        if value < low or (name == "rate" and value == 0):
            raise UsageError(
                f"limits.{name} must be {'positive' if name == 'rate' else 'at least 1'}"
            )
        limits[name] = float(value)
    return limits or None


def parse_task_ref(message: dict[str, Any]) -> tuple[str, str]:
    task_id = message.get("id")
    if not isinstance(task_id, str) or not is_task_id(task_id):
        raise UsageError(f"not a task ID: {task_id!r}")
    return _tenant(message), task_id


def parse_log_offsets(message: dict[str, Any]) -> dict[int, int]:
    """``logs``: ``{"offsets": {attempt: bytes already read}}``, all optional."""
    raw = message.get("offsets") or {}
    if not isinstance(raw, dict) or not all(
        type(k) is int and type(v) is int and k > 0 and v >= 0 for k, v in raw.items()
    ):
        raise UsageError("offsets must map attempt numbers (1, 2, ...) to byte offsets (>= 0)")
    return dict(raw)


def parse_drain(message: dict[str, Any]) -> float | None:
    """``stop``: ``{"drain"?: seconds}``, how long running attempts may still take."""
    return _seconds(message, "drain")


def parse_wait_timeout(message: dict[str, Any]) -> float | None:
    return _seconds(message, "timeout")


def parse_list(message: dict[str, Any]) -> ListQuery:
    tenant = message.get("tenant")
    if tenant is not None and (not isinstance(tenant, str) or not is_name(tenant)):
        raise UsageError(f"not a tenant name: {tenant!r}")
    states_raw = message.get("state") or []
    if isinstance(states_raw, str):
        states_raw = [states_raw]
    if not isinstance(states_raw, list):
        raise UsageError("state must be a list of task states")
    states = []
    for state in states_raw:
        try:
            states.append(TaskState(state))
        except ValueError:
            known = ", ".join(s.value for s in TaskState)
            raise UsageError(f"unknown state {state!r} (known: {known})") from None
    limit = message.get("limit", 100)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIST_LIMIT:
        raise UsageError(f"limit must be an integer from 1 to {MAX_LIST_LIMIT}")
    function = message.get("function")
    if function is not None and not isinstance(function, str):
        raise UsageError("function must be a string")
    prefix = message.get("prefix")
    if prefix is not None and not isinstance(prefix, str):
        raise UsageError("prefix must be a string")
    return ListQuery(
        tenants=(tenant,) if tenant else None,
        states=tuple(states),
        queue=_optional_name(message, "queue"),
        function=function,
        prefix=prefix or None,
        since=_epoch(message, "since"),
        until=_epoch(message, "until"),
        labels=parse_labels(message.get("labels")),
        limit=limit,
        trace_id=parse_trace_id(message.get("trace_id")),
        before=None if message.get("cursor") is None else decode_cursor(message["cursor"]),
    )


def parse_cancel(message: dict[str, Any]) -> tuple[ListQuery, str | None]:
    """A ``cancel`` selector: only live states (a finished task cannot be cancelled)."""
    return _parse_selector(message, "cancel", LIVE_STATES, "only live tasks can be cancelled")


def parse_delete(message: dict[str, Any]) -> tuple[ListQuery, str | None]:
    """A ``delete`` selector: finished tasks only (cancel live ones first); all of them by
    default."""
    query, task_id = _parse_selector(
        message, "delete", FINAL_STATES, "only finished tasks can be deleted (cancel first)"
    )
    return replace(query, states=query.states or _in_order(FINAL_STATES)), task_id


def _in_order(states: frozenset[TaskState]) -> tuple[TaskState, ...]:
    """A set of states in ``TaskState``'s order, for messages and stable queries."""
    return tuple(state for state in TaskState if state in states)


def parse_retry(message: dict[str, Any]) -> tuple[ListQuery, str | None]:
    """A ``retry`` selector: failed tasks (the dead-letter queue) only; that is the default."""
    query, task_id = _parse_selector(
        message, "retry", frozenset({TaskState.FAILED}), "only failed tasks can be retried"
    )
    return replace(query, states=(TaskState.FAILED,)), task_id


def _parse_selector(
    message: dict[str, Any], op: str, allowed: frozenset[TaskState], refusal: str
) -> tuple[ListQuery, str | None]:
    """The ``list`` fields (no ``limit``) and ``id`` (one task), at least one of them, and
    only ``allowed`` states."""
    fields = (
        "id",
        "tenant",
        "state",
        "queue",
        "function",
        "prefix",
        "since",
        "until",
        "labels",
        "trace_id",
    )
    if not any(message.get(name) not in (None, "", [], {}) for name in fields):
        raise UsageError(
            f"{op} needs a selector: --tenant, --queue, --function, --state, --prefix, "
            "--label, --since or --until (or a task ID)"
        )
    if "limit" in message:
        raise UsageError(f"{op} takes no limit: it touches every task the selector matches")
    if "cursor" in message:
        raise UsageError(f"{op} takes no cursor: it touches every task the selector matches")
    task_id = message.get("id")
    if task_id is not None and (not isinstance(task_id, str) or not is_task_id(task_id)):
        raise UsageError(f"not a task ID: {task_id!r}")
    query = parse_list(message)
    refused = [s.value for s in query.states if s not in allowed]
    if refused:
        raise UsageError(
            f"{refusal}, not {', '.join(refused)} ones "
            f"({op} takes: {', '.join(s.value for s in _in_order(allowed))})"
        )
    return query, task_id


_CRON_TASK_KEYS = frozenset(
    {
        "function",
        "payload",
        "queue",
        "priority",
        "retries",
        "timeout",
        "labels",
        "limits",
        "resources",
    }
)


def parse_cron_add(
    message: dict[str, Any], max_payload: int, now: float | None = None
) -> tuple[str, str, CronSchedule, str, dict[str, Any]]:
    """``cron_add``: ``{"tenant"?, "name", "expr", "tz"?, "catch_up"?, "task": {...}}``; the
    task takes ``submit``'s function, payload and options, but no ID or timing of its own."""
    tenant = _tenant(message)
    name = message.get("name")
    if not isinstance(name, str) or not is_name(name):
        raise UsageError(f"not a cron entry name: {name!r} (letters, digits, . _ -)")
    expr, tz = message.get("expr"), message.get("tz") or "UTC"
    if not isinstance(expr, str) or not isinstance(tz, str):
        raise UsageError("expr and tz must be strings")
    try:
        schedule = CronSchedule(expr, tz)
        schedule.first_slot(time.time() if now is None else now)  # a date that never comes
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    catch_up = message.get("catch_up") or "one"
    if catch_up not in CATCH_UP:
        raise UsageError(f"catch_up must be one of {', '.join(CATCH_UP)}, not {catch_up!r}")
    raw = message.get("task")
    if not isinstance(raw, dict):
        raise UsageError("cron_add needs a 'task' map")
    extra = set(raw) - _CRON_TASK_KEYS
    if extra:
        raise UsageError(
            f"a cron task cannot have {', '.join(sorted(map(str, extra)))} "
            "(its ID and time come from the schedule)"
        )
    spec = parse_spec({**raw, "tenant": tenant}, max_payload, now)
    task: dict[str, Any] = {"function": spec.function, "payload": spec.payload}
    for key in ("queue", "priority", "retries", "timeout"):
        value = getattr(spec, key)
        if value is not None:
            task[key] = value
    if spec.labels:
        task["labels"] = spec.labels
    if spec.limits:
        task["limits"] = spec.limits
    if spec.resources:
        task["resources"] = spec.resources
    return tenant, name, schedule, catch_up, task


def parse_cron_ref(message: dict[str, Any]) -> tuple[str, str]:
    name = message.get("name")
    if not isinstance(name, str) or not is_name(name):
        raise UsageError(f"not a cron entry name: {name!r}")
    return _tenant(message), name


PAUSE_KINDS = ("tenant", "queue", "function")

#: Fields that make ``pause``/``resume`` act on tasks one by one, not on a tenant/queue/function.
_TASK_SELECTOR_FIELDS = ("id", "state", "prefix", "since", "until", "labels")


def is_task_selector(message: dict[str, Any]) -> bool:
    """Whether a ``pause``/``resume`` names tasks (an ID or a task filter) rather than a target."""
    return any(message.get(name) not in (None, "", [], {}) for name in _TASK_SELECTOR_FIELDS)


def parse_hold(message: dict[str, Any], op: str) -> tuple[ListQuery, str | None]:
    """A ``pause``/``resume`` of tasks: the selector flags, only waiting states (a running
    attempt is not stopped by a pause; cancel it)."""
    return _parse_selector(
        message, op, WAITING_STATES, "only waiting tasks can be paused or resumed"
    )


def parse_pause_target(message: dict[str, Any]) -> tuple[str, str, str]:
    """``{"tenant"?, "queue"?, "function"?}`` -> ``(kind, tenant, name)``.

    ``--tenant T`` pauses a tenant, ``--tenant T --queue Q`` one of its queues, ``--function F``
    a function (for every tenant). Exactly one target per request.
    """
    tenant = message.get("tenant")
    queue = message.get("queue")
    function = message.get("function")
    if function is not None:
        if tenant is not None or queue is not None:
            raise UsageError(
                "pause a function alone, or a tenant, or a tenant's queue "
                "(to pause one tenant's tasks of a function, add a task filter: --state queued)"
            )
        if not isinstance(function, str) or not is_function_ref(function):
            raise UsageError(f"function must look like package.module:function, got {function!r}")
        return ("function", "", function)
    if tenant is None:
        raise UsageError(
            "say what to pause: --tenant, --tenant with --queue, or --function; "
            "or tasks by ID, --state, --prefix, --label, --since or --until"
        )
    name = _tenant(message)
    if queue is not None:
        return ("queue", name, _optional_name(message, "queue") or "")
    return ("tenant", name, "")


def parse_labels(raw: Any) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise UsageError("labels must be a map of strings to strings")
    if len(raw) > MAX_LABELS:
        raise UsageError(f"at most {MAX_LABELS} labels per task")
    for key, value in raw.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise UsageError("labels must be a map of strings to strings")
        if not key or len(key) > 128 or len(value) > 1024:
            raise UsageError(f"label {key!r}: keys are 1-128 and values up to 1024 characters")
    return dict(raw)


def labels_size(labels: dict[str, str]) -> int:
    """The bytes ``labels`` count toward ``max_payload``: their keys and values in UTF-8."""
    return sum(len(key.encode()) + len(value.encode()) for key, value in labels.items())


def parse_tenant(message: dict[str, Any]) -> str:
    """The request's ``tenant`` (default ``default``), checked to be a tenant name."""
    return _tenant(message)


def _tenant(message: dict[str, Any]) -> str:
    tenant = message.get("tenant", DEFAULT_TENANT)
    if tenant is None:
        return DEFAULT_TENANT
    if not isinstance(tenant, str) or not is_name(tenant):
        raise UsageError(f"not a tenant name: {tenant!r}")
    return tenant


def _optional_id(raw: Any) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or not is_task_id(raw):
        raise UsageError(f"a task ID is 1-200 printable characters without spaces, got {raw!r}")
    return raw


def _optional_name(message: dict[str, Any], key: str) -> str | None:
    raw = message.get(key)
    if raw is None:
        return None
    if not isinstance(raw, str) or not is_name(raw):
        raise UsageError(f"not a valid {key} name: {raw!r}")
    return raw


def _optional_function(message: dict[str, Any], key: str) -> str | None:
    raw = message.get(key)
    if raw is None:
        return None
    if not isinstance(raw, str) or not is_function_ref(raw):
        raise UsageError(f"{key} must look like package.module:function, got {raw!r}")
    return raw


def _priority(raw: Any) -> int:
    if not isinstance(raw, int) or isinstance(raw, bool) or not PRIORITY_MIN <= raw <= PRIORITY_MAX:
        raise UsageError(f"priority must be an integer from {PRIORITY_MIN} to {PRIORITY_MAX}")
    return raw


def _number(message: dict[str, Any], key: str) -> float | None:
    raw = message.get(key)
    if raw is None:
        return None
    if not isinstance(raw, int | float) or isinstance(raw, bool) or not math.isfinite(raw):
        raise UsageError(f"{key} must be a number, got {raw!r}")
    return float(raw)


def _seconds(message: dict[str, Any], key: str, *, positive: bool = False) -> float | None:
    """A duration in seconds, at most ``MAX_SECONDS`` (100 years): a time past that no longer
    fits a date, and reading the task back would fail."""
    value = _number(message, key)
    if value is not None and (value < 0 or (positive and value == 0) or value > MAX_SECONDS):
        raise UsageError(
            f"{key} must be {'more than 0' if positive else '0 or more'} and at most "
            f"{MAX_SECONDS:.0f} seconds (100 years), got {value!r}"
        )
    return value


def _epoch(message: dict[str, Any], key: str) -> float | None:
    return _number(message, key)


def _run_at(message: dict[str, Any], now: float | None) -> float | None:
    """``run_at``: epoch seconds from 0 (the past means now) to 100 years from ``now``."""
    value = _number(message, "run_at")
    if value is None:
        return None
    latest = (time.time() if now is None else now) + MAX_SECONDS
    if not 0 <= value <= latest:
        raise UsageError(
            "run_at must be a time from 1970 to 100 years from now "
            f"(epoch seconds 0 to {latest:.0f}), got {value!r}"
        )
    return value


def _count(message: dict[str, Any], key: str) -> int | None:
    raw = message.get(key)
    if raw is None:
        return None
    if not isinstance(raw, int) or isinstance(raw, bool) or not 0 <= raw <= 1000:
        raise UsageError(f"{key} must be an integer from 0 to 1000")
    return raw
