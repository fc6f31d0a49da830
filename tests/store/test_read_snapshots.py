"""Reads see every commit that resolved before they began, however many reads overlap.

SQLite keeps a connection's read transaction, and with it an old snapshot, for as long as any
statement of that connection is open. When each read held its cursor open across an ``await``,
reads overlapping on the one read connection kept a transaction open for seconds, and ``wait``
read a task that had finished as still ``queued``."""

from __future__ import annotations

import asyncio

from asynctask.model import TaskState as S
from asynctask.store import InsertTask, TaskStore, UpdateTask
from tests.store.helpers import make_row


async def test_a_read_after_a_commit_sees_it_while_other_reads_overlap(store: TaskStore) -> None:
    await store.put(InsertTask(make_row(1, state=S.QUEUED)))
    for seq in range(2, 60):  # rows for the overlapping reads to walk
        await store.put(InsertTask(make_row(seq, state=S.QUEUED)))
    stop = asyncio.Event()

    async def overlap() -> None:
        while not stop.is_set():
            await asyncio.gather(*(store.get("default", f"task-{n:06d}") for n in range(2, 60)))

    readers = [asyncio.create_task(overlap()) for _ in range(4)]
    try:
        for round_ in range(40):
            state = S.SUCCEEDED if round_ % 2 else S.QUEUED
            await store.put(UpdateTask(seq=1, state=state, attempts=round_))
            row = await store.get("default", "task-000001")
            assert row is not None
            assert (row.state, row.attempts) == (state, round_), f"a stale read at {round_}"
    finally:
        stop.set()
        await asyncio.gather(*readers)
