"""``PgAttemptLogs`` against the session's private cluster (``tests/pgcluster.py``): the round
trip, offsets, the truncation marker kept byte for byte, hostile bytes, missing attempts and
tasks, deletion (and orphans), a copy racing its task's deletion, and a lost connection."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from asynctask.store import StoreError
from asynctask.store.pglogs import PgAttemptLogs, StoredLog
from asynctask.store.postgres import PostgresStore
from tests import pgcluster

MARKER = b"\n[asynctask: output truncated: 12345 more bytes after the first 64]\n"


@pytest.fixture
async def url(tmp_path: Path) -> str:
    """A schema of this test's own, migrated by the store (the one owner of migrations)."""
    url = await pgcluster.url_for(tmp_path)
    store = await PostgresStore.open(url)
    await store.close()
    return url


@pytest.fixture
async def admin(url: str) -> AsyncIterator[Any]:
    conn = await asyncpg.connect(url)
    yield conn
    await conn.close()


@pytest.fixture
async def logs(url: str) -> AsyncIterator[PgAttemptLogs]:
    opened = await PgAttemptLogs.open(url)
    yield opened
    await opened.close()


async def _task(admin: Any, seq: int) -> None:
    """A bare task row: the logs only need its ``seq`` to exist."""
    await admin.execute(
        "INSERT INTO tasks (seq, tenant, id, function, queue, priority, state, payload, "
        "options, labels, created_at, attempts) VALUES ($1, 't', $2, 'f', 'q', 0, 'failed', "
        "'\\x'::bytea, '\\x'::bytea, '{}'::jsonb, 0, 3)",
        seq,
        f"task-{seq}",
    )


async def test_round_trip_in_attempt_order(logs: PgAttemptLogs, admin: Any) -> None:
    await _task(admin, 7)
    assert await logs.store(7, 2, b"second\n") == 1
    assert await logs.store(7, 1, b"first\n") == 1
    assert await logs.read(7, 3, {}) == [
        StoredLog(1, 6, b"first\n"),
        StoredLog(2, 7, b"second\n"),
    ]  # attempt 3 has no log: left out, as a missing file is


async def test_offsets_clamped_like_the_files(logs: PgAttemptLogs, admin: Any) -> None:
    await _task(admin, 1)
    await logs.store(1, 1, b"0123456789")
    await logs.store(1, 2, b"abc")
    got = await logs.read(1, 2, {1: 4, 2: 99})
    assert got == [StoredLog(1, 10, b"456789"), StoredLog(2, 3, b"")]
    assert await logs.read(1, 2, {1: -5, 2: 2**62}) == [StoredLog(1, 10, b"0123456789"), got[1]]


async def test_capped_log_and_marker_kept_exactly(logs: PgAttemptLogs, admin: Any) -> None:
    await _task(admin, 2)
    capped = b"x" * 64 + MARKER
    await logs.store(2, 1, capped)
    (entry,) = await logs.read(2, 1, {})
    assert entry.data == capped
    assert entry.size == len(capped)
    assert (await logs.read(2, 1, {1: 64}))[0].data == MARKER


async def test_hostile_bytes(logs: PgAttemptLogs, admin: Any) -> None:
    await _task(admin, 3)
    hostile = b"\x00nul\x00\xff\xfe invalid \xc3\x28 utf-8 \xed\xa0\x80 surrogate \\x00 '); --"
    big = bytes(range(256)) * 4096  # 1 MiB of every byte value: TOASTed, maybe compressed
    await logs.store_many([(3, 1, hostile), (3, 2, big)])
    assert await logs.read(3, 2, {}) == [
        StoredLog(1, len(hostile), hostile),
        StoredLog(2, len(big), big),
    ]
    assert (await logs.read(3, 2, {2: len(big) - 3}))[1].data == big[-3:]


async def test_upsert_replaces_and_a_batch_keeps_the_last(logs: PgAttemptLogs, admin: Any) -> None:
    await _task(admin, 4)
    await logs.store(4, 1, b"old")
    assert await logs.store_many([(4, 1, b"first"), (4, 1, b"newest")]) == 1
    assert await logs.read(4, 1, {}) == [StoredLog(1, 6, b"newest")]


