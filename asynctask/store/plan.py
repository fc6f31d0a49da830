"""Which index answers a history query: chosen here, from the filter, not by SQLite.

Why choose in Python
--------------------

A history page is ``ORDER BY created_at DESC, seq DESC LIMIT n``. It is cheap exactly when
SQLite walks an index whose leading columns are fixed by the filter's equalities and whose
next column is ``created_at`` (each index entry ends with the rowid, ``seq``): the walk then
yields rows already in page order, ``since``/``until`` and the cursor become a range of the
walk, and it stops after ``n`` matches. Without ``ANALYZE`` statistics SQLite guesses between
the indexes a filter could use, and a bad guess walks a million rows (measured: a tenant and a
function rare in it, 110 ms through the function index; a state list, a sort of every row of
those states). So each plan names its index with ``INDEXED BY``, and a filter whose best index
starts with a column that takes several values (tenants, states) is split into one ordered walk
per value (an *arm*), each stopping at ``n``; a ``UNION ALL`` of the arms is merged by a sort
of at most ``arms x n`` rows.

The rules, in order (the first that applies):

1. ``trace_id``: the trace's few tasks by ``tasks_trace_id``, then sorted.
1b. a label the store found to be carried by few tasks (``narrow_label``, fewer than
   ``NARROW_LABEL_ROWS``): the label's rows of ``task_labels`` (key, value, created_at, seq),
   already in page order, each joined to its task by ``seq``. A label carried by many tasks
   stays a filter of the rules below: then it matches often enough for their walks to stop
   soon.
2. tenants and an ID prefix that the store found to cover few rows (``prefix_is_narrow``):
   the prefix's range of ``tasks_tenant_id`` per tenant, then sorted.
3. tenants and a function: ``tasks_tenant_function_created`` per tenant.
4. tenants and a queue: ``tasks_tenant_queue_created`` per tenant.
5. tenants: ``tasks_tenant_state_created`` per tenant and per state (the states asked for, or
   all seven: the state is an enum, so "every state" is seven short walks).
6. a function: ``tasks_function_created``.
7. states: ``tasks_state_created`` per state.
8. otherwise (nothing, a queue, a prefix, labels, times alone): ``tasks_created_at``.

Where a split would make more than ``MAX_ARMS`` arms (many tenants), the rule's index is walked
without the split (its first column in a filter) or, failing that, ``tasks_created_at``.

A queue or an ID prefix without tenants: the store first lists the stored tenants (a skip
scan, one index descent per tenant) and, when there are at most ``MAX_ARMS``, names them, so
rules 2 and 4 serve.

What stays a scan: a filter left to rule 8 reads rows newest first until ``n`` match, so a
queue or prefix without tenants when there are more than ``MAX_ARMS`` tenants,
read up to every row in the ``since``/``until`` window when they match rarely or not at all.
So does any other filter the walked index cannot check (a state within a function, a common
label within a rare tenant) when it matches few of the walked rows.
``benchmarks/bench_history.py`` measures them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from asynctask.model import TaskState
from asynctask.store import schema
from asynctask.store.rows import TaskFilter

#: Most ordered walks one query is split into. Each costs a B-tree descent and up to a page of
#: rows to merge; 7 states x 4 tenants stays under it.
MAX_ARMS: Final = 32

#: The page order. Every index a plan walks ends with (created_at, rowid), so it is the walk's.
ORDER: Final = "ORDER BY created_at DESC, seq DESC"

_COLUMNS: Final = ", ".join(schema.COLUMNS)
_QUALIFIED: Final = ", ".join(f"tasks.{column}" for column in schema.COLUMNS)

#: Tasks carrying a label up to which its ``task_labels`` rows are walked (rule 1b): a
#: label on fewer tasks than this bounds the walk; one on more matches often enough to be
#: a filter.
NARROW_LABEL_ROWS: Final = 20_000


@dataclass(frozen=True, slots=True)
class Plan:
    """How to read one page: the index, and one arm of equalities per ordered walk.

    ``arms`` holds, per walk, the (column, value) pairs that fix the index's leading columns;
    ``()`` for a single walk with none (the condition the filter adds does the rest).
    """

    index: str
    arms: tuple[tuple[tuple[str, Any], ...], ...]
    #: Walk ``task_labels`` (alias ``l``) for the label in ``arms`` and join each task.
    by_label: bool = False

    def sql(self, where: list[str], params: list[Any], limit: int) -> tuple[str, list[Any]]:
        """The statement: each arm's equalities and the filter's ``where``, newest first."""
        selects: list[str] = []
        all_params: list[Any] = []
        if self.by_label:
            ((key, value),) = self.arms
            conditions = ["l.key = ?", "l.value = ?", *where]
            select = (
                f"SELECT {_QUALIFIED} FROM task_labels AS l CROSS JOIN tasks ON tasks.seq = l.seq "
                f"WHERE {' AND '.join(conditions)} ORDER BY l.created_at DESC, l.seq DESC LIMIT ?"
            )
            return select, [key[1], value[1], *params, limit]
        for arm in self.arms:
            conditions = [f"{column} = ?" for column, _ in arm] + where
            select = f"SELECT {_COLUMNS} FROM tasks INDEXED BY {self.index}"
            if conditions:
                select += " WHERE " + " AND ".join(conditions)
            selects.append(f"{select} {ORDER} LIMIT ?")
            all_params.extend(value for _, value in arm)
            all_params.extend(params)
            all_params.append(limit)
        if len(selects) == 1:
            return selects[0], all_params
        merged = " UNION ALL ".join(f"SELECT * FROM ({select})" for select in selects)
        return f"{merged} {ORDER} LIMIT ?", [*all_params, limit]


def choose(
    f: TaskFilter, prefix_is_narrow: bool = False, narrow_label: tuple[str, str] | None = None
) -> Plan:
    """The plan of ``f`` (see the module docstring for the rules). ``f.tenants`` is not ``()``:
    the store answers that without a query."""
    states = tuple(f.states)
    if f.trace_id is not None:
        return Plan("tasks_trace_id", ((),))
    if narrow_label is not None:
        key, value = narrow_label
        return Plan("task_labels", ((("key", key), ("value", value)),), by_label=True)
    tenants = f.tenants
    if tenants is not None:
        if f.id_prefix and prefix_is_narrow:
            return _split("tasks_tenant_id", [(("tenant", t),) for t in tenants], "tasks_tenant_id")
        if f.function is not None:
            arms = [(("tenant", t), ("function", f.function)) for t in tenants]
            return _split("tasks_tenant_function_created", arms, "tasks_function_created")
        if f.queue is not None:
            arms = [(("tenant", t), ("queue", f.queue)) for t in tenants]
            return _split("tasks_tenant_queue_created", arms, "tasks_created_at")
        every = states or tuple(TaskState)
        arms = [(("tenant", t), ("state", s.value)) for t in tenants for s in every]
        fallback = "tasks_state_created" if states and len(states) <= MAX_ARMS else None
        if fallback is not None and len(arms) > MAX_ARMS:
            return Plan(fallback, tuple((("state", s.value),) for s in states))
        return _split("tasks_tenant_state_created", arms, "tasks_created_at")
    if f.function is not None:
        return Plan("tasks_function_created", ((("function", f.function),),))
    if states:
        return Plan("tasks_state_created", tuple((("state", s.value),) for s in states))
    return Plan("tasks_created_at", ((),))


def _split(index: str, arms: Sequence[tuple[tuple[str, Any], ...]], fallback: str) -> Plan:
    if len(arms) <= MAX_ARMS:
        return Plan(index, tuple(arms))
    return Plan(fallback, ((),))
