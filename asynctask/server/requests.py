"""Turn untrusted request maps into validated model values, or refuse them with ``UsageError``.

Everything a client sends passes through here before the daemon sees it, so the daemon's code
can trust types and ranges. What a request may hold is defined once, in the wire schema
(``asynctask.protocol.requests``: a msgspec ``Struct`` per request shape, with its checks),
which the clients and the command line build and check their requests with too; this module
converts a decoded map into its Struct (``msgspec.convert``, strict) and the Struct into the
model values the daemon takes (``SubmitSpec``, ``ListQuery``, ...), adding the checks that need
the daemon: its ``max_payload``, its clock, a selector's allowed states, a cron schedule. A
refusal names the field and what was expected; the request then changes nothing (a ``submit``
of many tasks is refused whole if any one is bad).
"""

from __future__ import annotations

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
    WAITING_STATES,
    ListQuery,
    SubmitSpec,
    TaskState,
)
from asynctask.protocol.requests import (
    MAX_LABELS,
    MAX_LIST_LIMIT,
    MAX_TASKS_PER_SUBMIT,
    MAX_TRACE_ID,
    SELECTOR_FIELDS,
    CronAddRequest,
    CronRef,
    ListRequest,
    LogsRequest,
    PauseTarget,
    SelectorRequest,
    StopRequest,
    TaskRef,
    TaskSpec,
    TenantRequest,
    WaitRequest,
    check_spec,
    decode,
    decode_submit,
    is_task_selector,
    labels_size,
)

__all__ = [
    "MAX_LABELS",
    "MAX_LIST_LIMIT",
    "MAX_TASKS_PER_SUBMIT",
    "MAX_TRACE_ID",
    "PAUSE_KINDS",
    "is_task_selector",
    "labels_size",
    "parse_cancel",
    "parse_cron_add",
    "parse_cron_ref",
    "parse_delete",
    "parse_drain",
    "parse_hold",
    "parse_list",
    "parse_log_offsets",
    "parse_pause_target",
    "parse_retry",
    "parse_spec",
    "parse_submit",
    "parse_task_ref",
    "parse_tenant",
    "parse_wait_timeout",
]


def parse_submit(
    message: dict[str, Any], max_payload: int, now: float | None = None
) -> tuple[list[SubmitSpec], bool]:
    """The specs of a ``submit`` and whether its reply is brief; ``now`` (epoch seconds,
    default the wall clock) bounds ``run_at``."""
    request = decode_submit(message)
    tasks = request.tasks
    specs = []
    for index, spec in enumerate(tasks):
        try:
            specs.append(_submit_spec(check_spec(spec, max_payload, now)))
        except UsageError as exc:
            where = f"task {index}: " if len(tasks) > 1 else ""
            raise UsageError(f"{where}{exc.message}") from None
    return specs, request.brief


def parse_spec(raw: Any, max_payload: int, now: float | None = None) -> SubmitSpec:
    """One task spec map, as a task of a ``submit`` is checked."""
    return _submit_spec(check_spec(decode(TaskSpec, raw), max_payload, now))


def _submit_spec(spec: TaskSpec) -> SubmitSpec:
    return SubmitSpec(
        function=spec.function,
        payload=spec.payload,
        tenant=spec.tenant or DEFAULT_TENANT,
        id=spec.id,
        queue=spec.queue,
        priority=spec.priority,
        delay=spec.delay,
        run_at=spec.run_at,
        ttl=spec.ttl,
        retries=spec.retries,
        timeout=spec.timeout,
        labels=spec.labels or {},
        on_success=spec.on_success,
        on_failure=spec.on_failure,
        limits=None if spec.limits is None else spec.limits.to_dict(),
        resources=spec.resources,
        trace_id=spec.trace_id,
        defaults=None if spec.defaults is None else spec.defaults.to_dict(),
    )


def parse_task_ref(message: dict[str, Any]) -> tuple[str, str]:
    ref = decode(TaskRef, message)
    return ref.tenant or DEFAULT_TENANT, ref.id


def parse_log_offsets(message: dict[str, Any]) -> dict[int, int]:
    """``logs``: ``{"offsets": {attempt: bytes already read}}``, all optional."""
    return dict(decode(LogsRequest, message).offsets or {})


