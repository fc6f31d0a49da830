"""The store's side of several daemons on one PostgreSQL database, on a real server
(``tests/pgcluster.py``): the fence on a write batch (``pgwriter``), foreign inserts and the
inbox, ``PgCluster.take_in``, task-number blocks and the shared partition count."""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from asynctask.core.leases import Take
from asynctask.core.partitions import partition_of
from asynctask.model import TaskState
from asynctask.store import Fenced, InsertTask, StoreError, UpdateTask, pgschema
from asynctask.store.pgcluster import PgCluster
from asynctask.store.pgleases import PgLeases
from asynctask.store.pgwriter import Fence
from asynctask.store.postgres import PostgresStore
from tests import pgcluster
from tests.store.helpers import make_row

P = 4
LEASE = 30.0


def _tenant_in(partition: int) -> str:
    return next(t for t in (f"t{n}" for n in range(1000)) if partition_of(t, P) == partition)


@pytest.fixture
async def url(tmp_path: Path) -> str:
    return await pgcluster.url_for(tmp_path)


@pytest.fixture
async def store(url: str) -> AsyncIterator[PostgresStore]:
    opened = await PostgresStore.open(url)
    yield opened
    await opened.close()


@pytest.fixture
async def admin(url: str, store: PostgresStore) -> AsyncIterator[Any]:
    conn = await asyncpg.connect(url)
    yield conn
    await conn.close()


async def _take(url: str, me: str, partition: int, read_epoch: int = 0) -> int:
    leases = await PgLeases.open(url, me)
    try:
        now = time.time()
        take = Take(partition, read_epoch, read_epoch + 1, now, now + LEASE)
        row = (await leases.take(take))[partition]
    finally:
        await leases.close()
    assert row is not None
    assert row.owner == me
    return row.epoch


def _fence(me: str, held: dict[int, int]) -> Fence:
    return Fence(me, held, time.time() + 1.0, P)


async def test_an_update_of_a_partition_not_held_is_refused_and_the_rest_commits(
    url: str, store: PostgresStore, admin: Any
) -> None:
    mine, theirs = _tenant_in(0), _tenant_in(1)
    epoch = await _take(url, "a", 0)
    await _take(url, "b", 1)
    await store.put(InsertTask(make_row(1, tenant=mine)))
    await store.put(InsertTask(make_row(2, tenant=theirs, id="x")))
    store.fence_writes(lambda: _fence("a", {0: epoch}))
    with store.one_transaction():
        ours = store.put(UpdateTask(1, TaskState.RUNNING, attempts=1))
        other = store.put(UpdateTask(2, TaskState.RUNNING, attempts=1))
    await ours
    with pytest.raises(Fenced, match="held by another daemon"):
        await other
    rows = await admin.fetch("SELECT seq, state, attempts FROM tasks ORDER BY seq")
    assert [tuple(r) for r in rows] == [(1, "running", 1), (2, "queued", 0)]
    assert store.ops_fenced == 1
    # A stale epoch is refused too: the partition was taken since.
    store.fence_writes(lambda: _fence("a", {0: epoch - 1}))
    with pytest.raises(Fenced):
        await store.put(UpdateTask(1, TaskState.SUCCEEDED, attempts=1))


async def test_an_insert_outside_the_leases_is_stored_with_a_note_to_the_owner(
    url: str, store: PostgresStore, admin: Any
) -> None:
    mine, theirs = _tenant_in(0), _tenant_in(1)
    epoch = await _take(url, "a", 0)
    store.fence_writes(lambda: _fence("a", {0: epoch}))
    await admin.execute(f"LISTEN {pgschema.INBOX_CHANNEL}")
    await store.put(InsertTask(make_row(1, tenant=mine)))  # held: a plain insert
    await store.put(InsertTask(make_row(2, tenant=theirs, id="y")))  # not held: foreign
    await store.put(InsertTask(make_row(3, tenant=mine, id="z"), foreign=True))
    inbox = await admin.fetch("SELECT seq, partition FROM inbox ORDER BY seq")
    assert [tuple(r) for r in inbox] == [(2, 1), (3, 0)]
    assert await admin.fetchval("SELECT count(*) FROM tasks") == 3


