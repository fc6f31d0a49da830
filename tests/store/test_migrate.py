"""``store/migrate.py``: a real SQLite store copied into a real PostgreSQL schema (the private
cluster of ``tests/pgcluster.py``; skips with the reason where PostgreSQL cannot start)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from asynctask.store import AssignUid, InsertTask, Op, PutCron, SetPause, Store, TaskStore
from asynctask.store.migrate import CopyFailed, TargetNotEmpty, check_empty, copy_store
from asynctask.store.postgres import PostgresStore
from tests import pgcluster
from tests.store.helpers import make_row, seeded_rows


@pytest.fixture
async def source(tmp_path: Path) -> AsyncIterator[Store]:
    store = await Store.open(str(tmp_path / "src" / "tasks.db"))
    yield store
    await store.close()


@pytest.fixture
async def target(tmp_path: Path) -> AsyncIterator[PostgresStore]:
    store = await PostgresStore.open(await pgcluster.url_for(tmp_path / "pg"))
    yield store
    await store.close()


async def _fill(store: TaskStore, ops: list[Op]) -> None:
    with store.one_transaction():
        futures = [store.put(op) for op in ops]
    await asyncio.gather(*futures)


async def test_every_row_and_field_is_copied(source: Store, target: PostgresStore) -> None:
    rows = seeded_rows(300)
    rows[0].result, rows[0].attempts, rows[0].held = b"\x05", 2, True
    rows[1].error = {"type": "ValueError", "message": "no"}
    rows[1].errors = [{"type": "ValueError", "message": "first"}]
    rows[1].trace, rows[1].trace_id = [[1.0, 2.0, 3.0, 4.0, 5.0]], "t-1"
    await _fill(source, [InsertTask(row) for row in rows])
    await _fill(
        source,
        [
            SetPause("queue", "acme", "slow"),
            PutCron("acme", "nightly", b"\x01\x02"),
            AssignUid("acme", 60_001),
        ],
    )
    copied = await copy_store(source, target, batch=64)
    assert copied.tasks == 300
    assert copied.by_state == dict(Counter(row.state.value for row in rows))
    assert (copied.pauses, copied.crons, copied.tenant_uids) == (1, 1, 1)
    for row in rows:
        assert await target.get_by_seq(row.seq) == row
    assert await target.max_seq() == 300
    assert await target.load_pauses() == [("queue", "acme", "slow")]
    assert await target.load_crons() == [("acme", "nightly", b"\x01\x02")]
    assert await target.load_tenant_uids() == {"acme": 60_001}
    with pytest.raises(TargetNotEmpty, match="already holds tasks, pauses"):
        await copy_store(source, target)


async def test_a_failed_copy_deletes_what_it_wrote(source: Store, target: PostgresStore) -> None:
    rows = [make_row(seq, created_at=1_000.0 + seq) for seq in range(1, 41)]
    # The oldest row comes last (pages are newest first): PostgreSQL refuses its NUL, after
    # three pages of ten have committed.
    rows[0].labels = {"bad": "a\x00b"}
    await _fill(source, [InsertTask(row) for row in rows])
    await _fill(source, [SetPause("tenant", "default", "")])
    with pytest.raises(CopyFailed, match="deleted again") as failed:
        await copy_store(source, target, batch=10)
    assert failed.value.cleaned
    assert await target.max_seq() == 0
    assert await target.load_pauses() == []
    await check_empty(target)
    assert (await source.get_by_seq(1)) == rows[0]  # the source is untouched