def parse_drain(message: dict[str, Any]) -> float | None:
    """``stop``: ``{"drain"?: seconds}``, how long running attempts may still take."""
    return decode(StopRequest, message).drain


def parse_wait_timeout(message: dict[str, Any]) -> float | None:
    return decode(WaitRequest, message).timeout


def parse_list(message: dict[str, Any]) -> ListQuery:
    return _list_query(decode(ListRequest, message))


def _list_query(request: ListRequest) -> ListQuery:
    return ListQuery(
        tenants=(request.tenant,) if request.tenant else None,
        states=tuple(TaskState(state) for state in request.states),
        queue=request.queue,
        function=request.function,
        prefix=request.prefix or None,
        since=request.since,
        until=request.until,
        labels=request.labels or {},
        limit=request.limit,
        trace_id=request.trace_id,
        before=None if request.cursor is None else decode_cursor(request.cursor),
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
    if not any(message.get(name) not in (None, "", [], {}) for name in SELECTOR_FIELDS):
        raise UsageError(
            f"{op} needs a selector: --tenant, --queue, --function, --state, --prefix, "
            "--label, --since or --until (or a task ID)"
        )
    if "limit" in message:
        raise UsageError(f"{op} takes no limit: it touches every task the selector matches")
    if "cursor" in message:
        raise UsageError(f"{op} takes no cursor: it touches every task the selector matches")
    selector = decode(SelectorRequest, message)
    query = _list_query(selector)
    refused = [s.value for s in query.states if s not in allowed]
    if refused:
        raise UsageError(
            f"{refusal}, not {', '.join(refused)} ones "
            f"({op} takes: {', '.join(s.value for s in _in_order(allowed))})"
        )
    return query, selector.id


def parse_cron_add(
    message: dict[str, Any], max_payload: int, now: float | None = None
) -> tuple[str, str, CronSchedule, str, dict[str, Any]]:
    """``cron_add``: ``{"tenant"?, "name", "expr", "tz"?, "catch_up"?, "task": {...}}``; the
    task takes ``submit``'s function, payload and options, but no ID or timing of its own."""
    request = decode(CronAddRequest, message)
    tenant = request.tenant or DEFAULT_TENANT
    try:
        schedule = CronSchedule(request.expr, request.tz or "UTC")
        schedule.first_slot(time.time() if now is None else now)  # a date that never comes
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    catch_up = request.catch_up or "one"
    if catch_up not in CATCH_UP:
        raise UsageError(f"catch_up must be one of {', '.join(CATCH_UP)}, not {catch_up!r}")
    spec = parse_spec({**request.task, "tenant": tenant}, max_payload, now)
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
    return tenant, request.name, schedule, catch_up, task


def parse_cron_ref(message: dict[str, Any]) -> tuple[str, str]:
    ref = decode(CronRef, message)
    return ref.tenant or DEFAULT_TENANT, ref.name


PAUSE_KINDS = ("tenant", "queue", "function")


def parse_hold(message: dict[str, Any], op: str) -> tuple[ListQuery, str | None]:
    """A ``pause``/``resume`` of tasks: the selector flags, only waiting states (a running
    attempt is not stopped by a pause; cancel it)."""
    return _parse_selector(
        message, op, WAITING_STATES, "only waiting tasks can be paused or resumed"
    )


def parse_pause_target(message: dict[str, Any]) -> tuple[str, str, str]:
    """``{"tenant"?, "queue"?, "function"?}`` -> ``(kind, tenant, name)``: exactly one target
    per request (``PauseTarget``)."""
    target = decode(PauseTarget, message)
    if target.function is not None:
        return ("function", "", target.function)
    tenant = target.tenant or DEFAULT_TENANT
    if target.queue is not None:
        return ("queue", tenant, target.queue)
    return ("tenant", tenant, "")


def parse_tenant(message: dict[str, Any]) -> str:
    """The request's ``tenant`` (default ``default``), checked to be a tenant name."""
    return decode(TenantRequest, message).tenant or DEFAULT_TENANT