async def test_take_in_loads_a_whole_partition_or_its_inbox_and_only_for_its_holder(
    url: str, store: PostgresStore, admin: Any
) -> None:
    a0, b1 = _tenant_in(0), _tenant_in(1)
    epoch0 = await _take(url, "a", 0)
    epoch1 = await _take(url, "b", 1)
    store.fence_writes(lambda: _fence("a", {0: epoch0}))
    for seq in (1, 2):
        await store.put(InsertTask(make_row(seq, tenant=a0, id=f"a{seq}")))
    await store.put(InsertTask(make_row(3, tenant=b1, id="b3"), foreign=True))
    await store.put(InsertTask(make_row(4, tenant=b1, id="b4", state=TaskState.SUCCEEDED)))
    cluster = await PgCluster.open(url, P)
    try:
        skipped: list[Any] = []
        now = time.time()
        ok, rows = await cluster.take_in("a", {0: epoch0}, now, {0}, skipped)
        assert (ok, sorted(r.seq for r in rows)) == ({0}, [1, 2])
        # Not the holder of partition 1: nothing, and the note stays for its owner.
        ok, rows = await cluster.take_in("a", {1: epoch1}, now, set(), skipped)
        assert (ok, rows) == (set(), [])
        assert await admin.fetchval("SELECT count(*) FROM inbox") == 2  # seq 4 went there too
        ok, rows = await cluster.take_in("b", {1: epoch1}, now, set(), skipped)
        assert (ok, [r.seq for r in rows]) == ({1}, [3])  # the live one of the inbox
        assert await admin.fetchval("SELECT count(*) FROM inbox") == 0
        ok, rows = await cluster.take_in("b", {1: epoch1}, now, set(), skipped)
        assert (ok, rows) == ({1}, [])  # each note is read once
        assert skipped == []
    finally:
        await cluster.close()


async def test_task_number_blocks_never_overlap_and_start_past_what_is_stored(
    url: str, store: PostgresStore
) -> None:
    await store.put(InsertTask(make_row(200_000)))  # as a migrated or single-daemon store
    first, second = await PgCluster.open(url, P), await PgCluster.open(url, P)
    try:
        starts = [await first.seq_block(), await second.seq_block(), await first.seq_block()]
    finally:
        await first.close()
        await second.close()
    assert min(starts) > 200_000
    ranges = sorted((s, s + pgschema.SEQ_BLOCK) for s in starts)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(ranges))


async def test_every_daemon_of_a_database_must_use_one_partition_count(
    url: str, store: PostgresStore
) -> None:
    opened = await PgCluster.open(url, P)
    await opened.close()
    with pytest.raises(StoreError, match="partitions = 4, and this daemon has 8"):
        await PgCluster.open(url, 8)


async def test_daemons_share_the_writers_lock_and_a_copy_takes_it_alone(
    url: str, store: PostgresStore
) -> None:
    daemons = [await PostgresStore.open(url, lock="daemon") for _ in range(2)]  # shared
    try:
        with pytest.raises(StoreError, match="daemons are using the database"):
            await PostgresStore.open(url, lock="exclusive")
    finally:
        for opened in daemons:
            await opened.close()
    copy = await PostgresStore.open(url, lock="exclusive")
    try:
        with pytest.raises(StoreError, match="migrate-store is copying into the database"):
            await PostgresStore.open(url, lock="daemon")
    finally:
        await copy.close()


async def test_prune_deletes_only_long_gone_nodes_that_hold_nothing(
    url: str, store: PostgresStore, admin: Any
) -> None:
    now = time.time()
    for node, beat in (("gone", now - 1000), ("holder", now - 1000), ("alive", now)):
        await admin.execute(
            "INSERT INTO nodes (node, heartbeat_at, running) VALUES ($1, $2, 0)", node, beat
        )
    await _take(url, "holder", 2)  # an unexpired lease keeps even an old row
    leases = await PgLeases.open(url, "alive")
    try:
        assert await leases.prune(now - 300, now) == 1
    finally:
        await leases.close()
    left = [r[0] for r in await admin.fetch("SELECT node FROM nodes ORDER BY node")]
    assert left == ["alive", "holder"]


async def test_one_new_id_stored_by_two_daemons_at_once_fails_that_op_alone(
    url: str, store: PostgresStore, admin: Any
) -> None:
    """Two daemons submit the same new (tenant, ID): one row is stored; the other daemon's
    op fails alone, and the rest of its batch commits (a unique violation would have rolled
    it all back)."""
    tenant = _tenant_in(1)
    epoch = await _take(url, "a", 0)
    store.fence_writes(lambda: _fence("a", {0: epoch}))
    other = await PostgresStore.open(url)
    other.fence_writes(lambda: _fence("b", {}))
    try:
        await other.put(InsertTask(make_row(1, tenant=tenant, id="same"), foreign=True))
        with store.one_transaction():
            duplicate = store.put(InsertTask(make_row(2, tenant=tenant, id="same"), foreign=True))
            bystander = store.put(InsertTask(make_row(3, tenant=tenant, id="else"), foreign=True))
        with pytest.raises(StoreError, match="stored by another daemon at the same moment"):
            await duplicate
        await bystander
    finally:
        await other.close()
    rows = await admin.fetch("SELECT seq, id FROM tasks ORDER BY seq")
    assert [tuple(r) for r in rows] == [(1, "same"), (3, "else")]
    inbox = await admin.fetch("SELECT seq FROM inbox ORDER BY seq")
    assert [r[0] for r in inbox] == [1, 3]
