"""What ``asynctask queues`` shows: the scheduler's state as plain rows (no decisions here).

``queue_report`` builds every row; ``report_entries`` is what ``stats`` and ``metrics`` read
instead: per tenant, queue and function just the numbers a readout ranks by, and a callable
that builds the row, so a readout builds only the rows it shows (a row costs microseconds, and
a tenant may have tens of thousands of queues). The entries are lazy: a readout consumes them
in chunks with the event loop running in between, so each tenant's queues are copied into a
list when it is reached (the scheduler may add a queue meanwhile; a removed one reads as it
was).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from asynctask.core.entities import FunctionState, QueueState, TenantState
from asynctask.core.scheduler import Scheduler


def queue_report(
    scheduler: Scheduler, now: float, tenants: Iterable[str] | None = None
) -> dict[str, Any]:
    """Rows for every tenant, queue and function (only the given tenants' when ``tenants``)."""
    visible = None if tenants is None else frozenset(tenants)
    tenant_rows = []
    queue_rows = []
    for tenant in scheduler.tenants():
        if visible is not None and tenant.name not in visible:
            continue
        tenant_rows.append(_tenant_row(scheduler, tenant, now))
        queue_rows += [_queue_row(queue, now) for queue in tenant.queues.values()]
    function_rows = (
        [_function_row(f, now) for f in scheduler.functions()] if visible is None else []
    )
    return {"tenants": tenant_rows, "queues": queue_rows, "functions": function_rows}


#: ``(group, backlog, running, row)``: the shape of ``observe.readout.Entry``.
Entry = tuple[tuple[str, ...], int, int, Callable[[], dict[str, Any]]]


def report_entries(
    scheduler: Scheduler, now: float, tenants: Iterable[str] | None, queue: str | None = None
) -> dict[str, Callable[[], Iterator[Entry]]]:
    """Lazy entries of the visible tenants, their queues (only those named ``queue`` if
    given) and, for an admin (``tenants`` is ``None``), the functions; each call iterates
    them anew."""
    visible = None if tenants is None else frozenset(tenants)

    def tenant_states() -> list[TenantState]:
        return [t for t in scheduler.tenants() if visible is None or t.name in visible]

    def tenant_entries() -> Iterator[Entry]:
        for t in tenant_states():
            row = functools.partial(_tenant_row, scheduler, t, now)
            yield (t.name,), t.backlog, t.running, row

    def function_entries() -> Iterator[Entry]:
        for f in list(scheduler.functions()) if visible is None else []:
            yield (f.name,), f.queued, f.running, functools.partial(_function_row, f, now)

    return {
        "tenants": tenant_entries,
        "queues": lambda: _queue_entries(tenant_states(), now, queue),
        "functions": function_entries,
    }


def _queue_entries(tenants: list[TenantState], now: float, name: str | None) -> Iterator[Entry]:
    for tenant in tenants:
        if name is not None:
            found = tenant.queues.get(name)
            queues = [] if found is None else [found]
        else:
            queues = list(tenant.queues.values())
        for q in queues:
            yield (
                (tenant.name, q.name),
                len(q.fifo) + q.stored + q.scheduled + q.held,
                q.running,
                functools.partial(_queue_row, q, now),
            )


def _tokens(bucket: Any, now: float) -> float | None:
    return None if bucket is None else round(bucket.tokens(now), 3)


def _tenant_row(scheduler: Scheduler, tenant: TenantState, now: float) -> dict[str, Any]:
    limits = tenant.limits
    faults = tenant.faults
    confinement = scheduler.confinement(tenant, now)
    return {
        "tenant": tenant.name,
        "paused": tenant.paused,
        "weight": tenant.weight,
        "backlog": tenant.backlog,
        "running": tenant.running,
        "concurrency": limits.concurrency,
        "rate": limits.rate,
        "tokens": _tokens(tenant.bucket, now),
        "max_backlog": limits.max_backlog,
        "backlog_bytes": tenant.backlog_bytes,
        "max_backlog_bytes": limits.max_backlog_bytes,
        "refused": tenant.refused,
        "completed": tenant.completed,
        "held_by": tenant.parked if tenant.parked not in (None, "idle") else None,
        # Attempts that killed or timed out a worker within the fault window; why the tenant is
        # confined (always, faults, probation, or None) and to which worker shards (None: it
        # may use every shard).
        "faults": 0 if faults is None else faults.recent(scheduler.settings.sharding, now)[1],
        "confinement": confinement,
        "shards": list(scheduler.shards_of(tenant.name))
        if scheduler.confined(tenant, now)
        else None,
    }


def _queue_row(queue: QueueState, now: float) -> dict[str, Any]:
    return {
        "tenant": queue.tenant.name,
        "queue": queue.name,
        "paused": queue.paused or queue.tenant.paused,
        "backlog": len(queue.fifo) + queue.stored + queue.scheduled + queue.held,
        "queued": len(queue.fifo) + queue.stored,
        "scheduled": queue.scheduled,
        "paused_tasks": queue.held,
        "running": queue.running,
        "concurrency": queue.limits.concurrency,
        "rate": queue.limits.rate,
        "tokens": _tokens(queue.bucket, now),
        "held_by": queue.parked if queue.parked not in (None, "idle") else None,
    }


def _function_row(function: FunctionState, now: float) -> dict[str, Any]:
    return {
        "function": function.name,
        "paused": function.paused,
        "queued": function.queued,
        "running": function.running,
        "concurrency": function.limits.concurrency,
        "aimd_limit": function.aimd.limit if function.aimd is not None else None,
        "rate": function.limits.rate,
        "tokens": _tokens(function.bucket, now),
    }