async def test_missing_attempt_task_and_skip(logs: PgAttemptLogs, admin: Any) -> None:
    await _task(admin, 5)
    await logs.store(5, 1, b"one")
    await logs.store(5, 2, b"two")
    assert await logs.read(5, 2, {}, skip={1}) == [StoredLog(2, 3, b"two")]
    assert await logs.read(5, 2, {}, skip={1, 2}) == []
    assert await logs.read(5, 0, {}) == []
    assert await logs.read(999, 3, {}) == []
    # A task that is not stored (deleted before its copy landed) gets no row.
    assert await logs.store(998, 1, b"late") == 0
    assert await admin.fetchval("SELECT count(*) FROM attempt_logs WHERE seq = 998") == 0


async def test_delete_and_orphans(logs: PgAttemptLogs, admin: Any) -> None:
    for seq in (10, 11, 12):
        await _task(admin, seq)
        await logs.store_many([(seq, 1, b"a"), (seq, 2, b"b")])
    assert await logs.delete([10, 11, 404]) == 4
    assert await logs.read(10, 2, {}) == []
    assert len(await logs.read(12, 2, {})) == 2
    assert await logs.delete([]) == 0
    # A daemon died between deleting task 12 and its logs: the rows are orphans.
    await admin.execute("DELETE FROM tasks WHERE seq = 12")
    assert await logs.delete_orphans() == 2
    assert await admin.fetchval("SELECT count(*) FROM attempt_logs") == 0


async def test_a_copy_racing_its_tasks_deletion_leaves_no_row(
    logs: PgAttemptLogs, admin: Any, url: str
) -> None:
    """The copy locks its task row until it commits: a delete of the task waits for it, and
    the log deletion after it sees the copied row; a copy after the delete writes nothing."""
    await _task(admin, 20)
    other = await asyncpg.connect(url)
    try:
        tx = admin.transaction()
        await tx.start()
        await admin.execute(
            "INSERT INTO attempt_logs (seq, attempt, data) SELECT 20, 1, 'x'::bytea "
            "FROM tasks WHERE seq = 20 FOR KEY SHARE OF tasks"
        )  # a copy in flight, as STORE does it
        deleting = asyncio.ensure_future(other.execute("DELETE FROM tasks WHERE seq = 20"))
        await asyncio.sleep(0.2)
        assert not deleting.done()  # the task's deletion waits for the copy
        await tx.commit()
        await deleting
        assert await logs.delete([20]) == 1  # the daemon's log deletion finds the row
        assert await logs.store(20, 2, b"after") == 0
        assert await admin.fetchval("SELECT count(*) FROM attempt_logs") == 0
    finally:
        await other.close()


async def test_reconnects_after_a_lost_connection(logs: PgAttemptLogs, admin: Any) -> None:
    await _task(admin, 30)
    await logs.store(30, 1, b"kept")
    await admin.execute(
        "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
        "WHERE application_name = 'asynctask-logs'"
    )
    with contextlib.suppress(StoreError):  # the call that finds it gone may fail: its own
        await logs.read(30, 1, {})
    assert await logs.read(30, 1, {}) == [StoredLog(1, 4, b"kept")]


async def test_concurrent_calls_share_the_connection(logs: PgAttemptLogs, admin: Any) -> None:
    await _task(admin, 40)
    await asyncio.gather(*(logs.store(40, n, b"%d" % n) for n in range(1, 21)))
    got = await asyncio.gather(*(logs.read(40, 20, {}) for _ in range(5)))
    assert all(len(entries) == 20 for entries in got)
    assert "PgAttemptLogs open" in repr(logs)


async def test_open_refuses_a_schema_without_the_table(tmp_path: Path) -> None:
    url = await pgcluster.url_for(tmp_path / "empty")
    with pytest.raises(StoreError, match="no attempt_logs table"):
        await PgAttemptLogs.open(url)
