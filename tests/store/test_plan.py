"""The history queries' plans: each walks the index ``plan.choose`` names, in page order.

``EXPLAIN QUERY PLAN`` on a migrated empty database shows what SQLite will do without
statistics, which is how the daemon runs (it never runs ``ANALYZE``). A plan is in page order
when no walk of ``tasks`` sorts its rows: the ``USE TEMP B-TREE`` a split plan shows sorts the
arms' merged output (at most limit rows per arm), a sibling of ``SCAN (subquery-N)``, not of
the walk. Rules 1 and 2 (a trace, a narrow ID prefix) read a small range and sort it.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from asynctask.model import TaskState
from asynctask.store import Store, TaskFilter
from asynctask.store import plan as plan_module
from asynctask.store.query import list_sql

S = TaskState
FEW_TENANTS = ("a", "b")
MANY_TENANTS = tuple(f"t{n}" for n in range(plan_module.MAX_ARMS + 1))

#: (filter, prefix_is_narrow, the index every walk must use, whether it is walked in order)
CASES: list[tuple[TaskFilter, bool, str, bool]] = [
    (TaskFilter(), False, "tasks_created_at", True),
    (TaskFilter(since=1.0, until=2.0), False, "tasks_created_at", True),
    (TaskFilter(queue="q", id_prefix="x", labels={"k": "v"}), False, "tasks_created_at", True),
    (TaskFilter(trace_id="tr", tenants=("a",)), False, "tasks_trace_id", False),
    (TaskFilter(tenants=FEW_TENANTS, id_prefix="job-"), True, "tasks_tenant_id", False),
    (TaskFilter(tenants=FEW_TENANTS, id_prefix="job-"), False, "tasks_tenant_state_created", True),
    (TaskFilter(tenants=("a",), function="m:f"), False, "tasks_tenant_function_created", True),
    (TaskFilter(tenants=MANY_TENANTS, function="m:f"), False, "tasks_function_created", True),
    (TaskFilter(tenants=FEW_TENANTS, queue="q"), False, "tasks_tenant_queue_created", True),
    (TaskFilter(tenants=MANY_TENANTS, queue="q"), False, "tasks_created_at", True),
    (TaskFilter(tenants=("a",)), False, "tasks_tenant_state_created", True),
    (TaskFilter(tenants=("a",), states=(S.FAILED,)), False, "tasks_tenant_state_created", True),
    (TaskFilter(tenants=MANY_TENANTS), False, "tasks_created_at", True),
    (TaskFilter(tenants=MANY_TENANTS, states=(S.FAILED,)), False, "tasks_state_created", True),
    (TaskFilter(function="m:f", states=(S.FAILED,)), False, "tasks_function_created", True),
    (TaskFilter(states=(S.FAILED, S.EXPIRED)), False, "tasks_state_created", True),
    (TaskFilter(states=(S.FAILED,), until=5.0), False, "tasks_state_created", True),
]


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    import asyncio

    path = str(tmp_path_factory.mktemp("plans") / "tasks.db")

    async def create() -> None:
        await (await Store.open(path)).close()

    asyncio.run(create())
    return path


def _plan_rows(db: str, sql: str, params: list[Any]) -> list[tuple[int, int, str]]:
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()
    finally:
        conn.close()
    return [(int(node), int(parent), str(detail)) for node, parent, _, detail in rows]


@pytest.mark.parametrize(("f", "narrow", "index", "ordered"), CASES, ids=repr)
def test_every_walk_uses_the_chosen_index(
    db: str, f: TaskFilter, narrow: bool, index: str, ordered: bool
) -> None:
    sql, params = list_sql(f, 100, narrow)
    rows = _plan_rows(db, sql, params)
    walks = [detail for _, _, detail in rows if detail.startswith(("SEARCH tasks", "SCAN tasks"))]
    assert walks, rows
    assert all(f" INDEX {index}" in walk for walk in walks), walks
    siblings: dict[int, list[str]] = defaultdict(list)
    for _, parent, detail in rows:
        siblings[parent].append(detail)
    sorted_walks = [
        group
        for group in siblings.values()
        if any(d.startswith(("SEARCH tasks", "SCAN tasks")) for d in group)
        and any("TEMP B-TREE" in d for d in group)
    ]
    assert (not sorted_walks) == ordered, rows


def test_a_rare_label_walks_its_rows_in_page_order_and_joins_each_task(db: str) -> None:
    f = TaskFilter(tenants=("a",), labels={"k": "v", "other": "x"}, since=1.0, before=(5.0, 9))
    sql, params = list_sql(f, 100, narrow_label=("k", "v"))
    rows = _plan_rows(db, sql, params)
    details = [detail for _, _, detail in rows]
    label_walk = "SEARCH l USING PRIMARY KEY (key=? AND value=? AND created_at"
    task_lookup = "SEARCH tasks USING INTEGER PRIMARY KEY (rowid=?)"
    assert any(d.startswith(label_walk) for d in details), details
    assert any(d.startswith(task_lookup) for d in details), details
    assert not any("TEMP B-TREE" in d for d in details), details  # already in page order
    assert sql.count("EXISTS") == 1  # the other label stays a filter; the walked one does not


def test_a_split_plan_has_one_walk_per_tenant_and_state() -> None:
    chosen = plan_module.choose(TaskFilter(tenants=FEW_TENANTS, states=(S.FAILED, S.EXPIRED)))
    assert chosen.index == "tasks_tenant_state_created"
    assert chosen.arms == tuple(
        (("tenant", t), ("state", s)) for t in FEW_TENANTS for s in ("failed", "expired")
    )
    every_state = plan_module.choose(TaskFilter(tenants=("a",)))
    assert len(every_state.arms) == len(TaskState)


def test_limit_bounds_every_arm_and_the_merge() -> None:
    sql, params = list_sql(TaskFilter(states=(S.FAILED, S.EXPIRED)), 7)
    assert sql.count("LIMIT ?") == 3
    assert params.count(7) == 3


def test_plans_read_only_from_a_real_file(tmp_path: Path) -> None:
    """The INDEXED BY names exist: a plan naming a missing index fails to prepare."""
    import asyncio

    path = str(tmp_path / "t.db")

    async def create() -> None:
        await (await Store.open(path)).close()

    asyncio.run(create())
    for f, narrow, _, _ in CASES:
        sql, params = list_sql(f, 10, narrow)
        conn = sqlite3.connect(path)
        try:
            assert conn.execute(sql, params).fetchall() == []
        finally:
            conn.close()
