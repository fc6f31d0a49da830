"""The store's side of history retention: which finished tasks a purge pass may delete."""

from __future__ import annotations

import math
import random

from asynctask.model import FINAL_STATES, TaskState
from asynctask.store import InsertTask, TaskStore
from tests.store.helpers import ALL_STATES, make_row


async def test_old_finished_and_count_finished_see_finished_tasks_only(store: TaskStore) -> None:
    rng = random.Random(3)
    rows = [
        make_row(seq, state=rng.choice(ALL_STATES), created_at=1_000.0 + rng.randint(0, 40))
        for seq in range(1, 201)
    ]
    for row in rows:
        store.put(InsertTask(row))
    await store.flush()
    finished = sorted(
        (row for row in rows if row.state in FINAL_STATES), key=lambda r: (r.created_at, r.seq)
    )
    assert await store.count_finished() == len(finished)
    # the count cap asks for the oldest N finished, whatever their age
    got = await store.old_finished(math.inf, 25)
    assert [seq for seq, _, _, _ in got] == [row.seq for row in finished[:25]]
    # history_days asks for those created before a moment, oldest first
    got = await store.old_finished(1_020.0, 1_000)
    assert [seq for seq, _, _, _ in got] == [r.seq for r in finished if r.created_at < 1_020.0]
    assert all(
        (tenant, task_id, attempts) == (row.tenant, row.id, row.attempts)
        for (seq, tenant, task_id, attempts), row in zip(
            got, [r for r in finished if r.created_at < 1_020.0], strict=True
        )
    )
    assert not any(row.state not in FINAL_STATES for row in rows if row.seq in {g[0] for g in got})
    assert TaskState.QUEUED not in FINAL_STATES


async def test_finished_tasks_are_counted_and_found_per_tenant(store: TaskStore) -> None:
    """history_max counts each tenant's own finished tasks (README.md, "Using it")."""
    rng = random.Random(5)
    rows = [
        make_row(
            seq,
            tenant=rng.choice(["a", "b", "c"]),
            state=rng.choice(ALL_STATES),
            created_at=1_000.0 + rng.randint(0, 40),
        )
        for seq in range(1, 301)
    ]
    for row in rows:
        store.put(InsertTask(row))
    await store.flush()
    finished = sorted(
        (row for row in rows if row.state in FINAL_STATES), key=lambda r: (r.created_at, r.seq)
    )
    expected = {t: sum(1 for r in finished if r.tenant == t) for t in ("a", "b", "c")}
    assert await store.count_finished_by_tenant() == {t: n for t, n in expected.items() if n}
    for tenant in ("a", "b"):
        mine = [r.seq for r in finished if r.tenant == tenant]
        got = await store.old_finished(math.inf, 10, tenant)
        assert [seq for seq, _, _, _ in got] == mine[:10]
        assert {t for _, t, _, _ in got} == {tenant}
        got = await store.old_finished(1_020.0, 1_000, tenant)
        assert [seq for seq, _, _, _ in got] == [
            r.seq for r in finished if r.tenant == tenant and r.created_at < 1_020.0
        ]
