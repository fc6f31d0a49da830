"""``Store.list_tasks``' choice of query: the probes that tell a narrow filter from a wide one.

``plan.choose`` picks the index from the filter; what it cannot know from the filter alone is
read here with bounded counts on the read connection: the tenants stored (when a queue or an ID
prefix is asked for without tenants), how many rows an ID prefix's ranges hold, and the rarest
of the wanted labels.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import aiosqlite

from asynctask.store import schema
from asynctask.store.errors import map_errors
from asynctask.store.plan import MAX_ARMS, NARROW_LABEL_ROWS
from asynctask.store.query import NARROW_PREFIX_ROWS, label_probe_sql, list_sql, prefix_probe_sql
from asynctask.store.reading import first_row
from asynctask.store.rows import TaskFilter


async def plan_list(
    conn: aiosqlite.Connection, f: TaskFilter, limit: int
) -> tuple[str, list[Any]] | None:
    """The ``SELECT`` and its parameters that list ``f``'s tasks, at most ``limit`` (more than
    0, and ``f.tenants`` not empty); ``None`` when no task can match (no tenant is stored).

    An ID prefix within tenants is probed first (a bounded count on ``tasks_tenant_id``):
    ``plan.choose`` reads a narrow prefix's range and sorts it, and walks a wide one in page
    order instead, where sorting it would cost more than filtering it.
    """
    named = f
    if f.tenants is None and (f.queue is not None or f.id_prefix) and f.function is None:
        # Queues and IDs are per tenant: with the tenants named, their indexes serve.
        tenants = await _tenants(conn, MAX_ARMS + 1)
        if not tenants:
            return None
        if len(tenants) <= MAX_ARMS:
            named = replace(f, tenants=tuple(tenants))
    narrow = False
    probe = prefix_probe_sql(named)
    if probe is not None:
        with map_errors("listing tasks"):
            row = first_row(await conn.execute_fetchall(*probe))
        narrow = row is not None and int(row[0]) < NARROW_PREFIX_ROWS
    if f.tenants is not None or f.queue is not None or narrow:
        f = named  # a wide prefix alone: one walk in page order beats a walk per tenant
    label = await _rarest_label(conn, f) if f.labels and f.trace_id is None else None
    return list_sql(f, limit, narrow, label)


async def _rarest_label(conn: aiosqlite.Connection, f: TaskFilter) -> tuple[str, str] | None:
    """The filter's label carried by the fewest tasks, if fewer than
    ``NARROW_LABEL_ROWS`` carry it (one bounded count per label)."""
    best: tuple[int, tuple[str, str]] | None = None
    for key, value in f.labels.items():
        with map_errors("listing tasks"):
            row = first_row(await conn.execute_fetchall(*label_probe_sql(key, value)))
        count = int(row[0]) if row is not None else 0
        if count < NARROW_LABEL_ROWS and (best is None or count < best[0]):
            best = (count, (key, value))
    return None if best is None else best[1]


async def _tenants(conn: aiosqlite.Connection, most: int) -> list[str]:
    """The distinct tenants stored, up to ``most``: one index descent per tenant."""
    with map_errors("listing tenants"):
        rows = list(await conn.execute_fetchall(schema.SELECT_TENANTS, (most,)))
    return [str(tenant) for (tenant,) in rows]
