"""Back pressure at submit: whether a tenant's backlog may take more tasks, and the reservation
that keeps concurrent submits from all passing one bound while they are being stored. A retry
of dead-lettered tasks (``requeue_failed``) is a submit of tasks that already exist, and passes
the same bounds.

Admission reads only a tenant's counters and limits, never the ready queues, so a refusal costs
the same whatever the backlog; it is a function of the ``Board`` and nothing else.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from asynctask.core.board import Board
from asynctask.errors import SubmitThrottled, UsageError
from asynctask.model import LiveTask, TaskState


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


@dataclass(frozen=True, slots=True)
class Requeue:
    """Failed tasks moved back to ``queued``, and what they hold of each tenant's bounds
    (``reserved``: tenant -> (tasks, payload bytes)) until the caller has stored them,
    ``add``-ed them and ``unreserve``-d this."""

    tasks: list[LiveTask]
    reserved: dict[str, tuple[int, int]]


def requeue_failed(board: Board, tasks: Sequence[LiveTask], now: float) -> Requeue:
    """Every tenant's share must pass ``admit`` before any task moves, so a retry is taken
    whole or refused whole; the tasks keep their attempt count (the retry budget is spent)
    and their errors, and lose their end time."""
    for task in tasks:
        if task.state is not TaskState.FAILED:
            raise ValueError(f"only failed tasks can be re-queued, not {task.state}")
    by_tenant: dict[str, list[LiveTask]] = {}
    for task in tasks:
        by_tenant.setdefault(task.tenant, []).append(task)
    reserved: dict[str, tuple[int, int]] = {}
    queues: dict[str, set[str]] = {}
    for tenant, mine in by_tenant.items():
        reserved[tenant] = (len(mine), sum(len(task.payload) for task in mine))
        queues[tenant] = {task.queue for task in mine}
    for tenant, (count, nbytes) in reserved.items():
        admit(board, tenant, count, now, nbytes, queues[tenant])
    for tenant, (count, nbytes) in reserved.items():  # until added: concurrent submits see them
        reserve(board, tenant, count, nbytes, queues[tenant], now)
    for task in tasks:
        task.move(TaskState.QUEUED)
        task.finished_at = None
    return Requeue(list(tasks), reserved)
