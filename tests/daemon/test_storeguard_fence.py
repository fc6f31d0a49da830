"""The ``StoreGuard`` on a shared PostgreSQL store: a write the fence refuses is let go, not
re-written for ever (docs/scale-out.md, "Fencing in the writer").

A change whose commit failed is normally kept and written again until it lands. If its task's
partition has meanwhile moved to another daemon, the re-write is refused by the fence: the
guard must then cancel the change's future (the other daemon owns the task) and stop
retrying it, while a change of a partition still held lands as usual."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from asynctask.core.leases import Take
from asynctask.core.partitions import partition_of
from asynctask.daemon.storeguard import StoreGuard
from asynctask.daemon.views import task_from_row, update_of
from asynctask.model import TaskState
from asynctask.store import InsertTask
from asynctask.store.pgleases import PgLeases
from asynctask.store.pgwriter import Fence
from asynctask.store.postgres import PostgresStore
from tests import pgcluster
from tests.store.helpers import make_row

P = 4


def _tenant_in(partition: int) -> str:
    return next(t for t in (f"t{n}" for n in range(1000)) if partition_of(t, P) == partition)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[PostgresStore]:
    opened = await PostgresStore.open(await pgcluster.url_for(tmp_path))
    yield opened
    await opened.close()


async def _take(url: str, me: str, partition: int, read_epoch: int) -> int:
    leases = await PgLeases.open(url, me)
    try:
        now = time.time()
        row = (await leases.take(Take(partition, read_epoch, read_epoch + 1, now, now + 60)))[
            partition
        ]
    finally:
        await leases.close()
    assert row is not None
    return row.epoch


async def test_a_held_back_change_of_a_moved_partition_is_let_go(store: PostgresStore) -> None:
    kept, moved = _tenant_in(0), _tenant_in(1)
    epochs = {0: await _take(store.url, "me", 0, 0), 1: await _take(store.url, "me", 1, 0)}
    store.fence_writes(lambda: Fence("me", dict(epochs), time.time() + 1.0, P))
    rows = [make_row(1, tenant=kept, id="k"), make_row(2, tenant=moved, id="m")]
    for row in rows:
        await store.put(InsertTask(row))
    tasks = [task_from_row(row) for row in rows]
    admin: Any = await asyncpg.connect(store.url)
    guard = StoreGuard(store, update_of, time.time)
    guard.start()
    try:
        # Make both writes fail at the database, so the guard holds them back.
        await admin.execute("ALTER TABLE tasks ADD CONSTRAINT few CHECK (attempts < 5)")
        futures = []
        for task in tasks:
            task.state, task.attempts = TaskState.SUCCEEDED, 5
            futures.append(guard.record(task))
        await asyncio.wait(futures, timeout=0.5)
        assert guard.unstored == 2
        # Meanwhile another daemon takes partition 1; then the database takes writes again.
        await admin.execute(
            "UPDATE partitions SET owner = 'other', epoch = epoch + 1 WHERE partition = 1"
        )
        await admin.execute("ALTER TABLE tasks DROP CONSTRAINT few")
        done, _ = await asyncio.wait(futures, timeout=10)
        assert len(done) == 2
        assert futures[0].result() is None  # the held partition's change landed
        assert futures[1].cancelled()  # the moved one was let go
        assert guard.unstored == 0
        stored = await admin.fetch("SELECT id, state, attempts FROM tasks ORDER BY seq")
        assert [tuple(r) for r in stored] == [("k", "succeeded", 5), ("m", "queued", 0)]
    finally:
        await guard.close()
        await admin.close()
