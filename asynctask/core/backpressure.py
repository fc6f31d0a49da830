"""Back pressure at submit: whether a tenant's backlog may take more tasks, and the reservation
that keeps concurrent submits from all passing one bound while they are being stored.

Admission reads only a tenant's counters and limits, never the ready queues, so a refusal costs
the same whatever the backlog; it is a function of the ``Board`` and nothing else.
"""

from __future__ import annotations

from collections.abc import Collection

from asynctask.core.board import Board
from asynctask.errors import SubmitThrottled, UsageError


def admit(
    board: Board, tenant_name: str, count: int, now: float, nbytes: int, queues: Collection[str]
) -> None:
    """Raise ``SubmitThrottled`` (retryable, with a hint of when) or ``UsageError`` (too many
    queue names: retrying will not help) if the tasks do not fit; count the refusal."""
    tenant = board.tenant(tenant_name, now)
    limits = tenant.limits
    new_queues = {name for name in queues if name not in tenant.queues}
    if len(tenant.queues) + len(new_queues) > limits.max_queues:
        raise UsageError(
            f"tenant {tenant_name!r} has {len(tenant.queues)} queues and this would add "
            f"{len(new_queues)}: the limit is {limits.max_queues} ([tenants] max_queues); "
            "use fewer queue names"
        )
    limit = limits.max_backlog
    waiting = tenant.backlog + tenant.reserved
    if waiting + count > limit:
        tenant.refused += count
        running = max(tenant.running, 1)
        retry_after = min(60.0, max(1.0, (waiting + count - limit) / running))
        raise SubmitThrottled(
            f"throttled: tenant {tenant_name!r} has {waiting} tasks waiting "
            f"(limit {limit}); "
            f"retry after {retry_after:.0f}s",
            retry_after,
        )
    byte_limit = limits.max_backlog_bytes
    waiting_bytes = tenant.backlog_bytes + tenant.reserved_bytes
    if waiting_bytes + nbytes > byte_limit:
        tenant.refused += count
        # tasks to run before it fits, at the tenant's mean payload size, per running slot
        mean = waiting_bytes / waiting if waiting else nbytes or 1
        over = (waiting_bytes + nbytes - byte_limit) / max(mean, 1)
        retry_after = min(60.0, max(1.0, over / max(tenant.running, 1)))
        raise SubmitThrottled(
            f"throttled: tenant {tenant_name!r} has {waiting_bytes} payload bytes "
            f"waiting and this submit adds {nbytes} (limit {byte_limit}, max_backlog_bytes); "
            f"retry after {retry_after:.0f}s",
            retry_after,
        )


def reserve(
    board: Board, tenant_name: str, count: int, nbytes: int, queues: Collection[str], now: float
) -> None:
    tenant = board.tenant(tenant_name, now)
    for name in queues:
        board.queue(tenant, name, now)
    tenant.reserved += count
    tenant.reserved_bytes += nbytes


def unreserve(board: Board, tenant_name: str, count: int, nbytes: int) -> None:
    tenant = board.tenants[tenant_name]
    tenant.reserved -= count
    tenant.reserved_bytes -= nbytes
